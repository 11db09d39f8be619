"""ModelVersion: approval from the annotation, the gates and the Deployments' refusals."""

from __future__ import annotations

from typing import Any

import pytest

from driftloop.api import APPROVAL_ANNOTATION, MODEL_VERSION
from driftloop.reconcilers import reconcile_model_version

from .harness import deployment, model_version, ready, reconcile, seeded, status_of, writes

ROLLED_BACK = {
    "version": 2,
    "modelVersion": "iris-v2",
    "reason": "RolloutFailed",
    "message": "iris-v2 not ready after 5m; rolling back to version 1",
    "time": "2026-11-30T11:00:00Z",
}


def _refusing(*records: dict[str, Any], model: str = "iris") -> dict[str, Any]:
    obj = deployment("web", model=model)
    obj["status"] = {"rejectedVersions": list(records), "servingModelVersion": "iris-v1"}
    return obj


@pytest.mark.parametrize(
    ("name", "version", "others", "approval", "reason", "verified"),
    [
        ("gates passed", model_version(2, approval=None), [], "approved", "GatesPassed", False),
        (
            "gates failed",
            model_version(2, approval=None, gates_passed=False),
            [],
            "rejected",
            "GatesFailed",
            False,
        ),
        (
            "user archived",
            model_version(2, annotations={APPROVAL_ANNOTATION: "archived"}),
            [],
            "archived",
            "SetByUser",
            False,
        ),
        (
            "a deployment rolled it back",
            model_version(2),
            [_refusing(ROLLED_BACK)],
            "rejected",
            "RolloutFailed",
            False,
        ),
        (
            "another model's deployment is ignored",
            model_version(2),
            [_refusing(ROLLED_BACK, model="other")],
            "approved",
            "GatesPassed",
            False,
        ),
        (
            "the user approves it again",
            model_version(2, annotations={APPROVAL_ANNOTATION: "approved"}),
            [_refusing(ROLLED_BACK)],
            "approved",
            "SetByUser",
            False,
        ),
        (
            "served by a deployment",
            model_version(1),
            [_refusing()],
            "approved",
            "GatesPassed",
            True,
        ),
    ],
)
def test_reconcile_model_version(
    name: str,
    version: dict[str, Any],
    others: list[dict[str, Any]],
    approval: str,
    reason: str,
    verified: bool,
) -> None:
    kube = seeded(version, *others)
    mv = version["metadata"]["name"]
    outcome = reconcile_model_version_once(kube, mv)
    status = status_of(kube, MODEL_VERSION, mv)
    assert (status["approval"], status["approvalReason"]) == (approval, reason), name
    assert status["artifactVerified"] is verified
    assert ready(status, "Approved") == ("True" if approval == "approved" else "False", reason)
    assert ready(status) == ("True", "Registered")
    assert outcome.phase == approval
    assert writes(kube) == [f"patch_status ModelVersion/{mv}"]


def reconcile_model_version_once(kube: Any, name: str) -> Any:
    return reconcile(reconcile_model_version, kube, MODEL_VERSION, name)


def test_verified_stays_verified_when_no_deployment_serves_it_any_more() -> None:
    kube = seeded(model_version(1), _refusing())
    reconcile_model_version_once(kube, "iris-v1")
    kube.objects.pop(next(k for k in kube.objects if k[1] == "Deployment"))
    reconcile_model_version_once(kube, "iris-v1")
    assert status_of(kube, MODEL_VERSION, "iris-v1")["artifactVerified"] is True


def test_a_settled_version_is_not_written_again() -> None:
    kube = seeded(model_version(1, approval=None))
    reconcile_model_version_once(kube, "iris-v1")
    reconcile_model_version_once(kube, "iris-v1")
    assert writes(kube) == ["patch_status ModelVersion/iris-v1"]


def test_a_user_changing_the_approval_gets_an_event_and_a_record() -> None:
    kube = seeded(model_version(2, approval=None))
    outcome = reconcile_model_version_once(kube, "iris-v2")
    assert outcome.events == []  # the operator's own verdict: recorded, no event
    first = status_of(kube, MODEL_VERSION, "iris-v2")["approvalHistory"]
    assert first == [
        {
            "approval": "approved",
            "reason": "GatesPassed",
            "message": "evaluation gates passed",
            "time": "2026-11-30T12:00:00Z",
        }
    ]

    stored = kube.stored("driftloop.dev/v1alpha1", "ModelVersion", "ml", "iris-v2")
    stored["metadata"]["annotations"][APPROVAL_ANNOTATION] = "rejected"
    outcome = reconcile_model_version_once(kube, "iris-v2")
    status = status_of(kube, MODEL_VERSION, "iris-v2")
    assert [(e.type, e.reason, e.message) for e in outcome.events] == [
        (
            "Normal",
            "ApprovalChanged",
            "approval approved -> rejected: driftloop.dev/approval=rejected",
        )
    ]
    assert status["approvalHistory"][0] == {
        "approval": "rejected",
        "previous": "approved",
        "reason": "SetByUser",
        "message": "driftloop.dev/approval=rejected",
        "time": "2026-11-30T12:00:00Z",
    }
    assert status["approvalHistory"][1:] == first

    # Unchanged: neither a record nor an event again.
    outcome = reconcile_model_version_once(kube, "iris-v2")
    assert outcome.events == []
    assert len(status_of(kube, MODEL_VERSION, "iris-v2")["approvalHistory"]) == 2
