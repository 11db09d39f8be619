"""Dataset: spec and artifact-store checks, profile Jobs, refresh windows, versions.

Table cases in the style of cert-manager's ``TestProcessItem``: each names the
objects in the world and the clock, then the status, the writes and the events
one reconcile must produce.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest

from driftloop.api import DATASET, DatasetSpec
from driftloop.config import OperatorConfig
from driftloop.reconcilers import reconcile_dataset
from driftloop.reconcilers.dataset import HISTORY_LIMIT, refresh_window

from .harness import (
    CONFIG,
    DIGEST,
    NOW,
    Obj,
    artifact_store,
    dataset,
    events,
    failed_create,
    finish_job,
    later,
    ready_condition,
    reconcile,
    seeded,
    status_of,
    text,
    writes,
)
from .seeds import (
    COMPLETE,
    NO_PODS,
    RUNNING,
    StaleJobCacheKube,
    job_pod,
    pod,
    profile_job,
)

NEW_DIGEST = "sha256:" + "e" * 64
S3 = OperatorConfig(
    runtime_image=CONFIG.runtime_image, artifact_s3_bucket="models", artifact_s3_secret="s3-creds"
)
PROFILE_URI = "/artifacts/datasets/iris-iris-uid/g1-r0/profile.json"
REFRESH_URI = "/artifacts/datasets/iris-iris-uid/g1-r1/profile.json"
#: The dataset refreshing hourly, created an hour before NOW: window 1 is current.
HOURLY = {"refreshInterval": "1h"}
EARLIER = text(NOW - timedelta(hours=1))


def profiled(digest: str = DIGEST, rows: int = 150, uri: str = PROFILE_URI) -> Obj:
    """A ProfileResult as the runtime writes it (wire format)."""
    return {"ok": True, "digest": digest, "rows": rows, "columns": 5, "profileUri": uri}


def profile_failed(reason: str, **detail: str) -> Obj:
    return {"ok": False, "reason": reason, **detail}


def entry(digest: str, rows: int = 150, at: datetime = NOW - timedelta(hours=1)) -> Obj:
    return {"digest": digest, "rows": rows, "observedTime": text(at)}


def validated(*history: Obj, generation: int = 1, **spec: Any) -> Obj:
    """A Dataset the operator validated at generation 1, with its version history."""
    obj = dataset(validated=True, **spec)
    obj["metadata"]["generation"] = generation
    obj["status"].update(
        conditions=[{**ready_condition()[0], "lastTransitionTime": EARLIER}],
        rows=150,
        columns=5,
        profileUri=PROFILE_URI,
        lastRefreshTime=text(NOW - timedelta(hours=1)),
        history=list(history),
    )
    return obj


def failed_attempt(job: Obj) -> Obj:
    """A pod of ``job`` whose profile container failed (exit 1): an attempt before a retry."""
    failed = pod(job, "profile", profile_failed("SourceUnreadable"))
    failed["metadata"]["name"] += "-retried"
    failed["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] = 1
    return failed


def missing_store_a_while(obj: Obj) -> Obj:
    """``obj`` as reported while its artifact store was missing (the version stays)."""
    obj["status"].update(
        phase="Pending",
        conditions=[
            {
                "type": "Ready",
                "status": "False",
                "reason": "ArtifactStoreMissing",
                "message": "PersistentVolumeClaim 'artifacts' not found in ml",
                "lastTransitionTime": EARLIER,
            }
        ],
    )
    return obj


def failed_dataset() -> Obj:
    """A Dataset whose profile already failed, as the operator reported it."""
    obj = dataset()
    obj["status"] = {
        "observedGeneration": 1,
        "phase": "Failed",
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": "JobFailed",
                "message": "earlier",
                "lastTransitionTime": EARLIER,
            }
        ],
    }
    return obj


def ready_status(
    digest: str = DIGEST,
    history: Sequence[Obj] = (),
    *,
    at: datetime = NOW,
    uri: str = PROFILE_URI,
    rows: int = 150,
) -> Obj:
    """Every status field but conditions of a Dataset validated from a finished Job."""
    return {
        "observedGeneration": 1,
        "phase": "Ready",
        "version": digest,
        "rows": rows,
        "columns": 5,
        "profileUri": uri,
        "lastRefreshTime": text(at),
        "history": list(history),
    }


def validated_status(*history: Obj) -> Obj:
    """The status fields :func:`validated` seeds (what a no-op reconcile keeps)."""
    return {**ready_status(history=history, at=NOW - timedelta(hours=1))}


@dataclass(frozen=True)
class Case:
    name: str
    given: Sequence[Obj]
    #: Status fields except conditions, exactly.
    fields: Obj
    #: (type, status, reason) of every condition, Ready first.
    conditions: Sequence[tuple[str, str, str]]
    #: Ready's message: exact text, or a pattern it must match.
    message: str | re.Pattern[str]
    writes: Sequence[str]
    events: Sequence[tuple[str, str, str]] = ()
    config: OperatorConfig = CONFIG
    now: datetime = NOW
    phase: str = field(default="")

    def __post_init__(self) -> None:
        if not self.phase:
            object.__setattr__(self, "phase", self.fields["phase"])


IRIS = dataset()
PVC = artifact_store()
VALIDATING = [("Ready", "False", "Validating"), ("Reconciling", "True", "Validating")]
VALIDATED = [("Ready", "True", "Validated")]
PROFILE_G1 = "iris-profile-g1"
V1 = entry(DIGEST)
#: A Dataset of the same name that was deleted and created again: another uid.
OTHER_OWNER = {**IRIS, "metadata": {**IRIS["metadata"], "uid": "other-uid"}}


def stalled(reason: str) -> list[tuple[str, str, str]]:
    return [("Ready", "False", reason), ("Stalled", "True", reason)]


def waiting(reason: str) -> list[tuple[str, str, str]]:
    return [("Ready", "False", reason), ("Reconciling", "True", reason)]


UNBOUND = "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims."
NO_KEY = "couldn't find key AWS_SECRET_ACCESS_KEY in Secret ml/s3-creds"
QUOTA = "exceeded quota: no-pods, requested: pods=1, used: pods=0, limited: pods=0"
RUNNING_JOB = profile_job(IRIS, RUNNING)
STUCK_POD = f"pod {PROFILE_G1}-abcde"


def reported(reason: str) -> Obj:
    """The Dataset as an earlier reconcile left it: Validating, Ready=False with ``reason``."""
    obj = dataset()
    obj["status"] = {
        "observedGeneration": 1,
        "phase": "Validating",
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": reason,
                "message": "earlier",
                "lastTransitionTime": EARLIER,
            }
        ],
    }
    return obj


CASES = [
    # ---------------------------------------------------------------- spec
    Case(
        "invalid spec: the target is also a feature",
        [dataset(target="sepal_length"), PVC],
        {"observedGeneration": 1, "phase": "Failed"},
        stalled("InvalidSpec"),
        re.compile(r".*spec\.target must not also be listed in spec\.features.*", re.S),
        ["patch_status Dataset/iris"],
    ),
    Case(
        "invalid spec: the source is not a URI",
        [dataset(source="iris.csv"), PVC],
        {"observedGeneration": 1, "phase": "Failed"},
        stalled("InvalidSpec"),
        re.compile(r".*source.*String should match pattern.*", re.S),
        ["patch_status Dataset/iris"],
    ),
    # ------------------------------------------------------ artifact store
    Case(
        "PVC mode: the artifact PVC is missing",
        [IRIS],
        {"observedGeneration": 1, "phase": "Pending"},
        [
            ("Ready", "False", "ArtifactStoreMissing"),
            ("Reconciling", "True", "ArtifactStoreMissing"),
        ],
        "PersistentVolumeClaim 'artifacts' not found in ml",
        ["patch_status Dataset/iris"],
    ),
    Case(
        "S3 mode: the credentials Secret is missing (a PVC does not help)",
        [IRIS, PVC],
        {"observedGeneration": 1, "phase": "Pending"},
        [
            ("Ready", "False", "ArtifactStoreMissing"),
            ("Reconciling", "True", "ArtifactStoreMissing"),
        ],
        "Secret 's3-creds' with the S3 credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) "
        "not found in ml",
        ["patch_status Dataset/iris"],
        config=S3,
    ),
    Case(
        "S3 mode: the Secret exists, so the profile Job starts",
        [IRIS, artifact_store("s3-creds")],
        {"observedGeneration": 1, "phase": "Validating"},
        VALIDATING,
        "Job iris-profile-g1 is validating and profiling the data",
        ["create Job/iris-profile-g1", "patch_status Dataset/iris"],
        [("Normal", "Profiling", "started Job iris-profile-g1")],
        config=S3,
    ),
    # ------------------------------------------------------ profile Jobs
    Case(
        "first reconcile starts the profile Job",
        [IRIS, PVC],
        {"observedGeneration": 1, "phase": "Validating"},
        VALIDATING,
        "Job iris-profile-g1 is validating and profiling the data",
        ["create Job/iris-profile-g1", "patch_status Dataset/iris"],
        [("Normal", "Profiling", "started Job iris-profile-g1")],
    ),
    Case(
        "a new generation gets its own Job, even with an older version in status",
        [validated(V1, generation=3), PVC],
        {**validated_status(V1), "observedGeneration": 3, "phase": "Validating"},
        VALIDATING,
        "Job iris-profile-g3 is validating and profiling the data",
        ["create Job/iris-profile-g3", "patch_status Dataset/iris"],
        [("Normal", "Profiling", "started Job iris-profile-g3")],
    ),
    Case(
        "refreshing half-hourly: two hours in, window 4 has its Job",
        [dataset(refreshInterval="30m"), PVC],
        {"observedGeneration": 1, "phase": "Validating"},
        VALIDATING,
        "Job iris-profile-g1-r4 is validating and profiling the data",
        ["create Job/iris-profile-g1-r4", "patch_status Dataset/iris"],
        [("Normal", "Profiling", "started Job iris-profile-g1-r4")],
        now=later(3600),
    ),
    Case(
        "the Job is running: still validating, nothing created",
        [IRIS, PVC, profile_job(IRIS, RUNNING)],
        {"observedGeneration": 1, "phase": "Validating"},
        VALIDATING,
        "Job iris-profile-g1 is validating and profiling the data",
        ["patch_status Dataset/iris"],
    ),
    Case(
        "a refresh window starts: the current version stays Ready, status untouched",
        [validated(V1, **HOURLY), PVC],
        validated_status(V1),
        VALIDATED,
        "",
        ["create Job/iris-profile-g1-r1"],
        [("Normal", "Profiling", "started Job iris-profile-g1-r1")],
    ),
    Case(
        "the refresh is running: nothing to write",
        [validated(V1, **HOURLY), PVC, profile_job(IRIS, RUNNING, refresh=1)],
        validated_status(V1),
        VALIDATED,
        "",
        [],
    ),
    # ---------------------------------------------------- pods that cannot run
    Case(
        "the profile pod cannot be scheduled (an unbound claim): PodUnschedulable, announced",
        [IRIS, PVC, RUNNING_JOB, job_pod(RUNNING_JOB, unschedulable=UNBOUND)],
        {"observedGeneration": 1, "phase": "Validating"},
        waiting("PodUnschedulable"),
        f"{STUCK_POD}: {UNBOUND}",
        ["patch_status Dataset/iris"],
        [("Warning", "PodUnschedulable", f"{STUCK_POD}: {UNBOUND}")],
    ),
    Case(
        "S3 mode: the Secret lacks a key: ConfigError",
        [
            IRIS,
            artifact_store("s3-creds"),
            profile_job(IRIS, RUNNING, config=S3),
            job_pod(
                profile_job(IRIS, RUNNING, config=S3),
                waiting=("CreateContainerConfigError", NO_KEY),
            ),
        ],
        {"observedGeneration": 1, "phase": "Validating"},
        waiting("ConfigError"),
        f"{STUCK_POD}: container profile: {NO_KEY}",
        ["patch_status Dataset/iris"],
        [("Warning", "ConfigError", f"{STUCK_POD}: container profile: {NO_KEY}")],
        config=S3,
    ),
    Case(
        "a quota refuses the profile pod: QuotaExceeded",
        [IRIS, PVC, profile_job(IRIS, NO_PODS), failed_create(profile_job(IRIS, NO_PODS), QUOTA)],
        {"observedGeneration": 1, "phase": "Validating"},
        waiting("QuotaExceeded"),
        f"cannot create pods: {QUOTA}",
        ["patch_status Dataset/iris"],
        [("Warning", "QuotaExceeded", f"cannot create pods: {QUOTA}")],
    ),
    Case(
        "a problem already reported is not announced again",
        [
            reported("PodUnschedulable"),
            PVC,
            RUNNING_JOB,
            job_pod(RUNNING_JOB, unschedulable=UNBOUND),
        ],
        {"observedGeneration": 1, "phase": "Validating"},
        waiting("PodUnschedulable"),
        f"{STUCK_POD}: {UNBOUND}",
        ["patch_status Dataset/iris"],
    ),
    Case(
        "the pod recovered: Validating again",
        [reported("PodUnschedulable"), PVC, RUNNING_JOB],
        {"observedGeneration": 1, "phase": "Validating"},
        VALIDATING,
        "Job iris-profile-g1 is validating and profiling the data",
        ["patch_status Dataset/iris"],
    ),
    Case(
        "a refresh's pod cannot run: the current version stays Ready, status untouched",
        [
            validated(V1, **HOURLY),
            PVC,
            profile_job(IRIS, RUNNING, refresh=1),
            job_pod(profile_job(IRIS, RUNNING, refresh=1), unschedulable=UNBOUND),
        ],
        validated_status(V1),
        VALIDATED,
        "",
        [],
    ),
    # ----------------------------------------------------------- success
    Case(
        "the Job succeeded: Ready with the first version, stamped with its completion",
        [
            IRIS,
            PVC,
            profile_job(IRIS, COMPLETE),
            pod(profile_job(IRIS, COMPLETE), "profile", profiled()),
        ],
        ready_status(history=[entry(DIGEST, at=NOW)]),
        VALIDATED,
        f"150 rows, 5 columns, {DIGEST}",
        ["patch_status Dataset/iris"],
        [("Normal", "Validated", f"150 rows, version {DIGEST}")],
        now=later(90),
    ),
    Case(
        "a Job without completionTime is stamped with the clock",
        [
            IRIS,
            PVC,
            profile_job(IRIS, COMPLETE, completion=None),
            pod(profile_job(IRIS, COMPLETE), "profile", profiled()),
        ],
        ready_status(history=[entry(DIGEST, at=later(90))], at=later(90)),
        VALIDATED,
        f"150 rows, 5 columns, {DIGEST}",
        ["patch_status Dataset/iris"],
        [("Normal", "Validated", f"150 rows, version {DIGEST}")],
        now=later(90),
    ),
    Case(
        "a refresh finds new content: NewVersion, history grows, the old Job goes",
        [
            validated(V1, **HOURLY),
            PVC,
            profile_job(IRIS, COMPLETE),
            profile_job(IRIS, COMPLETE, refresh=1),
            pod(
                profile_job(IRIS, COMPLETE, refresh=1),
                "profile",
                profiled(NEW_DIGEST, 160, REFRESH_URI),
            ),
        ],
        ready_status(NEW_DIGEST, [entry(NEW_DIGEST, 160, NOW), V1], uri=REFRESH_URI, rows=160),
        VALIDATED,
        f"160 rows, 5 columns, {NEW_DIGEST}",
        ["delete Job/iris-profile-g1", "patch_status Dataset/iris"],
        [("Normal", "NewVersion", f"dataset content changed: {NEW_DIGEST}")],
    ),
    Case(
        "a refresh finds the same content: no event, same history, newer refresh time",
        [
            validated(V1, **HOURLY),
            PVC,
            profile_job(IRIS, COMPLETE),
            profile_job(IRIS, COMPLETE, refresh=1),
            pod(profile_job(IRIS, COMPLETE, refresh=1), "profile", profiled(uri=REFRESH_URI)),
        ],
        ready_status(history=[V1], uri=REFRESH_URI),
        VALIDATED,
        f"150 rows, 5 columns, {DIGEST}",
        ["delete Job/iris-profile-g1", "patch_status Dataset/iris"],
    ),
    Case(
        f"the history keeps the newest {HISTORY_LIMIT} versions",
        [
            validated(*(entry(f"sha256:{i:064x}") for i in range(HISTORY_LIMIT)), **HOURLY),
            PVC,
            profile_job(IRIS, COMPLETE, refresh=1),
            pod(
                profile_job(IRIS, COMPLETE, refresh=1),
                "profile",
                profiled(NEW_DIGEST, uri=REFRESH_URI),
            ),
        ],
        ready_status(
            NEW_DIGEST,
            [
                entry(NEW_DIGEST, at=NOW),
                *(entry(f"sha256:{i:064x}") for i in range(HISTORY_LIMIT - 1)),
            ],
            uri=REFRESH_URI,
        ),
        VALIDATED,
        f"150 rows, 5 columns, {NEW_DIGEST}",
        ["patch_status Dataset/iris"],
        [("Normal", "NewVersion", f"dataset content changed: {NEW_DIGEST}")],
    ),
    Case(
        "a version from before history was kept: recorded, and announced as new",
        [
            validated(**HOURLY),
            PVC,
            profile_job(IRIS, COMPLETE, refresh=1),
            pod(
                profile_job(IRIS, COMPLETE, refresh=1),
                "profile",
                profiled(NEW_DIGEST, uri=REFRESH_URI),
            ),
        ],
        ready_status(NEW_DIGEST, [entry(NEW_DIGEST, at=NOW)], uri=REFRESH_URI),
        VALIDATED,
        f"150 rows, 5 columns, {NEW_DIGEST}",
        ["patch_status Dataset/iris"],
        [("Normal", "NewVersion", f"dataset content changed: {NEW_DIGEST}")],
    ),
    Case(
        "superseded Jobs of this Dataset go; another owner's Job with its labels stays",
        [
            validated(V1, generation=2),
            PVC,
            profile_job(IRIS, COMPLETE),
            profile_job(IRIS, COMPLETE, refresh=4),
            profile_job(OTHER_OWNER, COMPLETE, generation=7),
            profile_job(IRIS, COMPLETE, generation=2),
            pod(profile_job(IRIS, COMPLETE, generation=2), "profile", profiled()),
        ],
        {**ready_status(history=[V1]), "observedGeneration": 2},
        VALIDATED,
        f"150 rows, 5 columns, {DIGEST}",
        [
            "delete Job/iris-profile-g1",
            "delete Job/iris-profile-g1-r4",
            "patch_status Dataset/iris",
        ],
        [],
    ),
    # ----------------------------------------------------------- failure
    Case(
        "a rule failed: its own reason (TooManyMissing) names the rule and column, and stalls",
        [
            IRIS,
            PVC,
            profile_job(IRIS, "PodFailurePolicy"),
            pod(
                profile_job(IRIS, RUNNING),
                "profile",
                profile_failed(
                    "ValidationFailed",
                    rule="maxNullRatio",
                    column="petal_width",
                    message="12% null",
                ),
            ),
        ],
        {"observedGeneration": 1, "phase": "Failed"},
        stalled("TooManyMissing"),
        "rule maxNullRatio failed, column 'petal_width': 12% null",
        ["patch_status Dataset/iris"],
        [
            (
                "Warning",
                "TooManyMissing",
                "rule maxNullRatio failed, column 'petal_width': 12% null",
            )
        ],
    ),
    Case(
        "the source cannot be read: DataUnavailable waits (not stalled)",
        [
            IRIS,
            PVC,
            profile_job(IRIS, "BackoffLimitExceeded"),
            pod(
                profile_job(IRIS, RUNNING),
                "profile",
                profile_failed("DataUnavailable", message="no such file"),
            ),
        ],
        {"observedGeneration": 1, "phase": "Failed"},
        [("Ready", "False", "DataUnavailable"), ("Reconciling", "True", "DataUnavailable")],
        "no such file",
        ["patch_status Dataset/iris"],
        [("Warning", "DataUnavailable", "no such file")],
    ),
    Case(
        "a failed result without a reason takes the Job's",
        [
            IRIS,
            PVC,
            profile_job(IRIS, "BackoffLimitExceeded"),
            pod(profile_job(IRIS, RUNNING), "profile", {"ok": False, "message": "killed"}),
        ],
        {"observedGeneration": 1, "phase": "Failed"},
        stalled("JobFailed"),
        "killed",
        ["patch_status Dataset/iris"],
        [("Warning", "JobFailed", "killed")],
    ),
    Case(
        "the pod left no message: JobFailed with the Job's message",
        [IRIS, PVC, profile_job(IRIS, "BackoffLimitExceeded")],
        {"observedGeneration": 1, "phase": "Failed"},
        stalled("JobFailed"),
        "Job has BackoffLimitExceeded",
        ["patch_status Dataset/iris"],
        [("Warning", "JobFailed", "Job has BackoffLimitExceeded")],
    ),
    Case(
        "the Job ran out of time: DeadlineExceeded stalls",
        [IRIS, PVC, profile_job(IRIS, "DeadlineExceeded")],
        {"observedGeneration": 1, "phase": "Failed"},
        stalled("DeadlineExceeded"),
        "Job has DeadlineExceeded",
        ["patch_status Dataset/iris"],
        [("Warning", "DeadlineExceeded", "Job has DeadlineExceeded")],
    ),
    Case(
        # Found by the fault suite (tests/faults: freeing the artifact PVC): the finished
        # Job's pods went (pod GC, a drain, a user) after the version was read from them.
        "the version was read from this Job, whose pods are gone since: still Ready",
        [validated(V1), PVC, profile_job(IRIS, COMPLETE)],
        validated_status(V1),
        VALIDATED,
        "",
        [],
    ),
    Case(
        "a refresh Job's pods went before its result was read: the current version stays",
        [validated(V1, **HOURLY), PVC, profile_job(IRIS, COMPLETE, refresh=1)],
        validated_status(V1),
        VALIDATED,
        "",
        [],
    ),
    Case(
        "only a failed attempt's pod is left of the Job that succeeded: still Ready",
        [
            validated(V1),
            PVC,
            profile_job(IRIS, COMPLETE),
            failed_attempt(profile_job(IRIS, COMPLETE)),
        ],
        validated_status(V1),
        VALIDATED,
        "",
        [],
    ),
    Case(
        "the artifact store is back; the version's Job has no pods left: Ready again",
        [missing_store_a_while(validated(V1)), PVC, profile_job(IRIS, COMPLETE)],
        validated_status(V1),
        VALIDATED,
        f"150 rows, 5 columns, {DIGEST}",
        ["patch_status Dataset/iris"],
    ),
    Case(
        "the Job succeeded without a result: ResultUnreadable stalls",
        [IRIS, PVC, profile_job(IRIS, COMPLETE)],
        {"observedGeneration": 1, "phase": "Failed"},
        stalled("ResultUnreadable"),
        "Job iris-profile-g1 failed",
        ["patch_status Dataset/iris"],
        [("Warning", "ResultUnreadable", "Job iris-profile-g1 failed")],
    ),
    Case(
        "the Job succeeded with a garbled result: ResultUnreadable",
        [
            IRIS,
            PVC,
            profile_job(IRIS, COMPLETE),
            pod(profile_job(IRIS, COMPLETE), "profile", '{"ok": tr'),
        ],
        {"observedGeneration": 1, "phase": "Failed"},
        stalled("ResultUnreadable"),
        "Job iris-profile-g1 failed",
        ["patch_status Dataset/iris"],
        [("Warning", "ResultUnreadable", "Job iris-profile-g1 failed")],
    ),
    Case(
        "the Job succeeded but the result says not ok, without a reason: ResultUnreadable",
        [
            IRIS,
            PVC,
            profile_job(IRIS, COMPLETE),
            pod(profile_job(IRIS, COMPLETE), "profile", {"ok": False}),
        ],
        {"observedGeneration": 1, "phase": "Failed"},
        stalled("ResultUnreadable"),
        "Job iris-profile-g1 failed",
        ["patch_status Dataset/iris"],
        [("Warning", "ResultUnreadable", "Job iris-profile-g1 failed")],
    ),
    Case(
        "the Job succeeded but the result failed a rule: the result's reason wins",
        [
            IRIS,
            PVC,
            profile_job(IRIS, COMPLETE),
            pod(
                profile_job(IRIS, COMPLETE),
                "profile",
                profile_failed("ValidationFailed", rule="minRows"),
            ),
        ],
        {"observedGeneration": 1, "phase": "Failed"},
        stalled("TooFewRows"),
        "rule minRows failed",
        ["patch_status Dataset/iris"],
        [("Warning", "TooFewRows", "rule minRows failed")],
    ),
    Case(
        "another container's message is not the profile's",
        [
            IRIS,
            PVC,
            profile_job(IRIS, COMPLETE),
            pod(profile_job(IRIS, COMPLETE), "sidecar", profiled()),
        ],
        {"observedGeneration": 1, "phase": "Failed"},
        stalled("ResultUnreadable"),
        "Job iris-profile-g1 failed",
        ["patch_status Dataset/iris"],
        [("Warning", "ResultUnreadable", "Job iris-profile-g1 failed")],
    ),
    Case(
        "a refresh of a Ready Dataset fails: Failed, announced",
        [
            validated(V1, **HOURLY),
            PVC,
            profile_job(IRIS, "BackoffLimitExceeded", refresh=1),
            pod(
                profile_job(IRIS, RUNNING, refresh=1),
                "profile",
                profile_failed("DataUnavailable", message="gone"),
            ),
        ],
        {**validated_status(V1), "phase": "Failed"},
        [("Ready", "False", "DataUnavailable"), ("Reconciling", "True", "DataUnavailable")],
        f"gone (the last validated version, {DIGEST}, is kept)",
        ["patch_status Dataset/iris"],
        [("Warning", "DataUnavailable", f"gone (the last validated version, {DIGEST}, is kept)")],
    ),
    Case(
        "a failure already reported is not announced again",
        [failed_dataset(), PVC, profile_job(IRIS, "BackoffLimitExceeded")],
        {"observedGeneration": 1, "phase": "Failed"},
        stalled("JobFailed"),
        "Job has BackoffLimitExceeded",
        ["patch_status Dataset/iris"],
        [],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_reconcile_dataset(case: Case) -> None:
    kube = seeded(*case.given)
    outcome = reconcile(reconcile_dataset, kube, DATASET, "iris", now=case.now, config=case.config)

    status = status_of(kube, DATASET, "iris")
    assert {k: v for k, v in status.items() if k != "conditions"} == case.fields
    got = [(c["type"], c["status"], c["reason"]) for c in status["conditions"]]
    assert got == list(case.conditions)
    message = status["conditions"][0]["message"]
    if isinstance(case.message, str):
        assert message == case.message
    else:
        assert case.message.fullmatch(message), message
    assert writes(kube) == list(case.writes)
    assert events(outcome) == list(case.events)
    assert outcome.phase == case.phase


def test_the_profile_job_runs_the_profile_command_of_the_current_window() -> None:
    kube = seeded(dataset(**HOURLY), artifact_store())
    reconcile(reconcile_dataset, kube, DATASET, "iris")
    create = kube.writes[0]
    container = create.body["spec"]["template"]["spec"]["containers"][0]
    assert (container["name"], container["args"]) == ("profile", ["profile"])
    assert create.body["metadata"]["ownerReferences"][0]["uid"] == "iris-uid"
    assert "g1-r1" in next(e["value"] for e in container["env"] if e["name"] == "DRIFTLOOP_REQUEST")


def test_a_job_another_worker_just_created_is_used_without_an_event() -> None:
    kube = StaleJobCacheKube([IRIS, PVC, profile_job(IRIS, RUNNING)], now=text(NOW))
    outcome = reconcile(reconcile_dataset, kube, DATASET, "iris")
    assert writes(kube) == ["patch_status Dataset/iris"]
    assert events(outcome) == []
    assert outcome.phase == "Validating"


def test_lifecycle_from_creation_to_a_refreshed_version() -> None:
    """Create, profile, settle, refresh: each step writes once, then nothing."""
    kube = seeded(dataset(**HOURLY), artifact_store())
    reconcile(reconcile_dataset, kube, DATASET, "iris", now=NOW - timedelta(minutes=30))
    finish_job(kube, PROFILE_G1, "profile", profiled())
    outcome = reconcile(reconcile_dataset, kube, DATASET, "iris", now=NOW - timedelta(minutes=29))
    assert [e.reason for e in outcome.events] == ["Validated"]
    again = reconcile(reconcile_dataset, kube, DATASET, "iris", now=NOW - timedelta(minutes=1))
    assert again.events == []
    assert writes(kube) == [
        "create Job/iris-profile-g1",
        "patch_status Dataset/iris",
        "patch_status Dataset/iris",
    ]

    kube.writes.clear()
    reconcile(reconcile_dataset, kube, DATASET, "iris", now=later(1))
    finish_job(kube, "iris-profile-g1-r1", "profile", profiled(NEW_DIGEST, uri=REFRESH_URI))
    outcome = reconcile(reconcile_dataset, kube, DATASET, "iris", now=later(2))
    reconcile(reconcile_dataset, kube, DATASET, "iris", now=later(3))
    assert [e.reason for e in outcome.events] == ["NewVersion"]
    assert writes(kube) == [
        "create Job/iris-profile-g1-r1",
        "delete Job/iris-profile-g1",
        "patch_status Dataset/iris",
    ]
    status = status_of(kube, DATASET, "iris")
    assert [h["digest"] for h in status["history"]] == [NEW_DIGEST, DIGEST]
    assert status["version"] == NEW_DIGEST


@pytest.mark.parametrize(
    ("interval", "now", "window"),
    [
        (None, later(86400), 0),
        ("1h", NOW - timedelta(hours=1), 0),
        ("1h", NOW - timedelta(minutes=1), 0),
        ("1h", NOW, 1),
        ("1h", later(3600 * 5 + 59), 6),
        ("90m", later(3600 * 2), 2),
        ("1h", NOW - timedelta(hours=3), 0),  # a clock before creation: window 0
        ("250ms", NOW - timedelta(hours=1) + timedelta(seconds=5), 5),  # at most one a second
    ],
)
def test_refresh_window(interval: str | None, now: datetime, window: int) -> None:
    spec = DatasetSpec.model_validate({**IRIS["spec"], "refreshInterval": interval})
    assert refresh_window(spec, IRIS["metadata"]["creationTimestamp"], now) == window


# ------------------------------------------------------------------ refused data
#: Every rule the profile Job reports, the Ready reason it becomes, and a message as
#: the runtime writes it (naming the column, row or value).
REFUSALS = [
    ("emptyFile", "EmptyFile", None, "the source file is empty"),
    ("noRows", "NoRows", None, "the source has a header (5 columns) and no data rows"),
    ("readable", "UnreadableFile", None, "the source is not UTF-8 text: byte 0 is 0xff"),
    ("malformedRow", "MalformedRow", None, "line 7 has 6 fields, the header has 5: '1,2,3'"),
    ("duplicateColumn", "DuplicateColumn", "petal_width", "column 'petal_width' appears twice"),
    ("missingColumn", "MissingColumn", "petal_width", "feature column 'petal_width' is absent"),
    ("missingTarget", "MissingTarget", "species", "target column 'species' is absent"),
    ("minRows", "TooFewRows", None, "3 rows, fewer than minRows=10"),
    ("maxRows", "TooManyRows", None, "30 rows, more than maxRows=10"),
    ("maxNullRatio", "TooManyMissing", "petal_width", "0.5 missing (the first in row 2)"),
    ("allowedValues", "UnexpectedCategory", "color", "values outside allowedValues: ['x']"),
    ("numericType", "NonNumericValue", "petal_width", "non-numeric values (e.g. 'abc' in row 2)"),
    ("nonFinite", "NonFiniteValue", "petal_width", "1 infinite value(s) (e.g. inf in row 2)"),
    ("targetClasses", "TooFewClasses", "species", "target 'species' has only 'setosa'"),
    ("targetNumeric", "TargetNotNumeric", "species", "regression target 'species' is text"),
    ("noFiles", "NoFiles", None, "the prefix s3://lake/iris/ holds no Parquet file"),
    (
        "schemaMismatch",
        "SchemaMismatch",
        None,
        "day=2/part-0.parquet has column 'petal_width' as string, not double",
    ),
]


def _refused(rule: str, column: str | None, message: str) -> Obj:
    detail = {"rule": rule, "message": message}
    if column:
        detail["column"] = column
    return profile_failed("ValidationFailed", **detail)


def _refusal_text(rule: str, column: str | None, message: str) -> str:
    named = f"rule {rule} failed" + (f", column {column!r}" if column else "")
    return f"{named}: {message}"


def test_every_refusal_class_has_its_own_reason() -> None:
    """The table covers every rule the runtime can report, each with a reason of its own."""
    from driftloop_contract import ValidationRule

    assert {rule for rule, *_ in REFUSALS} == {r.value for r in ValidationRule}
    assert len({reason for _, reason, *_ in REFUSALS}) == len(REFUSALS)


@pytest.mark.parametrize(
    ("rule", "reason", "column", "message"), REFUSALS, ids=[r[0] for r in REFUSALS]
)
def test_refused_data_fails_the_dataset_with_the_rules_reason(
    rule: str, reason: str, column: str | None, message: str
) -> None:
    kube = seeded(
        IRIS,
        PVC,
        profile_job(IRIS, "PodFailurePolicy"),
        pod(profile_job(IRIS, RUNNING), "profile", _refused(rule, column, message)),
    )
    outcome = reconcile(reconcile_dataset, kube, DATASET, "iris")
    status = status_of(kube, DATASET, "iris")
    assert {k: v for k, v in status.items() if k != "conditions"} == {
        "observedGeneration": 1,
        "phase": "Failed",
    }
    text_ = _refusal_text(rule, column, message)
    got = [(c["type"], c["status"], c["reason"], c["message"]) for c in status["conditions"]]
    assert got == [("Ready", "False", reason, text_), ("Stalled", "True", reason, text_)]
    assert events(outcome) == [("Warning", reason, text_)]


@pytest.mark.parametrize(
    ("rule", "reason", "column", "message"), REFUSALS, ids=[r[0] for r in REFUSALS]
)
def test_refused_refresh_keeps_the_last_validated_version(
    rule: str, reason: str, column: str | None, message: str
) -> None:
    """New content that cannot be trained on: Ready=False with the rule's reason, and
    nothing lost: version, rows, profile and history still name the last good content."""
    kube = seeded(
        validated(V1, **HOURLY),
        PVC,
        profile_job(IRIS, "PodFailurePolicy", refresh=1),
        pod(profile_job(IRIS, RUNNING, refresh=1), "profile", _refused(rule, column, message)),
    )
    reconcile(reconcile_dataset, kube, DATASET, "iris")
    status = status_of(kube, DATASET, "iris")
    assert {k: v for k, v in status.items() if k != "conditions"} == {
        **validated_status(V1),
        "phase": "Failed",
    }
    ready = status["conditions"][0]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "False", reason)
    assert ready["message"] == (
        f"{_refusal_text(rule, column, message)} (the last validated version, {DIGEST}, is kept)"
    )


def test_a_rule_of_a_newer_runtime_keeps_the_generic_reason() -> None:
    kube = seeded(
        IRIS,
        PVC,
        profile_job(IRIS, "PodFailurePolicy"),
        pod(profile_job(IRIS, RUNNING), "profile", _refused("someNewRule", None, "why")),
    )
    reconcile(reconcile_dataset, kube, DATASET, "iris")
    ready = status_of(kube, DATASET, "iris")["conditions"][0]
    assert (ready["reason"], ready["message"]) == (
        "ValidationFailed",
        "rule someNewRule failed: why",
    )


def test_a_refresh_after_a_refused_one_keeps_the_refusal_until_it_finishes() -> None:
    """Not Ready=False beside phase Ready: the next window's Job runs, the refusal stands."""
    kube = seeded(
        validated(V1, **HOURLY),
        PVC,
        profile_job(IRIS, "PodFailurePolicy", refresh=1),
        pod(
            profile_job(IRIS, RUNNING, refresh=1),
            "profile",
            _refused("nonFinite", "petal_width", "1 infinite value(s) (e.g. inf in row 2)"),
        ),
    )
    reconcile(reconcile_dataset, kube, DATASET, "iris")
    refused = status_of(kube, DATASET, "iris")
    outcome = reconcile(reconcile_dataset, kube, DATASET, "iris", now=later(3600))
    assert writes(kube)[-1] == "create Job/iris-profile-g1-r2"
    status = status_of(kube, DATASET, "iris")
    assert status == refused
    assert (status["phase"], outcome.phase) == ("Failed", "Failed")
    assert [(c["type"], c["status"], c["reason"]) for c in status["conditions"]] == stalled(
        "NonFiniteValue"
    )


def test_a_missing_artifact_store_is_looked_for_again_soon() -> None:
    """Claims and Secrets are not watched: nothing else would wake the Dataset."""
    kube = seeded(IRIS)
    waiting = reconcile(reconcile_dataset, kube, DATASET, "iris")
    assert (waiting.phase, waiting.requeue_after) == ("Pending", 15.0)
    kube.add(PVC)
    started = reconcile(reconcile_dataset, kube, DATASET, "iris", now=later(15))
    assert started.phase == "Validating"
    assert "create Job/iris-profile-g1" in writes(kube)


def test_a_refreshing_dataset_wakes_at_its_next_window() -> None:
    kube = seeded(dataset(refresh_interval="1h"), PVC)
    outcome = reconcile(reconcile_dataset, kube, DATASET, "iris", now=later(600))
    assert outcome.requeue_after == 3000  # created at NOW: the next window starts in 50 min
