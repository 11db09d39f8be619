"""Pure decisions: Job outcomes, registry, approval, promotion, rollout, conditions."""

from __future__ import annotations

from typing import Any

import pytest

import driftloop_contract as contract
from driftloop import conditions, policies
from driftloop.api import APPROVAL_ANNOTATION, ModelSelector, Promotion


def _job(*conds: tuple[str, str, str]) -> dict[str, Any]:
    return {"status": {"conditions": [{"type": t, "status": s, "reason": r} for t, s, r in conds]}}


@pytest.mark.parametrize(
    ("job", "finished", "succeeded", "reason"),
    [
        ({}, False, False, "JobRunning"),
        (_job(("Complete", "True", "")), True, True, "JobComplete"),
        (_job(("Failed", "True", "DeadlineExceeded")), True, False, "DeadlineExceeded"),
        (_job(("Failed", "True", "BackoffLimitExceeded")), True, False, "JobFailed"),
        (_job(("Failed", "True", "PodFailurePolicy")), True, False, "JobFailed"),
        (_job(("Failed", "False", "")), False, False, "JobRunning"),
    ],
)
def test_job_outcome(job: dict[str, Any], finished: bool, succeeded: bool, reason: str) -> None:
    outcome = policies.job_outcome(job)
    assert (outcome.finished, outcome.succeeded, outcome.reason) == (finished, succeeded, reason)


def _pod(message: str, finished: str, name: str = "train") -> dict[str, Any]:
    state = {"terminated": {"message": message, "finishedAt": finished, "exitCode": 0}}
    return {"status": {"containerStatuses": [{"name": name, "state": state}]}}


def test_termination_message_takes_the_newest_attempt() -> None:
    pods = [
        _pod("old", "2026-01-01T00:00:00Z"),
        _pod("new", "2026-01-01T00:05:00Z"),
        _pod("sidecar", "2026-01-02T00:00:00Z", name="other"),
        {"status": {}},
    ]
    assert policies.termination_message(pods, "train") == "new"
    assert policies.termination_message([], "train") is None


def _job(name: str, *owners: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "ownerReferences": [{"uid": uid} for uid in owners]}}


def test_superseded_jobs_are_the_owners_other_jobs() -> None:
    jobs = [
        _job("ds-profile-g1", "uid-1"),
        _job("ds-profile-g2-r1", "uid-1"),
        _job("ds-profile-g2-r2", "uid-1"),
        _job("ds-profile-g1-other", "uid-0"),  # a deleted namesake's, left to the GC
        _job("unowned"),
    ]
    assert policies.superseded_jobs(jobs, "uid-1", current="ds-profile-g2-r2") == [
        "ds-profile-g1",
        "ds-profile-g2-r1",
    ]
    assert policies.superseded_jobs(jobs[:1], "uid-1", current="ds-profile-g1") == []


def test_parse_results_tolerate_garbage() -> None:
    assert policies.parse_train_result("not json") is None
    assert policies.parse_train_result('{"unexpected": 1}') is None
    result = policies.parse_train_result(
        '{"ok": false, "reason": "ValidationFailed", "rule": "maxNullRatio", "column": "age"}'
    )
    assert result is not None
    assert policies.failure_text(result, "x") == "rule maxNullRatio failed, column 'age'"
    assert policies.failure_text(None, "fallback") == "fallback"


def _mv(
    version: int, approval: str | None = None, metrics: dict[str, float] | None = None, **extra: Any
) -> dict[str, Any]:
    mv: dict[str, Any] = {
        "metadata": {"name": f"m-v{version}", "annotations": extra.pop("annotations", {})},
        "spec": {
            "model": "m",
            "version": version,
            "task": "classification",
            "metrics": metrics or {},
            "gatesPassed": extra.pop("gates", True),
        },
        "status": {"approval": approval} if approval else {},
    }
    mv["status"].update(extra)
    return mv


def test_next_version() -> None:
    assert policies.next_version([]) == 1
    assert policies.next_version([_mv(1), _mv(4), _mv(2)]) == 5


@pytest.mark.parametrize(
    ("mv", "approval", "reason"),
    [
        (_mv(1), "approved", "GatesPassed"),
        (_mv(1, gates=False), "rejected", "GatesFailed"),
        (
            _mv(1, gates=False, annotations={APPROVAL_ANNOTATION: "approved"}),
            "approved",
            "SetByUser",
        ),
        (_mv(1, annotations={APPROVAL_ANNOTATION: "archived"}), "archived", "SetByUser"),
        (_mv(1, annotations={APPROVAL_ANNOTATION: "bogus"}), "approved", "GatesPassed"),
        # What an earlier operator wrote to status is recomputed, not trusted.
        (_mv(1, "rejected", approvalReason="RolloutFailed"), "approved", "GatesPassed"),
    ],
)
def test_approval(mv: dict[str, Any], approval: str, reason: str) -> None:
    got, got_reason, _ = policies.approval(mv)
    assert (got, got_reason) == (approval, reason)


def _refusing(name: str, *records: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": {"rejectedVersions": list(records)}}


ROLLED_BACK = {"version": 1, "modelVersion": "m-v1", "reason": "RolloutFailed", "message": "late"}


@pytest.mark.parametrize(
    ("mv", "deployments", "approval", "reason"),
    [
        (_mv(1), [], "approved", "GatesPassed"),
        (_mv(1), [_refusing("web", ROLLED_BACK)], "rejected", "RolloutFailed"),
        (_mv(2), [_refusing("web", ROLLED_BACK)], "approved", "GatesPassed"),
        (_mv(1, gates=False), [_refusing("web", ROLLED_BACK)], "rejected", "GatesFailed"),
        (
            _mv(1, annotations={APPROVAL_ANNOTATION: "approved"}),
            [_refusing("web", ROLLED_BACK)],
            "approved",
            "SetByUser",
        ),
    ],
)
def test_approval_reads_the_deployments_refusals(
    mv: dict[str, Any], deployments: list[dict[str, Any]], approval: str, reason: str
) -> None:
    got, got_reason, message = policies.approval(mv, policies.rejections_of(mv, deployments))
    assert (got, got_reason) == (approval, reason)
    if got_reason == "RolloutFailed":
        assert message == "Deployment web: late"


def test_refused_versions_forget_what_a_user_approved_since() -> None:
    records = [ROLLED_BACK, {**ROLLED_BACK, "version": 2, "modelVersion": "m-v2"}]
    approved_again = _mv(2, annotations={APPROVAL_ANNOTATION: "approved"})
    assert set(policies.refused_versions(records, [_mv(1), approved_again])) == {1}


VERSIONS = [_mv(1, "approved"), _mv(2, "approved"), _mv(3, "rejected"), _mv(4), _mv(5, "archived")]


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ({"name": "m"}, 2),
        ({"name": "m", "channel": "latestApproved"}, 2),
        ({"name": "m", "channel": "latest"}, 4),
        ({"name": "m", "version": 3}, 3),
        ({"name": "m", "version": 9}, None),
        ({"name": "other"}, None),
    ],
)
def test_resolve_version(selector: dict[str, Any], expected: int | None) -> None:
    mv = policies.resolve_version(ModelSelector.model_validate(selector), VERSIONS)
    assert (mv["spec"]["version"] if mv else None) == expected


@pytest.mark.parametrize(
    ("policy", "new", "old", "promote", "reason"),
    [
        ({}, {"accuracy": 0.90}, {"accuracy": 0.90}, True, "PolicyPassed"),
        ({}, {"accuracy": 0.89}, {"accuracy": 0.90}, False, "PromotionPolicy"),
        ({"tolerance": 0.05}, {"accuracy": 0.86}, {"accuracy": 0.90}, True, "PolicyPassed"),
        ({"metric": "f1"}, {"accuracy": 0.99}, {"f1": 0.5}, False, "MetricMissing"),
        ({}, {"accuracy": 0.5}, {}, True, "NoBaseline"),
        ({"mode": "manual"}, {"accuracy": 0.99}, {"accuracy": 0.5}, False, "AwaitingApproval"),
    ],
)
def test_promotion_decision(
    policy: dict[str, Any], new: dict[str, float], old: dict[str, float], promote: bool, reason: str
) -> None:
    decision = policies.promotion_decision(
        Promotion.model_validate(policy), _mv(2, metrics=new), _mv(1, metrics=old)
    )
    assert (decision.promote, decision.reason) == (promote, reason), decision.message


def test_promotion_for_error_metrics_prefers_lower() -> None:
    policy = Promotion.model_validate({"metric": "rmse", "tolerance": 0.1})
    new, old = _mv(2, metrics={"rmse": 1.05}), _mv(1, metrics={"rmse": 1.0})
    new["spec"]["task"] = old["spec"]["task"] = contract.Task.regression
    assert policies.promotion_decision(policy, new, old).promote
    new["spec"]["metrics"]["rmse"] = 1.2
    assert not policies.promotion_decision(policy, new, old).promote


def test_manual_promotion_goes_ahead_once_approved() -> None:
    policy = Promotion.model_validate({"mode": "manual"})
    new = _mv(2, metrics={"accuracy": 0.9}, annotations={APPROVAL_ANNOTATION: "approved"})
    assert policies.promotion_decision(policy, new, _mv(1, metrics={"accuracy": 0.9})).promote


def test_first_version_is_always_promoted() -> None:
    assert policies.promotion_decision(Promotion(), _mv(1), None).reason == "FirstVersion"


def _deployment(generation: int, observed: int, **status: int) -> dict[str, Any]:
    return {
        "metadata": {"generation": generation},
        "status": {"observedGeneration": observed, **status},
    }


@pytest.mark.parametrize(
    ("deployment", "complete", "progress"),
    [
        (None, False, "waiting for the predictor Deployment"),
        (
            _deployment(2, 1, replicas=2, updatedReplicas=2, availableReplicas=2),
            False,
            "waiting for the Deployment spec update to be observed",
        ),
        (
            _deployment(2, 2, replicas=2, updatedReplicas=1, availableReplicas=2),
            False,
            "1 of 2 new replicas updated",
        ),
        (
            _deployment(2, 2, replicas=3, updatedReplicas=2, availableReplicas=2),
            False,
            "1 old replicas pending termination",
        ),
        (
            _deployment(2, 2, replicas=2, updatedReplicas=2, availableReplicas=1),
            False,
            "1 of 2 updated replicas available",
        ),
        (
            _deployment(2, 2, replicas=2, updatedReplicas=2, availableReplicas=2, readyReplicas=2),
            True,
            "",
        ),
    ],
)
def test_rollout_state(deployment: dict[str, Any] | None, complete: bool, progress: str) -> None:
    state = policies.rollout_state(deployment, 2)
    assert (state.complete, state.progress) == (complete, progress)


def test_set_condition_keeps_transition_time_when_status_is_unchanged() -> None:
    first = conditions.set_condition([], "Ready", False, "Pending", generation=1, now="t1")
    same = conditions.set_condition(first, "Ready", False, "StillPending", generation=2, now="t2")
    flipped = conditions.set_condition(same, "Ready", True, "Done", generation=2, now="t3")
    assert same[0]["lastTransitionTime"] == "t1"
    assert same[0]["observedGeneration"] == 2
    assert flipped[0]["lastTransitionTime"] == "t3"


def test_conditions_ready_first_then_sorted() -> None:
    conds = conditions.set_condition([], "Zeta", True, "Z", generation=1, now="t")
    conds = conditions.set_condition(conds, "Ready", True, "R", generation=1, now="t")
    conds = conditions.set_condition(conds, "Alpha", True, "A", generation=1, now="t")
    assert [c["type"] for c in conds] == ["Ready", "Alpha", "Zeta"]


def test_status_patch_is_empty_when_nothing_changed() -> None:
    current = {"phase": "Ready", "rows": 3, "kopf": {"x": 1}}
    assert conditions.status_patch(current, {"phase": "Ready", "rows": 3}) == {}
    assert conditions.status_patch(current, {"phase": "Failed", "rows": None}) == {
        "phase": "Failed",
        "rows": None,
    }
    assert conditions.status_patch({}, {"gone": None}) == {}


#: A failed fairness gate as the runtime words it.
UNFAIR = "group: demographicParityDifference 0.54 > max 0.1 (A 0.7677, B 0.2277)"


def _fair(version: int, gates: bool = True, **disparities: float) -> dict[str, Any]:
    """A version whose spec.fairness reports ``disparities`` of the feature "group"."""
    failed = [] if gates else [UNFAIR]
    report = {"feature": "group", "disparities": disparities, "failedGates": failed}
    mv = _mv(version, metrics={"accuracy": 0.9}, gates=gates)
    mv["spec"]["fairness"] = [report]
    return mv


def test_a_failed_fairness_gate_is_its_own_rejection_naming_feature_metric_groups() -> None:
    approval, reason, message = policies.approval(_fair(1, gates=False))
    assert (approval, reason, message) == ("rejected", "FairnessGateFailed", UNFAIR)
    # A user's approval still wins.
    overridden = _fair(1, gates=False)
    overridden["metadata"]["annotations"] = {APPROVAL_ANNOTATION: "approved"}
    assert policies.approval(overridden)[1] == "SetByUser"
    # Fairness measured and passed, a score gate failed: the score gates' reason.
    assert policies.approval(_fair(1, gates=True) | {"spec": {"gatesPassed": False}})[1] == (
        "GatesFailed"
    )


@pytest.mark.parametrize(
    ("policy", "candidate", "serving", "promote", "reason", "says"),
    [
        # Unset: disparities are not compared.
        ({}, _fair(2, demographicParityDifference=0.9), _fair(1), True, "PolicyPassed", ""),
        (
            {"maxDisparityIncrease": 0.05},
            _fair(2, demographicParityDifference=0.3),
            _fair(1, demographicParityDifference=0.1),
            False,
            "PromotionPolicy",
            "group demographicParityDifference=0.3 > 0.1 + 0.05",
        ),
        (
            {"maxDisparityIncrease": 0.05},
            _fair(2, demographicParityDifference=0.14, accuracyDifference=0.2),
            _fair(1, demographicParityDifference=0.1, accuracyDifference=0.1),
            False,
            "PromotionPolicy",
            "group accuracyDifference=0.2 > 0.1 + 0.05",
        ),
        (  # within the tolerance; a lower ratio is not a difference and not compared
            {"maxDisparityIncrease": 0.05},
            _fair(2, demographicParityDifference=0.14, demographicParityRatio=0.1),
            _fair(1, demographicParityDifference=0.1, demographicParityRatio=0.9),
            True,
            "PolicyPassed",
            "",
        ),
        (  # nothing to compare with
            {"maxDisparityIncrease": 0.0},
            _fair(2, demographicParityDifference=0.5),
            _mv(1, metrics={"accuracy": 0.9}),
            True,
            "PolicyPassed",
            "",
        ),
        (  # the serving version was measured, the candidate was not
            {"maxDisparityIncrease": 0.1},
            _mv(2, metrics={"accuracy": 0.9}),
            _fair(1, demographicParityDifference=0.1),
            False,
            "PromotionPolicy",
            "has no fairness report",
        ),
    ],
)
def test_promotion_refuses_a_candidate_more_disparate_than_the_serving_version(
    policy: dict[str, Any],
    candidate: dict[str, Any],
    serving: dict[str, Any],
    promote: bool,
    reason: str,
    says: str,
) -> None:
    decision = policies.promotion_decision(Promotion.model_validate(policy), candidate, serving)
    assert (decision.promote, decision.reason) == (promote, reason), decision.message
    assert says in decision.message
