"""TrainingRun: Dataset readiness, the training Job, failures, and ModelVersion claims.

Table cases in the style of cert-manager's ``TestProcessItem``: each names the
objects in the world, then the status, the writes and the events one reconcile
must produce.  A claimed ModelVersion is checked in the store as well.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from driftloop import builders
from driftloop.api import API_VERSION, MODEL_VERSION, TRAINING_RUN, TrainingRunSpec
from driftloop.client import ConflictError, CrdCache
from driftloop.fake import FakeKube
from driftloop.policies import parse_train_result
from driftloop.reconcilers import Context, reconcile_training_run
from driftloop.reconcilers._outcome import owner_of
from driftloop.reconcilers.trainingrun import _job_end, register_model_version

from .harness import (
    CONFIG,
    DIGEST,
    NOW,
    NS,
    Obj,
    dataset,
    events,
    failed_create,
    finish_job,
    later,
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
    ConcurrentReconcileKube,
    CrashingKube,
    InFlightCreateKube,
    Killed,
    RacingRunKube,
    StaleJobCacheKube,
    StaleModelVersionListKube,
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
    #: Seconds after which the reconcile asks to run again (a version claim).
    requeue: float | None = None


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


def claimed(number: int, run: Obj = RUN) -> Obj:
    """The run as the reconcile that claimed ``number`` left it."""
    return with_status(run, phase="Running", jobName=JOB, modelVersionClaim=number)


def claim(
    name: str,
    number: int,
    *given: Obj,
    run: Obj = RUN,
    kube: Callable[[list[Obj]], FakeKube] | None = None,
    versions: frozenset[str] | None = None,
) -> Case:
    """The Job succeeded: the run records the number it claims, and registers it next."""
    return Case(
        name,
        [run, *given],
        {
            **FINISHED,
            "completionTime": text(NOW),
            "phase": "Running",
            "modelVersionClaim": number,
        },
        waiting("Registering"),
        f"claimed iris-v{number}; registering it",
        ["patch_status TrainingRun/iris-rf"],
        phase="Running",
        versions=versions,
        kube=kube or (lambda objects: seeded(*objects)),
        requeue=1.0,
    )


def success(
    name: str,
    mv: str,
    *given: Obj,
    registered: Registered,
    message: str = "evaluation gates passed",
    run: Obj | None = None,
    kube: Callable[[list[Obj]], FakeKube] | None = None,
    versions: frozenset[str] | None = None,
) -> Case:
    """The run registers ``mv``: the number it claimed (``run``: by default, claimed)."""
    run = claimed(registered.version) if run is None else run
    claim = (run.get("status") or {}).get("modelVersionClaim")
    return Case(
        name,
        [run, *given],
        {**succeeded_fields(mv), **({"modelVersionClaim": claim} if claim else {})},
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
        "the Dataset is ready: the training Job starts, created now",
        [RUN, IRIS],
        {**RUNNING_FIELDS, "startTime": text(NOW)},
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
    # ----------------------------------------- success: claim a number, then register
    claim(
        "the Job succeeded: the run claims iris-v1 in its own status, creating nothing yet",
        1,
        *finished(COMPLETE, trained()),
    ),
    claim(
        "the claim: the next number after the model's own versions; other models don't count",
        3,
        *finished(COMPLETE, trained()),
        other_run_version(1),
        other_run_version(2),
        other_run_version(7, model="wine"),
    ),
    success(
        "claimed: the claimed version is registered",
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
        "the run's image override is the lineage's image",
        "iris-v1",
        *finished(COMPLETE, trained()),
        run=claimed(1, {**RUN, "spec": {**RUN["spec"], "image": "driftloop/runtime:custom"}}),
        registered=Registered("iris-v1", 1, image="driftloop/runtime:custom"),
    ),
    success(
        "restart: the claimed version exists, made by this run (a create that landed late)",
        "iris-v2",
        *finished(COMPLETE, trained()),
        other_run_version(1),
        model_version(2, run_uid="iris-rf-uid"),
        run=claimed(2),
        registered=Registered("iris-v2", 2, created=False),
    ),
    success(
        "upgrade: a version registered before claims existed is found by the run's uid label",
        "iris-v4",
        *finished(COMPLETE, trained()),
        other_run_version(5),
        model_version(4, run_uid="iris-rf-uid"),
        run=RUN,
        registered=Registered("iris-v4", 4, created=False),
    ),
    claim(
        "the claimed number went to another run: the next free number is claimed",
        3,
        *finished(COMPLETE, trained()),
        other_run_version(1),
        other_run_version(2),
        run=claimed(2),
    ),
    claim(
        "taken, and the list lags behind: never the taken number again",
        2,
        *finished(COMPLETE, trained()),
        other_run_version(1),
        run=claimed(1),
        kube=lambda objects: StaleModelVersionListKube(objects, now=text(NOW)),
    ),
    claim(
        "race: another run takes iris-v1 just before this one creates it: iris-v2 next",
        2,
        *finished(COMPLETE, trained()),
        run=claimed(1),
        kube=lambda objects: RacingRunKube(objects, claim=other_run_version(1)),
        versions=frozenset({"iris-v1"}),
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
    assert outcome.requeue_after == case.requeue
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
            "testSize": 0.2,
            "randomState": 0,
            "libraryVersions": {},
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
    claimed = reconcile(reconcile_training_run, kube, TRAINING_RUN, "iris-rf")
    assert (claimed.phase, claimed.events, claimed.requeue_after) == ("Running", [], 1.0)
    done = reconcile(reconcile_training_run, kube, TRAINING_RUN, "iris-rf")
    assert [e.reason for e in done.events] == ["Trained"]
    kube.add(other_run_version(1))  # would be a conflict, were the run not frozen
    frozen = reconcile(reconcile_training_run, kube, TRAINING_RUN, "iris-rf")
    assert (frozen.phase, frozen.events) == ("Succeeded", [])
    assert writes(kube) == [
        "patch_status TrainingRun/iris-rf",
        "create Job/iris-rf-train",
        "patch_status TrainingRun/iris-rf",
        "patch_status TrainingRun/iris-rf",  # the claim of iris-v1
        "create ModelVersion/iris-v1",
        "patch_status TrainingRun/iris-rf",
    ]


def test_the_job_controller_starting_the_job_costs_no_status_write() -> None:
    """The run's start is its Job's creation, written with the Job: the Job
    controller's own startTime, set moments later, changes nothing (one write per
    run fewer in a burst of thousands)."""
    kube = seeded(RUN, IRIS)
    reconcile(reconcile_training_run, kube, TRAINING_RUN, "iris-rf")
    written = status_of(kube, TRAINING_RUN, "iris-rf")
    assert written["startTime"] == text(NOW)
    kube.update_status(kube.stored("batch/v1", "Job", NS, JOB), startTime=text(later(3)))
    reconcile(reconcile_training_run, kube, TRAINING_RUN, "iris-rf")
    assert writes(kube) == ["create Job/iris-rf-train", "patch_status TrainingRun/iris-rf"]
    assert status_of(kube, TRAINING_RUN, "iris-rf") == written


def test_a_claim_that_keeps_colliding_moves_on_one_number_per_reconcile() -> None:
    """Lists lag forever and iris-v1..v3 belong to other runs: each collision claims the
    next number (in status, creating nothing), until the run's own create succeeds."""
    kube = StaleModelVersionListKube(
        [RUN, *finished(COMPLETE, trained()), *(other_run_version(n) for n in (1, 2, 3))],
        now=text(NOW),
    )
    claims = []
    for _ in range(5):
        reconcile(reconcile_training_run, kube, TRAINING_RUN, "iris-rf")
        claims.append(status_of(kube, TRAINING_RUN, "iris-rf")["modelVersionClaim"])
    assert claims == [1, 2, 3, 4, 4]
    assert status_of(kube, TRAINING_RUN, "iris-rf")["modelVersion"] == "iris-v4"
    assert writes(kube) == ["patch_status TrainingRun/iris-rf"] * 4 + [
        "create ModelVersion/iris-v4",
        "patch_status TrainingRun/iris-rf",
    ]


def test_register_model_version_is_idempotent_per_claim() -> None:
    """Called twice with one claim (a retried handler), it registers one version;
    without a claim it only names the number to claim."""
    kube = seeded(RUN)
    ctx = Context(kube, CONFIG, NOW, CrdCache(kube))
    spec = TrainingRunSpec.model_validate(RUN["spec"])
    result = parse_train_result(json.dumps(trained()))
    assert result is not None
    assert register_model_version(ctx, owner_of(RUN), spec, result, "img", None) == 1
    first = register_model_version(ctx, owner_of(RUN), spec, result, "img", 1)
    second = register_model_version(ctx, owner_of(RUN), spec, result, "img", 1)
    assert isinstance(first, dict)
    assert isinstance(second, dict)
    assert first["metadata"]["name"] == second["metadata"]["name"] == "iris-v1"
    assert writes(kube) == ["create ModelVersion/iris-v1"]
    assert register_model_version(ctx, owner_of(RUN), spec, result, "img", None) == first


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


# ------------------------------------------------ registration under SIGKILL

RUN_B = training_run("iris-gb")
TERMINAL_PHASES = ("Succeeded", "Failed")


def _phase(kube: FakeKube, name: str) -> str | None:
    stored = kube.stored(API_VERSION, "TrainingRun", NS, name)
    return (stored.get("status") or {}).get("phase")  # type: ignore[no-any-return]


def _drive(kube: FakeKube, names: Sequence[str], rounds: int = 12) -> None:
    """Reconcile the runs in turn until each is terminal.

    A reconcile the operator was killed in, or whose status write met a newer
    object, runs again: kopf resumes every object after a restart, and retries
    after a conflict.
    """
    for _ in range(rounds):
        pending = [name for name in names if _phase(kube, name) not in TERMINAL_PHASES]
        if not pending:
            return
        for name in pending:
            with contextlib.suppress(Killed, ConflictError):
                reconcile(reconcile_training_run, kube, TRAINING_RUN, name)


def _assert_registered_once(kube: FakeKube, names: Sequence[str], numbers: int) -> None:
    """Each run Succeeded and points at the one ModelVersion labelled with its uid;
    the model's versions are 1..``numbers``, without gaps."""
    versions = kube.of_kind("ModelVersion")
    for name in names:
        run = kube.stored(API_VERSION, "TrainingRun", NS, name)
        mine = [
            mv["metadata"]["name"]
            for mv in versions
            if mv["metadata"]["labels"].get("driftloop.dev/training-run-uid")
            == run["metadata"]["uid"]
        ]
        assert _phase(kube, name) == "Succeeded"
        assert mine == [run["status"]["modelVersion"]], f"{name} registered {mine}"
    assert sorted(mv["spec"]["version"] for mv in versions) == list(range(1, numbers + 1))


def test_a_create_still_in_flight_from_a_killed_operator_is_not_registered_twice() -> None:
    """The observed duplicate: the killed operator's create of iris-v1 lands just after
    the restarted one looked for the run's version and before it counted the model's."""
    claimed = with_status(RUN, phase="Running", jobName=JOB, modelVersionClaim=1)
    result = parse_train_result(json.dumps(trained()))
    assert result is not None
    spec = TrainingRunSpec.model_validate(RUN["spec"])
    late = builders.model_version(owner_of(RUN), spec, result, 1, CONFIG.runtime_image)
    kube = InFlightCreateKube([claimed, *finished(COMPLETE, trained())], late)

    _drive(kube, ["iris-rf"])

    assert [mv["metadata"]["name"] for mv in kube.of_kind("ModelVersion")] == ["iris-v1"]
    assert status_of(kube, TRAINING_RUN, "iris-rf")["modelVersion"] == "iris-v1"


@pytest.mark.parametrize("claim", [None, 1], ids=["unclaimed", "claimed"])
def test_two_reconciles_of_one_run_racing_in_one_process_register_once(claim: int | None) -> None:
    """A timer and an update handler of one run overlap: the other reconcile runs whole
    between this one's first list of ModelVersions and what it does next."""
    run = RUN if claim is None else claimed(claim)

    def other(kube: FakeKube) -> None:
        reconcile(reconcile_training_run, kube, TRAINING_RUN, "iris-rf")

    kube = ConcurrentReconcileKube([run, *finished(COMPLETE, trained())], other)
    with contextlib.suppress(ConflictError):  # kopf retries
        reconcile(reconcile_training_run, kube, TRAINING_RUN, "iris-rf")
    _drive(kube, ["iris-rf"])
    _assert_registered_once(kube, ["iris-rf"], 1)


def _world(*runs: Obj) -> list[Obj]:
    """Runs of ``iris`` whose Jobs succeeded, and iris-v1 of another run."""
    return [obj for run in runs for obj in (run, *finished(COMPLETE, trained(), run=run))] + [
        other_run_version(1)
    ]


def _calls(*runs: Obj) -> int:
    """How many calls the runs' reconciles make when nothing is killed."""
    kube = CrashingKube(_world(*runs), kills=(), lands_after=None)
    _drive(kube, [r["metadata"]["name"] for r in runs])
    _assert_registered_once(kube, [r["metadata"]["name"] for r in runs], 1 + len(runs))
    return kube.calls


#: Where a write sent by the killed process ends up: lost, or applied after so many
#: calls of the restarted one.
LANDINGS = [None, 0, 1, 2, 3, 4, 5, 6, 8, 12]


@pytest.mark.parametrize("lands_after", LANDINGS, ids=[f"lands-after-{n}" for n in LANDINGS])
@pytest.mark.parametrize("runs", [(RUN,), (RUN, RUN_B)], ids=["one-run", "two-runs"])
def test_registration_is_exactly_once_whichever_call_the_operator_dies_in(
    runs: tuple[Obj, ...], lands_after: int | None
) -> None:
    names = [r["metadata"]["name"] for r in runs]
    for kill in range(_calls(*runs) + 2):
        kube = CrashingKube(_world(*runs), kills={kill}, lands_after=lands_after)
        _drive(kube, names)
        kube.land()  # what is still in flight arrives, however late
        try:
            _assert_registered_once(kube, names, 1 + len(runs))
        except AssertionError as error:
            raise AssertionError(f"killed during call {kill}: {error}") from error


def test_registration_is_exactly_once_under_repeated_kills() -> None:
    """Seeded schedules of several SIGKILLs while two runs of one model finish."""
    rng = random.Random(11)
    names = ["iris-rf", "iris-gb"]
    horizon = _calls(RUN, RUN_B) + 10
    for attempt in range(300):
        kills = set(rng.sample(range(horizon), rng.randint(1, 4)))
        lands_after = rng.choice(LANDINGS)
        kube = CrashingKube(_world(RUN, RUN_B), kills=kills, lands_after=lands_after)
        _drive(kube, names, rounds=20)
        kube.land()
        try:
            _assert_registered_once(kube, names, 3)
        except AssertionError as error:
            schedule = f"schedule {attempt}: kills {sorted(kills)}, lands after {lands_after}"
            raise AssertionError(f"{schedule}: {error}") from error


@pytest.mark.parametrize("succeeded", [True, False])
def test_a_finished_runs_job_is_deleted_after_the_retention(succeeded: bool) -> None:
    """The result is in the run's status; the Job and its pods go an hour later (a
    failed Job has no completionTime: its Failed condition dates it)."""
    kube = seeded(RUN, IRIS)
    reconcile(reconcile_training_run, kube, TRAINING_RUN, "iris-rf")
    finish_job(kube, JOB, "train", trained(), succeeded=succeeded)
    job = kube.get_job(NS, JOB)
    assert job is not None
    kube.update_status(
        job, conditions=[{**job["status"]["conditions"][0], "lastTransitionTime": text(NOW)}]
    )
    for _ in range(3):  # claim, register; or fail
        reconcile(reconcile_training_run, kube, TRAINING_RUN, "iris-rf")
    assert status_of(kube, TRAINING_RUN, "iris-rf")["phase"] == (
        "Succeeded" if succeeded else "Failed"
    )
    kube.writes.clear()
    config = dataclasses.replace(CONFIG, finished_job_retention=3600)
    kept = reconcile(
        reconcile_training_run, kube, TRAINING_RUN, "iris-rf", now=later(600), config=config
    )
    assert kept.requeue_after == 3000
    assert writes(kube) == []
    gone = reconcile(
        reconcile_training_run, kube, TRAINING_RUN, "iris-rf", now=later(3600), config=config
    )
    assert (gone.requeue_after, writes(kube)) == (None, ["delete Job/iris-rf-train"])
    again = reconcile(
        reconcile_training_run, kube, TRAINING_RUN, "iris-rf", now=later(7200), config=config
    )
    assert (again.phase, again.requeue_after, writes(kube)) == (
        "Succeeded" if succeeded else "Failed",
        None,
        ["delete Job/iris-rf-train"],  # nothing new: the run never recreates its Job
    )


@pytest.mark.parametrize(
    ("estimator", "task", "refused"),
    [
        ("RandomForestClassifier", "regression", True),
        ("Ridge", "classification", True),
        ("RandomForestClassifier", "classification", False),
        ("Ridge", "regression", False),
        ("Ridge", None, False),  # no task declared: the training Job checks the target
    ],
)
def test_an_estimator_for_another_task_than_the_datasets_is_refused_before_any_job(
    estimator: str, task: str | None, refused: bool
) -> None:
    run = training_run()
    run["spec"]["estimator"]["type"] = estimator
    kube = seeded(run, dataset(validated=True, **({"task": task} if task else {})))
    outcome = reconcile(reconcile_training_run, kube, TRAINING_RUN, "iris-rf")
    status = status_of(kube, TRAINING_RUN, "iris-rf")
    if not refused:
        assert writes(kube) == ["create Job/iris-rf-train", "patch_status TrainingRun/iris-rf"]
        assert status["phase"] == "Running"
        return
    other = "regression" if task == "classification" else "classification"
    message = f"estimator {estimator} is for {other}; Dataset 'iris' declares task {task}"
    assert writes(kube) == ["patch_status TrainingRun/iris-rf"]
    assert (status["phase"], status["failureReason"], status["failureMessage"]) == (
        "Failed",
        "TaskMismatch",
        message,
    )
    assert [(c["type"], c["status"], c["reason"]) for c in status["conditions"]] == stalled(
        "TaskMismatch"
    )
    assert events(outcome) == [("Warning", "TaskMismatch", message)]


@pytest.mark.parametrize(
    ("job_status", "end"),
    [
        ({"completionTime": "2026-11-30T12:00:00Z"}, "2026-11-30T12:00:00Z"),
        (
            {"conditions": [{"type": "Failed", "status": "True", "lastTransitionTime": "T1"}]},
            "T1",
        ),
        ({"conditions": [{"type": "Failed", "status": "False"}]}, None),
        ({}, None),
    ],
)
def test_a_jobs_end_is_its_completion_or_its_terminal_condition(
    job_status: dict[str, Any], end: str | None
) -> None:
    assert _job_end({"status": job_status}) == end


#: A fairness report as the runtime writes it: group B is selected far less than A.
UNFAIR_LINE = "sex: demographicParityDifference 0.54 > max 0.1 (A 0.7677, B 0.2277)"
UNFAIR = [
    {
        "feature": "sex",
        "positiveClass": "yes",
        "groups": [
            {"group": "A", "size": 99, "gated": True, "metrics": {"selectionRate": 0.7677}},
            {"group": "B", "size": 101, "gated": True, "metrics": {"selectionRate": 0.2277}},
        ],
        "otherGroups": 0,
        "otherRows": 0,
        "disparities": {"demographicParityDifference": 0.54},
        "failedGates": [UNFAIR_LINE],
    }
]
FAIR_RUN = {
    **RUN,
    "spec": {**RUN["spec"], "evaluation": {"fairness": {"maxDemographicParityDifference": 0.1}}},
}


def test_a_failed_fairness_gate_registers_a_version_rejected_for_it() -> None:
    from driftloop.reconcilers import reconcile_model_version

    result = trained(gatesPassed=False, fairness=UNFAIR)
    kube = seeded(claimed(1, FAIR_RUN), *finished(COMPLETE, result, FAIR_RUN))
    reconcile(reconcile_training_run, kube, TRAINING_RUN, "iris-rf")
    status = status_of(kube, TRAINING_RUN, "iris-rf")
    assert status["conditions"][0]["message"] == (
        f"registered iris-v1; evaluation gates failed: {UNFAIR_LINE}"
    )
    mv = kube.get(MODEL_VERSION, "ml", "iris-v1")
    assert mv is not None
    assert mv["spec"]["gatesPassed"] is False
    assert mv["spec"]["fairness"] == UNFAIR  # the per-group metrics, with the version

    reconcile(reconcile_model_version, kube, MODEL_VERSION, "iris-v1")
    mv_status = status_of(kube, MODEL_VERSION, "iris-v1")
    assert (mv_status["approval"], mv_status["approvalReason"]) == (
        "rejected",
        "FairnessGateFailed",
    )
    approved = next(c for c in mv_status["conditions"] if c["type"] == "Approved")
    assert (approved["status"], approved["reason"], approved["message"]) == (
        "False",
        "FairnessGateFailed",
        UNFAIR_LINE,
    )


@pytest.mark.parametrize(
    ("sensitive", "refused"),
    [([], True), ([{"name": "sex"}], False)],
)
def test_fairness_gates_on_a_dataset_without_sensitive_features_fail_before_any_job(
    sensitive: list[Obj], refused: bool
) -> None:
    kube = seeded(FAIR_RUN, dataset(validated=True, sensitiveFeatures=sensitive))
    outcome = reconcile(reconcile_training_run, kube, TRAINING_RUN, "iris-rf")
    status = status_of(kube, TRAINING_RUN, "iris-rf")
    if not refused:
        assert writes(kube) == ["create Job/iris-rf-train", "patch_status TrainingRun/iris-rf"]
        return
    message = (
        "evaluation.fairness gates need groups, and Dataset 'iris' declares no "
        "spec.sensitiveFeatures"
    )
    assert writes(kube) == ["patch_status TrainingRun/iris-rf"]
    assert (status["phase"], status["failureReason"], status["failureMessage"]) == (
        "Failed",
        "NoSensitiveFeatures",
        message,
    )
    assert events(outcome) == [("Warning", "NoSensitiveFeatures", message)]
