"""TrainingRun: run the training Job, then register the ModelVersion it produced."""

from __future__ import annotations

from datetime import datetime

from pydantic import ValidationError

import driftloop_contract as contract
from driftloop import builders, conditions, naming, policies
from driftloop.api import DATASET, MODEL_VERSION, DatasetSpec, TrainingRunPhase, TrainingRunSpec
from driftloop.builders import Owner

from ._outcome import Context, Event, Obj, Outcome, StatusWriter, owner_of
from ._pods import announce, job_problem

TERMINAL = {TrainingRunPhase.succeeded, TrainingRunPhase.failed}
#: Seconds between writing a version claim and the reconcile that registers it.
REQUEUE_SECONDS = 1.0


def reconcile_training_run(ctx: Context, body: Obj) -> Outcome:
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    status = StatusWriter(body, ctx.now_text)
    previous = status.current
    if previous.get("phase") in TERMINAL:
        return _collect_job(ctx, namespace, previous)  # a finished attempt never changes
    try:
        spec = TrainingRunSpec.model_validate(body["spec"])
    except ValidationError as error:
        return _failed(status, "InvalidSpec", str(error), [])

    owner = owner_of(body)
    job_name = naming.training_job(name)
    status.fields["jobName"] = job_name
    events: list[Event] = []
    job = ctx.kube.get_job(namespace, job_name)
    original: Obj | None = None
    if spec.reproduce is not None:
        original = ctx.kube.get(MODEL_VERSION, namespace, spec.reproduce.model_version)
        refused = _cannot_reproduce(spec, original)
        if refused is not None and job is None:
            if refused[0] == MODEL_VERSION_NOT_FOUND:  # it may yet be created (GitOps order)
                status.fields["phase"] = TrainingRunPhase.pending
                status.ready(False, *refused)
                return status.outcome(phase=TrainingRunPhase.pending)
            return _failed(status, *refused, events)
    if job is None:
        dataset = ctx.kube.get(DATASET, namespace, spec.dataset_ref.name)
        pinned = spec.dataset_ref.version or _recorded_digest(original)
        # A pinned version needs the Dataset's schema only: its snapshot was validated.
        waiting = (
            _dataset_not_ready(dataset, spec.dataset_ref.name)
            if not pinned or dataset is None
            else None
        )
        if waiting is not None:
            status.fields["phase"] = TrainingRunPhase.pending
            status.ready(False, *waiting)
            return status.outcome(phase=TrainingRunPhase.pending)
        assert dataset is not None
        dataset_spec = DatasetSpec.model_validate(dataset["spec"])
        mismatch = policies.task_mismatch(spec, dataset_spec)
        if mismatch is not None:
            return _failed(status, policies.TASK_MISMATCH, mismatch, events)
        no_groups = policies.fairness_mismatch(spec, dataset_spec)
        if no_groups is not None:
            return _failed(status, policies.NO_SENSITIVE_FEATURES, no_groups, events)
        snapshot = _snapshot(ctx, dataset, pinned)
        job, created = ctx.kube.create(
            builders.training_job(owner, spec, dataset_spec, ctx.config, snapshot)
        )
        if created:
            on = f" on {snapshot.digest}" if snapshot else ""
            events.append(Event("Normal", "JobCreated", f"created training Job {job_name}{on}"))

    job_status = job.get("status") or {}
    # The Job's creation, known from the create itself: echoing the Job controller's
    # own startTime (set moments later) would cost every run a second status write.
    status.fields["startTime"] = job["metadata"].get("creationTimestamp")
    outcome = policies.job_outcome(job)
    if not outcome.finished:
        status.fields["phase"] = TrainingRunPhase.running
        problem = job_problem(ctx, job)
        if problem is None:
            status.ready(False, "Training", f"Job {job_name} is running")
        else:
            status.ready(False, problem.reason, problem.message)
            events.extend(announce(problem, conditions.get_condition(previous, conditions.READY)))
        return status.outcome(events, TrainingRunPhase.running)

    status.fields["completionTime"] = job_status.get("completionTime")
    pods = ctx.kube.list_pods(namespace, f"job-name={job_name}")
    result = policies.parse_train_result(policies.termination_message(pods, contract.COMMAND_TRAIN))
    if not outcome.succeeded or result is None or not result.ok:
        reason = (result.reason if result and result.reason else None) or outcome.reason
        if outcome.succeeded:
            reason = "ResultUnreadable"
        message = policies.failure_text(result, outcome.message or f"Job {job_name} failed")
        return _failed(status, reason, message, events)

    image = spec.image or ctx.config.runtime_image
    image_digest = policies.image_id(pods, contract.COMMAND_TRAIN)
    status.fields["imageDigest"] = image_digest
    if spec.reproduce is not None:
        return _reproduced(status, spec, original, result, image_digest, events)
    try:
        mv = register_model_version(
            ctx,
            owner,
            spec,
            result,
            image,
            previous.get("modelVersionClaim"),
            image_digest=image_digest,
            snapshot=result.snapshot_uri,
        )
    except ValueError as error:  # ok, but no valid ModelVersion in it: retrying cannot help
        return _failed(status, "ResultUnreadable", str(error), events)
    if isinstance(mv, int):
        # The claim goes into the run's own status first (conditioned on the version
        # read): only a later reconcile, reading it back, creates that ModelVersion.
        claimed = naming.model_version(spec.model, mv)
        status.fields.update(phase=TrainingRunPhase.running, modelVersionClaim=mv)
        status.ready(False, "Registering", f"claimed {claimed}; registering it")
        return status.outcome(events, TrainingRunPhase.running, requeue_after=REQUEUE_SECONDS)
    mv_name = mv["metadata"]["name"]
    status.fields.update(
        phase=TrainingRunPhase.succeeded,
        datasetDigest=result.dataset_digest,
        metrics=result.metrics,
        modelVersion=mv_name,
    )
    gates = (
        "passed"
        if result.gates_passed in (None, True)
        else ("failed: " + ", ".join(policies.failed_gates(result)))
    )
    status.ready(True, "Succeeded", f"registered {mv_name}; evaluation gates {gates}")
    events.append(Event("Normal", "Trained", f"registered {mv_name} ({_metrics_text(result)})"))
    return status.outcome(events, TrainingRunPhase.succeeded)


#: Ready reasons of a run that cannot reproduce the ModelVersion it names.
MODEL_VERSION_NOT_FOUND = "ModelVersionNotFound"
REPRODUCE_MODEL_MISMATCH = "ReproduceModelMismatch"
#: Reproduced condition: whether a rerun rebuilt the same artifact.
REPRODUCED = "Reproduced"
ARTIFACT_MATCHES = "ArtifactMatches"
ARTIFACT_DIFFERS = "ArtifactDiffers"


def _cannot_reproduce(spec: TrainingRunSpec, original: Obj | None) -> tuple[str, str] | None:
    assert spec.reproduce is not None
    name = spec.reproduce.model_version
    if original is None:
        return MODEL_VERSION_NOT_FOUND, f"ModelVersion {name!r} does not exist"
    model = (original.get("spec") or {}).get("model")
    if model != spec.model:
        return (
            REPRODUCE_MODEL_MISMATCH,
            f"ModelVersion {name!r} is a version of model {model!r}, not {spec.model!r}",
        )
    return None


def _recorded_digest(original: Obj | None) -> str | None:
    """The dataset version a ModelVersion was trained on, if it recorded one."""
    if original is None:
        return None
    digest = ((original.get("spec") or {}).get("lineage") or {}).get("datasetDigest")
    return str(digest) if digest else None


def _snapshot(ctx: Context, dataset: Obj, pinned: str | None) -> contract.SnapshotRef | None:
    """The validated version a new run trains on: the pinned one, else the Dataset's
    current one.  None only for a Dataset profiled before snapshots were kept (its
    status has no snapshotUri): that run re-reads the source, as runs did then."""
    ds_status = dataset.get("status") or {}
    digest = pinned or ds_status.get("version")
    if not digest or not (pinned or ds_status.get("snapshotUri")):
        return None
    uri = contract.snapshot_location(ctx.config.artifact_root, digest)
    return contract.SnapshotRef(uri=uri, digest=digest)


def _reproduced(
    status: StatusWriter,
    spec: TrainingRunSpec,
    original: Obj | None,
    result: contract.TrainResult,
    image_digest: str | None,
    events: list[Event],
) -> Outcome:
    """A reproducing run's end: compare with the original; register nothing."""
    assert spec.reproduce is not None
    if original is None:
        return _failed(
            status,
            MODEL_VERSION_NOT_FOUND,
            f"ModelVersion {spec.reproduce.model_version!r} was deleted before the rerun "
            "could be compared with it",
            events,
        )
    rerun = {
        "datasetDigest": result.dataset_digest,
        "estimator": str(spec.estimator.type),
        "hyperparameters": spec.estimator.hyperparameters,
        "testSize": spec.evaluation.test_size,
        "randomState": spec.evaluation.random_state,
        "imageDigest": image_digest,
        "libraryVersions": result.library_versions,
    }
    compared = policies.reproduction(original, rerun, result.sha256, result.metrics)
    status.fields.update(
        phase=TrainingRunPhase.succeeded,
        datasetDigest=result.dataset_digest,
        metrics=result.metrics,
        reproduction=compared,
    )
    name = compared["modelVersion"]
    differs = ", ".join(compared["differences"]) or "none"
    if compared["artifactMatches"]:
        text = f"rebuilt {name}: the model file's sha256 matches ({result.sha256})"
        status.condition(REPRODUCED, True, ARTIFACT_MATCHES, text)
        events.append(Event("Normal", ARTIFACT_MATCHES, text))
    else:
        text = (
            f"rebuilt {name}: sha256 {result.sha256} differs from the recorded "
            f"{(original.get('spec') or {}).get('artifact', {}).get('sha256')}; metrics "
            f"{'match' if compared['metricsMatch'] else 'differ'}; inputs that differ: {differs}"
        )
        status.condition(REPRODUCED, False, ARTIFACT_DIFFERS, text)
        events.append(Event("Warning", ARTIFACT_DIFFERS, text))
    status.ready(True, "Succeeded", text)
    return status.outcome(events, TrainingRunPhase.succeeded)


def _collect_job(ctx: Context, namespace: str, finished: Obj) -> Outcome:
    """Delete a finished run's Job once ``finished_job_retention`` has passed.

    Its result is in the run's status already (the run is terminal), so only the pod
    logs go with it; keeping Jobs forever would pile up thousands of them."""
    phase = finished["phase"]
    job_name = finished.get("jobName")
    job = ctx.kube.get_job(namespace, job_name) if job_name else None
    if job is None:
        return Outcome(phase=phase)
    done = finished.get("completionTime") or _job_end(job)
    age = (ctx.now - _parse_time(done)).total_seconds() if done else float("inf")
    left = ctx.config.finished_job_retention - age
    if left > 0:
        return Outcome(phase=phase, requeue_after=max(left, 1.0))
    ctx.kube.delete_job(namespace, job["metadata"]["name"])
    return Outcome(phase=phase)


def _job_end(job: Obj) -> str | None:
    """When a Job finished: its completionTime, or (failed Jobs have none) the time of
    its Complete or Failed condition."""
    job_status = job.get("status") or {}
    if job_status.get("completionTime"):
        return str(job_status["completionTime"])
    for cond in job_status.get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return str(cond.get("lastTransitionTime") or "") or None
    return None


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _dataset_not_ready(dataset: Obj | None, name: str) -> tuple[str, str] | None:
    if dataset is None:
        return "DatasetNotFound", f"Dataset {name!r} does not exist"
    ds_status = dataset.get("status") or {}
    if not conditions.is_true(ds_status):
        ready = conditions.get_condition(ds_status, conditions.READY) or {}
        why = ready.get("reason", "Pending")
        return (
            "DatasetNotReady",
            f"Dataset {name!r} is not ready ({why}: {ready.get('message', '')})",
        )
    return None


def _failed(status: StatusWriter, reason: str, message: str, events: list[Event]) -> Outcome:
    status.fields.update(
        phase=TrainingRunPhase.failed, failureReason=reason, failureMessage=message[:4096]
    )
    status.ready(False, reason, message)
    events.append(Event("Warning", reason, message))
    # A Failed run never changes again: Stalled, whatever the reason.
    return status.outcome(events, TrainingRunPhase.failed, terminal=True)


def _metrics_text(result: contract.TrainResult) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in sorted(result.metrics.items()))


def register_model_version(
    ctx: Context,
    run: Owner,
    spec: TrainingRunSpec,
    result: contract.TrainResult,
    image: str,
    claim: int | None,
    *,
    image_digest: str | None = None,
    snapshot: str | None = None,
) -> Obj | int:
    """The run's ModelVersion once registered; else the number to claim first.

    Exactly once under any crash point: a number is first recorded in the run's own
    status (``modelVersionClaim``, written conditioned on the resourceVersion read,
    so of two racing reconciles one claim wins), and only a reconcile that read the
    claim back creates ``<model>-v<claim>``.  Every attempt of a run, before and after
    a restart, so targets one name: a create still in flight from a killed process
    and the restarted one's cannot both succeed, and AlreadyExists with the run's own
    uid label is success.  AlreadyExists of another run's version (runs finishing
    together) yields the next number to claim.  Without a claim, a version carrying
    the run's uid label (registered before claims existed) is the run's.
    """
    manifest = builders.model_version(  # ValueError
        run, spec, result, claim or 1, image, image_digest, snapshot
    )
    if claim is not None:
        obj, created = ctx.kube.create(manifest)
        if created or _made_by(obj, run):
            return dict(obj)
    versions = ctx.kube.list(MODEL_VERSION, run.namespace, f"{naming.LABEL_MODEL}={spec.model}")
    if claim is None:
        mine = next((mv for mv in versions if _made_by(mv, run)), None)
        return policies.next_version(versions) if mine is None else dict(mine)
    # The list may not show yet the version that took the claim: never claim it again.
    return max(policies.next_version(versions), claim + 1)


def _made_by(mv: Obj, run: Owner) -> bool:
    labels = mv["metadata"].get("labels") or {}
    return bool(labels.get(naming.LABEL_TRAINING_RUN_UID) == run.uid)
