"""Shadow promotion (``spec.promotion.strategy: shadow``) through the Deployment reconcile.

Each case serves version 1 of ``iris`` with the shadow strategy, registers a better
version 2 and walks the candidate along: its shadow Deployment started, ready, the
window waited out, then judged from Prometheus answers (a table) - promoted and
rolled out, or refused and its shadow deleted.  Every step names what it checks.
"""

from __future__ import annotations

from typing import Any

import pytest

import driftloop_contract as contract
from driftloop import shadowing
from driftloop.api import ShadowAnalysis
from driftloop.fake import FakeKube
from driftloop.prometheus import PrometheusError

from .deploy_harness import (
    PREDICTOR,
    add,
    conditions_of,
    deployment_status,
    message_of,
    run,
    serve,
)
from .harness import NS, deployment, events, later, model_version, roll_out, seeded, text
from .test_drift import TEMPLATE, Answers

Obj = dict[str, Any]

ADDRESS = "http://prometheus.monitoring:9090"
SHADOW = "iris-shadow"
AGREEMENT = shadowing.agreement_query(NS, "iris", 2, "300s")
ROWS = shadowing.compared_query(NS, "iris", 2, "300s")
ERRORS = shadowing.error_ratio_query(NS, "iris", 2, "300s")


def _served(**promotion: Any) -> FakeKube:
    """iris v1 served with the shadow strategy; v2 (better) just registered."""
    kube = seeded(
        deployment(
            promotion={"strategy": "shadow", **promotion},
            retraining={"enabled": False, "prometheus": {"address": ADDRESS}, "template": TEMPLATE},
        ),
        model_version(1, accuracy=0.9),
    )
    serve(kube)
    add(model_version(2, accuracy=0.95))(kube)
    kube.writes.clear()
    return kube


def _env(kube: FakeKube, name: str) -> dict[str, str]:
    predictor = kube.get_deployment(NS, name)
    assert predictor is not None
    container = predictor["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", "") for e in container["env"]}


def _shadowing(kube: FakeKube) -> None:
    """Candidate v2 started as a shadow and ready: the window runs from NOW."""
    run(kube)
    roll_out(kube, SHADOW, 1)
    run(kube)
    kube.writes.clear()


def test_the_serving_pods_mirror_to_the_shadow_service() -> None:
    kube = _served()
    target = _env(kube, PREDICTOR)[contract.ENV_SHADOW_TARGET]
    service = kube.stored("v1", "Service", NS, SHADOW)
    assert target == f"{service['spec']['clusterIP']}:{contract.SERVING_PORT}"
    # the shadow Service selects the shadow's pods, never the serving ones
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "shadow"


def test_a_passing_candidate_shadows_first_instead_of_rolling_out() -> None:
    kube = _served()

    outcome = run(kube)

    status = deployment_status(kube)
    assert [repr(w) for w in kube.writes] == [
        f"apply Deployment/{SHADOW}",
        "patch_status Deployment/iris",
    ]
    shadow = kube.get_deployment(NS, SHADOW)
    assert shadow is not None
    assert shadow["spec"]["replicas"] == 1
    labels = shadow["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/component"] == "shadow"
    assert labels["driftloop.dev/model-version"] == "2"
    assert contract.ENV_SHADOW_TARGET not in _env(kube, SHADOW)  # a shadow never mirrors
    assert _env(kube, PREDICTOR)[contract.ENV_MODEL_VERSION] == "1"  # v1 still serves
    assert status["servingVersion"] == 1
    assert status["shadow"] == {"version": 2, "modelVersion": "iris-v2", "started": text(later(0))}
    assert conditions_of(status)["Promoted"] == ("Unknown", shadowing.SHADOW_STARTING)
    assert conditions_of(status)["Ready"] == ("True", "Serving")
    assert outcome.requeue_after == 301  # the rollout deadline (5m), if never ready
    assert events(outcome) == []


def test_once_ready_the_window_runs_and_the_reconcile_wakes_at_its_end() -> None:
    kube = _served()
    run(kube)
    roll_out(kube, SHADOW, 1)
    kube.writes.clear()

    outcome = run(kube, now=later(20))

    status = deployment_status(kube)
    assert status["shadow"]["readySince"] == text(later(20))
    assert conditions_of(status)["Promoted"] == ("Unknown", shadowing.SHADOWING)
    assert message_of(status, "Promoted") == "version 2 shadows live traffic; judged in 300s"
    assert outcome.requeue_after == 300


def test_agreement_and_health_over_the_window_promote_it() -> None:
    kube = _served()
    _shadowing(kube)
    prometheus = Answers(0.0, **{AGREEMENT: 0.99, ROWS: 500.0, ERRORS: 0.0})

    outcome = run(kube, now=later(300), prometheus=prometheus)

    assert [q[1] for q in prometheus.queries] == [AGREEMENT, ROWS, ERRORS]
    assert _env(kube, PREDICTOR)[contract.ENV_MODEL_VERSION] == "2"  # rolling out now
    status = deployment_status(kube)
    assert status["desiredVersion"] == 2
    assert status["shadow"]["agreement"] == 0.99
    assert status["shadow"]["comparedRows"] == 500.0
    message = (
        "version 2 agrees: agreement 0.990 over 500 rows (min 0.95), error ratio 0.000 (max 0.01)"
    )
    assert ("Normal", shadowing.SHADOW_AGREES, message) in events(outcome)

    # The next reconcile finds the rollout under way: the shadow has done its part.
    kube.writes.clear()
    run(kube, now=later(310))
    assert f"delete Deployment/{SHADOW}" in [repr(w) for w in kube.writes]
    assert "shadow" not in deployment_status(kube)
    roll_out(kube, PREDICTOR, 1)
    run(kube, now=later(320))
    assert deployment_status(kube)["servingVersion"] == 2


@pytest.mark.parametrize(
    ("answers", "reason", "message"),
    [
        (
            {AGREEMENT: 0.8, ROWS: 500.0, ERRORS: 0.0},
            shadowing.SHADOW_DISAGREES,
            "version 2 disagrees: agreement 0.800 over 500 rows (min 0.95), "
            "error ratio 0.000 (max 0.01)",
        ),
        (
            {AGREEMENT: 0.99, ROWS: 500.0, ERRORS: 0.2},
            shadowing.SHADOW_UNHEALTHY,
            "version 2 shadow unhealthy: agreement 0.990 over 500 rows (min 0.95), "
            "error ratio 0.200 (max 0.01)",
        ),
    ],
    ids=["disagrees", "unhealthy"],
)
def test_a_failing_window_refuses_the_version_and_deletes_its_shadow(
    answers: dict[str, float], reason: str, message: str
) -> None:
    kube = _served()
    _shadowing(kube)

    outcome = run(kube, now=later(300), prometheus=Answers(0.0, **answers))

    status = deployment_status(kube)
    assert conditions_of(status)["Promoted"] == ("False", reason)
    assert message_of(status, "Promoted") == message
    assert status["rejectedVersions"][0]["reason"] == reason  # the version's approval follows
    assert status["servingVersion"] == 1
    assert _env(kube, PREDICTOR)[contract.ENV_MODEL_VERSION] == "1"
    assert kube.get_deployment(NS, SHADOW) is None
    assert ("Warning", "ShadowRejected", message) in events(outcome)


@pytest.mark.parametrize(
    ("answers", "reason"),
    [
        ({AGREEMENT: 1.0, ROWS: 20.0, ERRORS: 0.0}, shadowing.AWAITING_TRAFFIC),
        ({}, shadowing.AWAITING_TRAFFIC),  # no samples at all: no traffic yet
    ],
    ids=["too-few-rows", "no-samples"],
)
def test_too_little_traffic_waits(answers: dict[str, float], reason: str) -> None:
    kube = _served()
    _shadowing(kube)
    default: float | PrometheusError = PrometheusError("EmptyResult", "no samples")

    outcome = run(kube, now=later(300), prometheus=Answers(default, **answers))

    status = deployment_status(kube)
    assert conditions_of(status)["Promoted"] == ("Unknown", reason)
    assert status["servingVersion"] == 1
    assert kube.get_deployment(NS, SHADOW) is not None
    assert outcome.requeue_after == 30


def test_prometheus_unreachable_waits_and_says_so() -> None:
    kube = _served()
    _shadowing(kube)
    down = PrometheusError("PrometheusUnreachable", "connection refused")

    run(kube, now=later(300), prometheus=Answers(down))

    status = deployment_status(kube)
    assert conditions_of(status)["Promoted"] == ("Unknown", "PrometheusUnreachable")
    assert status["servingVersion"] == 1


def test_a_shadow_never_ready_is_refused_after_the_rollout_deadline() -> None:
    kube = _served(rolloutDeadline="1m")
    run(kube)
    kube.writes.clear()

    outcome = run(kube, now=later(61))

    status = deployment_status(kube)
    assert conditions_of(status)["Promoted"] == ("False", "RolloutFailed")
    assert status["rejectedVersions"][0]["version"] == 2
    assert kube.get_deployment(NS, SHADOW) is None
    assert [e[1] for e in events(outcome)] == ["ShadowRejected"]


def test_the_rolling_update_strategy_has_no_shadow() -> None:
    kube = seeded(deployment(), model_version(1))
    serve(kube)
    assert contract.ENV_SHADOW_TARGET not in _env(kube, PREDICTOR)
    add(model_version(2, accuracy=0.95))(kube)
    run(kube)
    assert kube.get_deployment(NS, SHADOW) is None
    assert _env(kube, PREDICTOR)[contract.ENV_MODEL_VERSION] == "2"


@pytest.mark.parametrize(
    ("agreement", "rows", "errors", "passed", "reason"),
    [
        (0.96, 100, 0.0, True, shadowing.SHADOW_AGREES),
        (0.95, 100, 0.01, True, shadowing.SHADOW_AGREES),  # both bounds inclusive
        (0.94, 100, 0.0, False, shadowing.SHADOW_DISAGREES),
        (0.99, 100, 0.02, False, shadowing.SHADOW_UNHEALTHY),
        (0.99, 99, 0.0, None, shadowing.AWAITING_TRAFFIC),
        (None, None, None, None, shadowing.AWAITING_TRAFFIC),
    ],
)
def test_judge(
    agreement: float | None, rows: float | None, errors: float | None, passed: Any, reason: str
) -> None:
    verdict = shadowing.judge(ShadowAnalysis(), 2, agreement, rows, errors)
    assert (verdict.passed, verdict.reason) == (passed, reason)


def test_a_shadow_left_after_the_strategy_changed_is_deleted() -> None:
    kube = _served()
    run(kube)  # v2 starts shadowing
    assert kube.get_deployment(NS, SHADOW) is not None
    stored = kube.stored("driftloop.dev/v1alpha1", "Deployment", NS, "iris")
    stored["spec"]["promotion"] = {"strategy": "rolling"}
    stored["metadata"]["generation"] += 1
    kube.writes.clear()

    run(kube)

    assert f"delete Deployment/{SHADOW}" in [repr(w) for w in kube.writes]
    assert "shadow" not in deployment_status(kube)
