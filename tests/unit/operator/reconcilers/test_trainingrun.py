"""TrainingRun: Dataset readiness, the training Job, failures, and ModelVersion claims.

Table cases in the style of cert-manager's ``TestProcessItem``: each names the
objects in the world, then the status, the writes and the events one reconcile
must produce.  A claimed ModelVersion is checked in the store as well.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from driftloop.api import MODEL_VERSION, TRAINING_RUN, TrainingRunSpec
from driftloop.fake import FakeKube
from driftloop.kube import CrdCache
from driftloop.policies import parse_train_result
from driftloop.reconcilers import Context, RetryLaterError, reconcile_training_run
from driftloop.reconcilers._outcome import owner_of
from driftloop.reconcilers.trainingrun import claim_model_version

from .harness import (
    CONFIG,
    DIGEST,
    NOW,
    Obj,
    dataset,
    failed_create,
    finish_job,
    model_version,
    reconcile,
    seeded,
    status_of,
    text,
    training_run,
    writes,
)
from .seeds import (
    COMPLETE,
    NO_PODS,
    RUNNING,
    RacingRunKube,
    StaleJobCacheKube,
    StaleModelVersionListKube,
    events,
    job_pod,
    pod,
    training_job,
)

RUN = training_run()
IRIS = dataset(validated=True)
JOB = "iris-rf-train"
METRICS = {"accuracy": 0.95, "f1": 0.94123}
ARTIFACT = "file:///artifacts/models/iris/iris-rf-iris-rf-"


def trained(**extra: Any) -> Obj:
    """A TrainResult as the runtime writes it (wire format)."""
    return {
        "ok": True,
        "artifactUri": ARTIFACT,
        "sha256": "a" * 64,
        "datasetDigest": DIGEST,
        "rows": 150,
        "task": "classification",
        "metrics": METRICS,
        "gatesPassed": True,
        **extra,
    }


def train_failed(reason: str | None, **detail: Any) -> Obj:
    return {"ok": False, **({"reason": reason} if reason else {}), **detail}


def job(state: str, run: Obj = RUN) -> Obj:
    return training_job(run, IRIS, state)


def finished(state: str, message: Obj | str | None, run: Obj = RUN) -> list[Obj]:
    """The training Job in ``state`` and its pod's termination message."""
    return [job(state, run), pod(job(state, run), "train", message)]


def with_status(obj: Obj, **status: Any) -> Obj:
    return {**obj, "status": status}


def other_run_version(version: int, model: str = "iris") -> Obj:
    return model_version(version, model=model, run_uid="other-run-uid")


def dataset_failed() -> Obj:
    obj = dataset()
    obj["status"] = {
        "phase": "Failed",
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": "ValidationFailed",
                "message": "rule minRows failed",
                "lastTransitionTime": text(NOW),
            }
        ],
    }
    return obj


@dataclass(frozen=True)
class Registered:
    """The ModelVersion a successful run must leave in the store."""

    name: str
    version: int
    gates_passed: bool = True
    image: str = CONFIG.runtime_image
    created: bool = True


@dataclass(frozen=True)
class Case:
    name: str
    given: Sequence[Obj]
    #: Status fields except conditions, exactly (None: the reconcile returns no status).
    fields: Obj | None
    #: (type, status, reason) of every condition, Ready first.
    conditions: Sequence[tuple[str, str, str]]
    #: Ready's message: exact text, or a pattern it must match.
    message: str | re.Pattern[str]
    writes: Sequence[str]
    events: Sequence[tuple[str, str, str | re.Pattern[str]]] = ()
    phase: str | None = None
    registered: Registered | None = None
    #: Names of the ModelVersions in the store afterwards (default: given + registered).
    versions: frozenset[str] | None = None
    kube: Callable[[list[Obj]], FakeKube] = lambda objects: seeded(*objects)


RUNNING_FIELDS = {"observedGeneration": 1, "jobName": JOB, "phase": "Running"}
PENDING_FIELDS = {"observedGeneration": 1, "jobName": JOB, "phase": "Pending"}
FINISHED = {"observedGeneration": 1, "jobName": JOB, "startTime": text(NOW)}
TRAINING = [("Ready", "False", "Training"), ("Reconciling", "True", "Training")]
SUCCEEDED = [("Ready", "True", "Succeeded")]
TRAINED_EVENT = "(accuracy=0.95, f1=0.9412)"
UNREGISTRABLE = re.compile(r"1 validation error for ModelVersionSpec\nartifact\.uri\n.*", re.S)


def failed_fields(reason: str, message: str, *, completed: bool = False) -> Obj:
    fields = {
        **FINISHED,
        "phase": "Failed",
        "failureReason": reason,
        "failureMessage": message,
    }
    if completed:
        fields["completionTime"] = text(NOW)
    return fields


def succeeded_fields(mv: str) -> Obj:
    return {
        **FINISHED,
        "completionTime": text(NOW),
        "phase": "Succeeded",
        "datasetDigest": DIGEST,
        "metrics": METRICS,
        "modelVersion": mv,
    }


def stalled(reason: str) -> list[tuple[str, str, str]]:
    return [("Ready", "False", reason), ("Stalled", "True", reason)]


def waiting(reason: str) -> list[tuple[str, str, str]]:
    return [("Ready", "False", reason), ("Reconciling", "True", reason)]


UNBOUND = "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims."
PULL_ERROR = 'failed to pull and unpack image "registry.invalid/nope:1": no such host'
QUOTA = "exceeded quota: no-pods, requested: pods=1, used: pods=0, limited: pods=0"
STUCK_POD = f"pod {JOB}-abcde"


def stuck(name: str, reason: str, message: str, *given: Obj, run: Obj = RUN) -> Case:
    """A run whose Job cannot run its pod: Running, Ready says why; announced once."""
    announced = (run.get("status") or {}).get("conditions", [{}])[0].get("reason") != reason
    return Case(
        name,
        [run, *given],
        {**RUNNING_FIELDS, "startTime": text(NOW)},
        stalled(reason) if reason == "InvalidImage" else waiting(reason),
        message,
        ["patch_status TrainingRun/iris-rf"],
        [("Warning", reason, message)] if announced else [],
        "Running",
    )


def reported(reason: str) -> Obj:
    """The run as an earlier reconcile left it: Ready=False with ``reason``."""
    condition = {
        "type": "Ready",
        "status": "False",
        "reason": reason,
        "message": "earlier",
        "lastTransitionTime": text(NOW),
    }
    return with_status(RUN, phase="Running", jobName=JOB, conditions=[condition])


def failure(reason: str, message: str, *given: Obj, completed: bool = False) -> Case:
    """A run whose Job ended in failure: Failed for good, stalled, announced once."""
    return Case(
        f"failed: {reason}: {message}",
        [RUN, *given],
        failed_fields(reason, message, completed=completed),
        stalled(reason),
        message,
        ["patch_status TrainingRun/iris-rf"],
        [("Warning", reason, message)],
        "Failed",
    )


def success(
    name: str,
    mv: str,
    *given: Obj,
    registered: Registered,
    message: str = "evaluation gates passed",
    run: Obj = RUN,
    kube: Callable[[list[Obj]], FakeKube] | None = None,
    versions: frozenset[str] | None = None,
) -> Case:
    return Case(
        name,
        [run, *given],
        succeeded_fields(mv),
        SUCCEEDED,
        f"registered {mv}; {message}",
        [f"create ModelVersion/{mv}"] * registered.created + ["patch_status TrainingRun/iris-rf"],
        [("Normal", "Trained", f"registered {mv} {TRAINED_EVENT}")],
        "Succeeded",
        registered,
        versions,
        kube or (lambda objects: seeded(*objects)),
    )


CASES = [
    # ------------------------------------------------------------ terminal
    Case(
        "a Succeeded run never changes, whatever the world says",
        [with_status(RUN, phase="Succeeded", modelVersion="iris-v1"), job("DeadlineExceeded")],
        None,
        [],
        "",
        [],
        phase="Succeeded",
    ),
    Case(
        "a Failed run never changes, even once its Dataset is ready",
        [with_status(RUN, phase="Failed", failureReason="JobFailed"), IRIS],
        None,
        [],
        "",
        [],
        phase="Failed",
    ),
    # ---------------------------------------------------------------- spec
    Case(
        "invalid spec: an estimator off the allow-list",
        [
            {**RUN, "spec": {**RUN["spec"], "estimator": {"type": "SVC"}}},
            IRIS,
        ],
        {
            "observedGeneration": 1,
            "phase": "Failed",
            "failureReason": "InvalidSpec",
            "failureMessage": re.compile(r".*estimator\.type.*", re.S),
        },
        stalled("InvalidSpec"),
        re.compile(r".*estimator\.type.*", re.S),
        ["patch_status TrainingRun/iris-rf"],
        [("Warning", "InvalidSpec", re.compile(r".*estimator\.type.*", re.S))],
        "Failed",
    ),
    # ------------------------------------------------------------- dataset
    Case(
        "the Dataset does not exist: Pending, waiting",
        [RUN],
        PENDING_FIELDS,
        [("Ready", "False", "DatasetNotFound"), ("Reconciling", "True", "DatasetNotFound")],
        "Dataset 'iris' does not exist",
        ["patch_status TrainingRun/iris-rf"],
        phase="Pending",
    ),
    Case(
        "the Dataset has no status yet: Pending",
        [RUN, dataset()],
        PENDING_FIELDS,
        [("Ready", "False", "DatasetNotReady"), ("Reconciling", "True", "DatasetNotReady")],
        "Dataset 'iris' is not ready (Pending: )",
        ["patch_status TrainingRun/iris-rf"],
        phase="Pending",
    ),
    Case(
        "the Dataset failed validation: Pending with its reason, not stalled",
        [RUN, dataset_failed()],
        PENDING_FIELDS,
        [("Ready", "False", "DatasetNotReady"), ("Reconciling", "True", "DatasetNotReady")],
        "Dataset 'iris' is not ready (ValidationFailed: rule minRows failed)",
        ["patch_status TrainingRun/iris-rf"],
        phase="Pending",
    ),
    Case(
        "another Dataset being ready does not help",
        [training_run(dataset_name="wine"), IRIS],
        PENDING_FIELDS,
        [("Ready", "False", "DatasetNotFound"), ("Reconciling", "True", "DatasetNotFound")],
        "Dataset 'wine' does not exist",
        ["patch_status TrainingRun/iris-rf"],
        phase="Pending",
    ),
    # ----------------------------------------------------------------- Job
    Case(
        "the Dataset is ready: the training Job starts",
        [RUN, IRIS],
        RUNNING_FIELDS,
        TRAINING,
        "Job iris-rf-train is running",
        ["create Job/iris-rf-train", "patch_status TrainingRun/iris-rf"],
        [("Normal", "JobCreated", "created training Job iris-rf-train")],
        "Running",
    ),
    Case(
        "the Job is running: its start time, nothing created; the Dataset no longer matters",
        [RUN, job(RUNNING)],
        {**RUNNING_FIELDS, "startTime": text(NOW)},
        TRAINING,
        "Job iris-rf-train is running",
        ["patch_status TrainingRun/iris-rf"],
        phase="Running",
    ),
    Case(
        "a Job another worker just created is used without an event",
        [RUN, IRIS, job(RUNNING)],
        {**RUNNING_FIELDS, "startTime": text(NOW)},
        TRAINING,
        "Job iris-rf-train is running",
        ["patch_status TrainingRun/iris-rf"],
        phase="Running",
        kube=lambda objects: StaleJobCacheKube(objects, now=text(NOW)),
    ),
    # ---------------------------------------------------- pods that cannot run
    stuck(
        "the pod cannot be scheduled: PodUnschedulable, with the scheduler's message",
        "PodUnschedulable",
        f"{STUCK_POD}: {UNBOUND}",
        job(RUNNING),
        job_pod(job(RUNNING), unschedulable=UNBOUND),
    ),
    stuck(
        "the image cannot be pulled: ImagePullFailed waits (Reconciling, not Stalled)",
        "ImagePullFailed",
        f"{STUCK_POD}: container train: {PULL_ERROR}",
        job(RUNNING),
        job_pod(job(RUNNING), waiting=("ErrImagePull", PULL_ERROR)),
    ),
    stuck(
        "a malformed image reference: InvalidImage stalls (only a new run fixes it)",
        "InvalidImage",
        f"{STUCK_POD}: container train: invalid reference format",
        job(RUNNING),
        job_pod(job(RUNNING), waiting=("InvalidImageName", "invalid reference format")),
    ),
    stuck(
        "a missing Secret key: ConfigError",
        "ConfigError",
        f"{STUCK_POD}: container train: couldn't find key K in Secret ml/s",
        job(RUNNING),
        job_pod(
            job(RUNNING),
            waiting=("CreateContainerConfigError", "couldn't find key K in Secret ml/s"),
        ),
    ),
    stuck(
        "a quota refuses the pod: QuotaExceeded, from the Job controller's event",
        "QuotaExceeded",
        f"cannot create pods: {QUOTA}",
        job(NO_PODS),
        failed_create(job(NO_PODS), QUOTA),
    ),
    stuck(
        "a problem already reported is not announced again",
        "ImagePullFailed",
        f"{STUCK_POD}: container train: {PULL_ERROR}",
        job(RUNNING),
        job_pod(job(RUNNING), waiting=("ImagePullBackOff", PULL_ERROR)),
        run=reported("ImagePullFailed"),
    ),
    Case(
        "the refused pod of a deleted namesake's Job does not count",
        [RUN, job(NO_PODS), failed_create(job(NO_PODS), QUOTA, uid="old-job-uid")],
        {**RUNNING_FIELDS, "startTime": text(NOW)},
        TRAINING,
        "Job iris-rf-train is running",
        ["patch_status TrainingRun/iris-rf"],
        phase="Running",
    ),
    Case(
        "the pod recovered: Training again, quietly",
        [reported("ImagePullFailed"), job(RUNNING)],
        {**RUNNING_FIELDS, "startTime": text(NOW)},
        TRAINING,
        "Job iris-rf-train is running",
        ["patch_status TrainingRun/iris-rf"],
        phase="Running",
    ),
    # ------------------------------------------------------------- failure
    failure(
        "InvalidHyperparameters",
        "column 'n_estimators': must be > 0",
        *finished(
            "PodFailurePolicy",
            train_failed("InvalidHyperparameters", column="n_estimators", message="must be > 0"),
        ),
    ),
    failure(
        "TrainingFailed",
        "rule minScores failed: accuracy 0.61 < 0.9",
        *finished(
            "PodFailurePolicy",
            train_failed("TrainingFailed", rule="minScores", message="accuracy 0.61 < 0.9"),
        ),
    ),
    failure("JobFailed", "Job has BackoffLimitExceeded", job("BackoffLimitExceeded")),
    failure(
        "JobFailed",
        "Job has BackoffLimitExceeded",
        *finished("BackoffLimitExceeded", trained()),  # killed after writing a result
    ),
    failure("DeadlineExceeded", "Job has DeadlineExceeded", job("DeadlineExceeded")),
    failure(
        "DataUnavailable",
        "no such file: /artifacts/data/iris.csv",
        *finished(
            "BackoffLimitExceeded",
            train_failed("DataUnavailable", message="no such file: /artifacts/data/iris.csv"),
        ),
    ),
    failure(
        "OutputConflict",
        "output directory exists",
        *finished(
            "PodFailurePolicy", train_failed("OutputConflict", message="output directory exists")
        ),
    ),
    failure("ResultUnreadable", "Job iris-rf-train failed", job(COMPLETE), completed=True),
    failure(
        "ResultUnreadable",
        "Job iris-rf-train failed",
        *finished(COMPLETE, '{"ok": true, "artifactU'),  # truncated
        completed=True,
    ),
    failure(
        "ResultUnreadable",
        "accuracy 0.61 < 0.9",
        *finished(COMPLETE, train_failed("TrainingFailed", message="accuracy 0.61 < 0.9")),
        completed=True,
    ),
    failure(
        "ResultUnreadable",
        "a successful TrainResult carries artifactUri, sha256 and task",
        *finished(COMPLETE, {k: v for k, v in trained().items() if k != "sha256"}),
        completed=True,
    ),
    Case(
        "ok, but the artifact URI is no registry URI: ResultUnreadable, nothing registered",
        [RUN, *finished(COMPLETE, trained(artifactUri="/artifacts/models/iris/x"))],
        {
            **failed_fields("ResultUnreadable", "", completed=True),
            "failureMessage": UNREGISTRABLE,
        },
        stalled("ResultUnreadable"),
        UNREGISTRABLE,
        ["patch_status TrainingRun/iris-rf"],
        [("Warning", "ResultUnreadable", UNREGISTRABLE)],
        "Failed",
    ),
    # ------------------------------------------------------------- success
    success(
        "the Job succeeded: the first version of the model is registered",
        "iris-v1",
        *finished(COMPLETE, trained()),
        registered=Registered("iris-v1", 1),
    ),
    success(
        "gates failed: registered all the same, marked as failing them",
        "iris-v1",
        *finished(COMPLETE, trained(gatesPassed=False, failedGates=["accuracy", "f1"])),
        registered=Registered("iris-v1", 1, gates_passed=False),
        message="evaluation gates failed: accuracy, f1",
    ),
    success(
        "no gates reported: passed",
        "iris-v1",
        *finished(COMPLETE, {k: v for k, v in trained().items() if k != "gatesPassed"}),
        registered=Registered("iris-v1", 1),
    ),
    success(
        "the next number after the model's own versions; other models don't count",
        "iris-v3",
        *finished(COMPLETE, trained()),
        other_run_version(1),
        other_run_version(2),
        other_run_version(7, model="wine"),
        registered=Registered("iris-v3", 3),
    ),
    success(
        "the run's image override is the lineage's image",
        "iris-v1",
        *finished(COMPLETE, trained()),
        run={**RUN, "spec": {**RUN["spec"], "image": "driftloop/runtime:custom"}},
        registered=Registered("iris-v1", 1, image="driftloop/runtime:custom"),
    ),
    success(
        "restart: the version this run registered is found by its uid label",
        "iris-v4",
        *finished(COMPLETE, trained()),
        other_run_version(5),
        model_version(4, run_uid="iris-rf-uid"),
        registered=Registered("iris-v4", 4, created=False),
    ),
    success(
        "restart with a lagging list: the create finds this run's own version",
        "iris-v1",
        *finished(COMPLETE, trained()),
        model_version(1, run_uid="iris-rf-uid"),
        registered=Registered("iris-v1", 1, created=False),
        kube=lambda objects: StaleModelVersionListKube(objects, now=text(NOW)),
    ),
    success(
        "race: another run takes iris-v1 first, so this one takes iris-v2",
        "iris-v2",
        *finished(COMPLETE, trained()),
        registered=Registered("iris-v2", 2),
        kube=lambda objects: RacingRunKube(objects, claim=other_run_version(1)),
        versions=frozenset({"iris-v1", "iris-v2"}),
    ),
]


def _matches(got: Any, want: Any) -> bool:
    """``want`` is the exact value, or a pattern the whole text must match."""
    if isinstance(want, re.Pattern):
        return isinstance(got, str) and want.fullmatch(got) is not None
    return bool(got == want)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_reconcile_training_run(case: Case) -> None:
    kube = case.kube(list(case.given))
    before = status_of(kube, TRAINING_RUN, "iris-rf")
    outcome = reconcile(reconcile_training_run, kube, TRAINING_RUN, "iris-rf")

    status = status_of(kube, TRAINING_RUN, "iris-rf")
    assert writes(kube) == list(case.writes)
    assert outcome.phase == case.phase
    versions = {o["metadata"]["name"] for o in case.given if o["kind"] == "ModelVersion"}
    if case.registered:
        versions.add(case.registered.name)
        _check_registered(kube, case.registered)
    stored = {o["metadata"]["name"] for o in kube.of_kind("ModelVersion")}
    assert stored == (versions if case.versions is None else case.versions)
    if case.fields is None:  # nothing decided, nothing written
        assert (outcome.status, outcome.events, status) == ({}, [], before)
        return
    fields = {k: v for k, v in status.items() if k != "conditions"}
    assert fields.keys() == case.fields.keys()
    for key, want in case.fields.items():
        assert _matches(fields[key], want), (key, fields[key])
    got = [(c["type"], c["status"], c["reason"]) for c in status["conditions"]]
    assert got == list(case.conditions)
    assert _matches(status["conditions"][0]["message"], case.message)
    assert len(outcome.events) == len(case.events)
    for (kind, reason, message), want in zip(events(outcome), case.events, strict=True):
        assert (kind, reason) == want[:2]
        assert _matches(message, want[2]), message


def _check_registered(kube: FakeKube, want: Registered) -> None:
    mv = kube.get(MODEL_VERSION, "ml", want.name)
    assert mv is not None
    labels = mv["metadata"]["labels"]
    assert labels["driftloop.dev/training-run-uid"] == "iris-rf-uid"
    assert labels["driftloop.dev/model-version"] == str(want.version)
    assert mv["spec"]["version"] == want.version
    if want.created:
        spec = mv["spec"]
        assert spec["gatesPassed"] is want.gates_passed
        assert spec["artifact"] == {"uri": ARTIFACT, "sha256": "a" * 64, "format": "skops"}
        assert spec["metrics"] == METRICS
        assert spec["lineage"] == {
            "dataset": "iris",
            "datasetDigest": DIGEST,
            "trainingRun": "iris-rf",
            "image": want.image,
            "estimator": "RandomForestClassifier",
            "hyperparameters": {},
        }
        assert "ownerReferences" not in mv["metadata"]  # outlives the run


def test_failure_message_is_clipped_in_status_but_not_in_the_condition() -> None:
    long = "x" * 5000
    kube = seeded(
        RUN, *finished("BackoffLimitExceeded", train_failed("TrainingFailed", message=long))
    )
    reconcile(reconcile_training_run, kube, TRAINING_RUN, "iris-rf")
    status = status_of(kube, TRAINING_RUN, "iris-rf")
    assert status["failureMessage"] == long[:4096]
    assert status["conditions"][0]["message"] == long


def test_lifecycle_from_pending_to_registered_and_frozen() -> None:
    """Wait for the Dataset, train, register once; then nothing moves it."""
    kube = seeded(RUN)
    assert reconcile(reconcile_training_run, kube, TRAINING_RUN, "iris-rf").phase == "Pending"
    kube.add(IRIS)
    created = reconcile(reconcile_training_run, kube, TRAINING_RUN, "iris-rf")
    assert [e.reason for e in created.events] == ["JobCreated"]
    finish_job(kube, JOB, "train", trained())
    done = reconcile(reconcile_training_run, kube, TRAINING_RUN, "iris-rf")
    assert [e.reason for e in done.events] == ["Trained"]
    kube.add(other_run_version(1))  # would be a conflict, were the run not frozen
    frozen = reconcile(reconcile_training_run, kube, TRAINING_RUN, "iris-rf")
    assert (frozen.phase, frozen.events) == ("Succeeded", [])
    assert writes(kube) == [
        "patch_status TrainingRun/iris-rf",
        "create Job/iris-rf-train",
        "patch_status TrainingRun/iris-rf",
        "create ModelVersion/iris-v1",
        "patch_status TrainingRun/iris-rf",
    ]


class CountingStaleKube(StaleModelVersionListKube):
    """Lists lag forever and every number is taken: counts the claims tried."""

    attempts = 0

    def create(self, manifest: Obj) -> tuple[Obj, bool]:
        if manifest["kind"] == "ModelVersion":
            self.attempts += 1
        return super().create(manifest)


def test_a_claim_that_keeps_colliding_retries_later_and_writes_nothing() -> None:
    kube = CountingStaleKube(
        [RUN, *finished(COMPLETE, trained()), other_run_version(1)], now=text(NOW)
    )
    with pytest.raises(RetryLaterError, match="could not claim a model version number") as error:
        reconcile(reconcile_training_run, kube, TRAINING_RUN, "iris-rf")
    assert error.value.delay == 1.0
    assert kube.attempts == 20
    assert writes(kube) == []
    assert status_of(kube, TRAINING_RUN, "iris-rf") == {}


def test_claim_model_version_is_idempotent_per_run() -> None:
    """Called twice for one run (a retried handler), it registers one version."""
    kube = seeded(RUN)
    ctx = Context(kube, CONFIG, NOW, CrdCache(kube))
    spec = TrainingRunSpec.model_validate(RUN["spec"])
    result = parse_train_result(json.dumps(trained()))
    assert result is not None
    first = claim_model_version(ctx, owner_of(RUN), spec, result, "img")
    second = claim_model_version(ctx, owner_of(RUN), spec, result, "img")
    assert first["metadata"]["name"] == second["metadata"]["name"] == "iris-v1"
    assert writes(kube) == ["create ModelVersion/iris-v1"]


def test_a_stuck_pod_is_announced_once_and_cleared_when_it_runs() -> None:
    """Reported within one poll, announced once, written once; gone once the pod runs."""
    kube = seeded(RUN, job(RUNNING), job_pod(job(RUNNING), waiting=("ErrImagePull", PULL_ERROR)))
    first = reconcile(reconcile_training_run, kube, TRAINING_RUN, "iris-rf")
    # The kubelet backs off: another waiting reason, the same problem.
    kube.update_status(
        kube.stored("v1", "Pod", "ml", f"{JOB}-abcde"),
        containerStatuses=[
            {
                "name": "train",
                "state": {
                    "waiting": {
                        "reason": "ImagePullBackOff",
                        "message": f'Back-off pulling image "x": ErrImagePull: {PULL_ERROR}',
                    }
                },
            }
        ],
    )
    again = reconcile(reconcile_training_run, kube, TRAINING_RUN, "iris-rf")
    assert [e.reason for e in first.events] == ["ImagePullFailed"]
    assert again.events == []
    assert writes(kube) == ["patch_status TrainingRun/iris-rf"]

    kube.update_status(
        kube.stored("v1", "Pod", "ml", f"{JOB}-abcde"),
        phase="Running",
        containerStatuses=[{"name": "train", "state": {"running": {}}}],
    )
    recovered = reconcile(reconcile_training_run, kube, TRAINING_RUN, "iris-rf")
    status = status_of(kube, TRAINING_RUN, "iris-rf")
    assert [(c["type"], c["reason"]) for c in status["conditions"]] == [
        ("Ready", "Training"),
        ("Reconciling", "Training"),
    ]
    assert recovered.events == []
