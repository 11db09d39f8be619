"""Each fault-suite invariant (driftloop_testkit.invariants) passes a healthy namespace and
fails on an input that breaches it: a check that cannot fail proves nothing."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from driftloop_testkit import invariants as inv

Obj = dict[str, Any]


def run(name: str, uid: str, phase: str = "Succeeded", mv: str | None = None, **labels: str) -> Obj:
    status: Obj = {
        "phase": phase,
        "observedGeneration": 1,
        "conditions": [
            {
                "type": "Ready",
                "status": "True" if phase == "Succeeded" else "False",
                "reason": phase,
                "message": "m",
                "observedGeneration": 1,
            }
        ],
    }
    if mv:
        status["modelVersion"] = mv
    return {
        "kind": "TrainingRun",
        "metadata": {
            "name": name,
            "uid": uid,
            "generation": 1,
            "labels": labels,
            "creationTimestamp": "2026-12-01T00:00:00Z",
        },
        "spec": {"model": "iris"},
        "status": status,
    }


def version(
    number: int, run_name: str, run_uid: str, approval: str = "approved", model: str = "iris"
) -> Obj:
    return {
        "kind": "ModelVersion",
        "metadata": {
            "name": f"{model}-v{number}",
            "uid": f"mv{number}",
            "generation": 1,
            "labels": {inv.LABEL_TRAINING_RUN_UID: run_uid},
        },
        "spec": {"model": model, "version": number, "lineage": {"trainingRun": run_name}},
        "status": {"approval": approval, "observedGeneration": 1},
    }


def deployment(serving: int | None, **spec: Any) -> Obj:
    status: Obj = {
        "observedGeneration": 1,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Serving",
                "message": "m",
                "observedGeneration": 1,
            }
        ],
    }
    if serving is not None:
        status.update(servingVersion=serving, servingModelVersion=f"iris-v{serving}")
    return {
        "kind": "Deployment",
        "metadata": {"name": "iris", "uid": "d1", "generation": 1},
        "spec": {"model": {"name": "iris"}, "replicas": 1, **spec},
        "status": status,
    }


def predictor(version_label: int, ready: int = 1) -> Obj:
    return {
        "metadata": {
            "name": "iris-predictor",
            "generation": 3,
            "labels": {"app.kubernetes.io/instance": "iris"},
        },
        "spec": {
            "template": {"metadata": {"labels": {inv.LABEL_MODEL_VERSION: str(version_label)}}}
        },
        "status": {"readyReplicas": ready, "updatedReplicas": ready, "observedGeneration": 3},
    }


def job(name: str, owner_uid: str) -> Obj:
    return {
        "metadata": {
            "name": name,
            "labels": {"app.kubernetes.io/component": "training"},
            "ownerReferences": [{"kind": "TrainingRun", "uid": owner_uid}],
        }
    }


def healthy() -> inv.Snapshot:
    return inv.Snapshot(
        datasets=[
            {
                "kind": "Dataset",
                "metadata": {"name": "iris", "generation": 1},
                "status": {
                    "phase": "Ready",
                    "observedGeneration": 1,
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "True",
                            "reason": "Ready",
                            "message": "m",
                            "observedGeneration": 1,
                        }
                    ],
                },
            }
        ],
        runs=[
            run("iris-1", "u1", mv="iris-v1"),
            run("iris-2", "u2", mv="iris-v2"),
            run("iris-3", "u3", phase="Failed"),
        ],
        versions=[version(1, "iris-1", "u1"), version(2, "iris-2", "u2")],
        deployments=[deployment(2)],
        jobs=[job("iris-1-train", "u1"), job("iris-2-train", "u2")],
        predictors=[predictor(2)],
    )


def invariants_of(breaches: list[inv.Breach]) -> set[str]:
    return {b.invariant for b in breaches}


def test_a_healthy_namespace_passes_every_check() -> None:
    assert inv.check_settled(healthy()) == []


def breach_duplicate_job(s: inv.Snapshot) -> None:
    s.jobs.append(job("iris-1-train-again", "u1"))


def breach_duplicate_version(s: inv.Snapshot) -> None:
    s.versions.append(version(3, "iris-1", "u1"))


def breach_gap(s: inv.Snapshot) -> None:
    s.versions[1] = version(3, "iris-2", "u2")
    s.versions[1]["metadata"]["name"] = "iris-v3"
    s.runs[1]["status"]["modelVersion"] = "iris-v3"


def breach_misnamed_version(s: inv.Snapshot) -> None:
    s.versions[1]["metadata"]["name"] = "iris-v7"
    s.runs[1]["status"]["modelVersion"] = "iris-v7"


def breach_foreign_version(s: inv.Snapshot) -> None:
    s.runs[0]["status"]["modelVersion"] = "iris-v2"


def breach_missing_version(s: inv.Snapshot) -> None:
    s.runs[2]["status"].update(phase="Succeeded", modelVersion="iris-v9")
    s.runs[2]["status"]["conditions"][0]["status"] = "True"


def breach_failed_with_version(s: inv.Snapshot) -> None:
    s.versions.append(version(3, "iris-3", "u3"))


def breach_cooldown(s: inv.Snapshot) -> None:
    s.deployments[0]["spec"]["retraining"] = {"cooldown": "10m"}
    for i, ts in enumerate(("2026-12-01T00:00:00Z", "2026-12-01T00:05:00Z")):
        r = run(f"iris-drift-{i}", f"d{i}", phase="Failed", **{inv.LABEL_DEPLOYMENT: "iris"})
        r["metadata"]["creationTimestamp"] = ts
        s.runs.append(r)


def breach_serving_rejected(s: inv.Snapshot) -> None:
    s.versions[1]["status"]["approval"] = "rejected"


def breach_not_converged(s: inv.Snapshot) -> None:
    s.deployments[0]["status"].update(servingVersion=1, servingModelVersion="iris-v1")
    s.predictors[0] = predictor(1)


def breach_run_not_terminal(s: inv.Snapshot) -> None:
    s.runs[2]["status"]["phase"] = "Running"


def breach_generation(s: inv.Snapshot) -> None:
    s.deployments[0]["metadata"]["generation"] = 2


def breach_stale_condition(s: inv.Snapshot) -> None:
    s.deployments[0]["metadata"]["generation"] = 2
    s.deployments[0]["status"]["observedGeneration"] = 2


def breach_ready_predictor_not_ready(s: inv.Snapshot) -> None:
    s.predictors[0] = predictor(2, ready=0)


def breach_ready_predictor_other_version(s: inv.Snapshot) -> None:
    s.predictors[0] = predictor(1)


def breach_dataset_ready_lies(s: inv.Snapshot) -> None:
    s.datasets[0]["status"]["phase"] = "Failed"


@pytest.mark.parametrize(
    ("breach", "invariant"),
    [
        (breach_duplicate_job, "no-duplicates"),
        (breach_duplicate_version, "no-duplicates"),
        (breach_gap, "versions-gap-free"),
        (breach_misnamed_version, "versions-gap-free"),
        (breach_foreign_version, "run-owns-version"),
        (breach_missing_version, "run-owns-version"),
        (breach_failed_with_version, "run-owns-version"),
        (breach_cooldown, "cooldown"),
        (breach_serving_rejected, "served-approved"),
        (breach_not_converged, "converged"),
        (breach_run_not_terminal, "terminal"),
        (breach_generation, "observed-generation"),
        (breach_stale_condition, "observed-generation"),
        (breach_ready_predictor_not_ready, "ready-truthful"),
        (breach_ready_predictor_other_version, "ready-truthful"),
        (breach_dataset_ready_lies, "ready-truthful"),
    ],
)
def test_each_check_fails_on_a_breach(breach: Any, invariant: str) -> None:
    snapshot = healthy()
    breach(snapshot)
    found = inv.check_settled(snapshot)
    assert invariant in invariants_of(found), found
    message = inv.report(found, snapshot, seed=42, when="after a test breach")
    assert "DRIFTLOOP_FAULT_SEED=42" in message
    assert all(b.objects for b in found)


def test_always_checks_ignore_what_may_lag_mid_fault() -> None:
    snapshot = healthy()
    breach_run_not_terminal(snapshot)
    breach_generation(snapshot)
    assert inv.check_always(snapshot) == []


def test_cooldown_allows_runs_a_window_apart() -> None:
    snapshot = healthy()
    breach_cooldown(snapshot)
    snapshot.runs[-1]["metadata"]["creationTimestamp"] = "2026-12-01T00:10:00Z"
    assert inv.cooldown_respected(snapshot.runs, snapshot.deployments) == []


@pytest.mark.parametrize(
    ("cond", "ok"),
    [
        (
            {
                "type": "DriftMonitoring",
                "status": "False",
                "reason": "PrometheusUnreachable",
                "message": "connection refused",
            },
            True,
        ),
        (
            {"type": "DriftMonitoring", "status": "True", "reason": "Observed", "message": "m"},
            False,
        ),
        (
            {
                "type": "DriftMonitoring",
                "status": "False",
                "reason": "PrometheusUnreachable",
                "message": "",
            },
            False,
        ),
        ({"type": "DriftMonitoring", "status": "False", "reason": "Other", "message": "x"}, False),
    ],
)
def test_outage_named_needs_the_reason_and_a_message(cond: Obj, ok: bool) -> None:
    obj = copy.deepcopy(deployment(1))
    obj["status"]["conditions"].append(cond)
    found = inv.outage_named(obj, "DriftMonitoring", {"PrometheusUnreachable"})
    assert (found == []) is ok


def test_expected_version_skips_rejected_and_unapproved() -> None:
    versions = [version(1, "a", "a"), version(2, "b", "b"), version(3, "c", "c", "candidate")]
    d = deployment(1)
    d["status"]["rejectedVersions"] = [{"version": 2, "modelVersion": "iris-v2"}]
    assert inv.expected_version(d, versions) == 1
    d["spec"]["model"]["version"] = 3
    assert inv.expected_version(d, versions) == 3
