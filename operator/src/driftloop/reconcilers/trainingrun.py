"""TrainingRun: run the training Job, then register the ModelVersion it produced."""

from __future__ import annotations

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
        return Outcome(phase=previous["phase"])  # a finished attempt never changes
    try:
        spec = TrainingRunSpec.model_validate(body["spec"])
    except ValidationError as error:
        return _failed(status, "InvalidSpec", str(error), [])

    owner = owner_of(body)
    job_name = naming.training_job(name)
    status.fields["jobName"] = job_name
    events: list[Event] = []
    job = ctx.kube.get_job(namespace, job_name)
    if job is None:
        dataset = ctx.kube.get(DATASET, namespace, spec.dataset_ref.name)
        waiting = _dataset_not_ready(dataset, spec.dataset_ref.name)
        if waiting is not None:
            status.fields["phase"] = TrainingRunPhase.pending
            status.ready(False, *waiting)
            return status.outcome(phase=TrainingRunPhase.pending)
        assert dataset is not None
        dataset_spec = DatasetSpec.model_validate(dataset["spec"])
        job, created = ctx.kube.create(builders.training_job(owner, spec, dataset_spec, ctx.config))
        if created:
            events.append(Event("Normal", "JobCreated", f"created training Job {job_name}"))

    job_status = job.get("status") or {}
    status.fields["startTime"] = job_status.get("startTime")
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
    try:
        mv = register_model_version(
            ctx, owner, spec, result, image, previous.get("modelVersionClaim")
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
        else ("failed: " + ", ".join(result.failed_gates))
    )
    status.ready(True, "Succeeded", f"registered {mv_name}; evaluation gates {gates}")
    events.append(Event("Normal", "Trained", f"registered {mv_name} ({_metrics_text(result)})"))
    return status.outcome(events, TrainingRunPhase.succeeded)


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
    manifest = builders.model_version(run, spec, result, claim or 1, image)  # ValueError
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
