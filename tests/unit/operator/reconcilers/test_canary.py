"""Deployment with ``promotion.strategy: canary``, post-promotion analysis and history.

Each test plays a rollout on the fake client with a fixed clock: the Deployment
controller's part (pods ready) by ``roll_out``, Prometheus by a table of answers
per check.  The table at the end covers every outcome of one step's analysis.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest

from driftloop import analysis
from driftloop.api import API_VERSION
from driftloop.fake import FakeKube
from driftloop.prometheus import PrometheusError

from .deploy_harness import (
    PREDICTOR,
    approve,
    conditions_of,
    deployment_status,
    edit_spec,
    message_of,
    run,
    serve,
)
from .harness import NOW, deployment, events, later, model_version, roll_out, seeded, text, writes

Obj = dict[str, Any]
CANARY = "iris-canary"
PATCH = "patch_status Deployment/iris"
APPLY = f"apply Deployment/{PREDICTOR}"
APPLY_CANARY = f"apply Deployment/{CANARY}"
DELETE_CANARY = f"delete Deployment/{CANARY}"
PROMETHEUS = "http://prometheus:9090"

ERRORS = {
    "name": "errors",
    "query": 'err{version="${version}",deployment="${deployment}"}',
    "operator": "<",
    "threshold": 0.05,
}
ACCURACY = {"name": "accuracy", "query": 'acc{v="${version}"}', "operator": ">=", "threshold": 0.8}


def promotion(weights: tuple[int, ...] = (25, 50), **extra: Any) -> Obj:
    return {
        "strategy": "canary",
        "steps": [{"weight": w, "pause": "30s"} for w in weights],
        "analysis": {
            "metrics": [ERRORS, ACCURACY],
            "noDataGrace": "1m",
            "interval": "10s",
            "prometheus": {"address": PROMETHEUS},
        },
        **extra,
    }


class Answers:
    """Prometheus by check: the value of each query (by the metric's name in it)."""

    def __init__(self, **values: float | None) -> None:
        self.values = values
        self.queries: list[str] = []

    def __call__(self, address: str, query: str, token: str | None) -> float:
        assert address == PROMETHEUS
        self.queries.append(query)
        name = query.split("{", 1)[0]
        value = self.values.get({"err": "errors", "acc": "accuracy"}.get(name, name))
        if value is None:
            raise PrometheusError("EmptyResult", f"query returned no samples: {query}")
        return value


GOOD = Answers(errors=0.0, accuracy=0.95)


def canary_of(kube: FakeKube) -> Obj:
    return dict(deployment_status(kube).get("canary") or {})


def replicas_of(kube: FakeKube, name: str) -> int | None:
    predictor = kube.get_deployment("ml", name)
    return None if predictor is None else int(predictor["spec"]["replicas"])


def version_of(kube: FakeKube, name: str) -> str:
    predictor = kube.get_deployment("ml", name)
    assert predictor is not None
    return str(predictor["spec"]["template"]["metadata"]["labels"]["driftloop.dev/model-version"])


def serving_v1_canary_v2(replicas: int = 4, **extra: Any) -> FakeKube:
    """v1 served by ``replicas`` pods, then v2 registered: the next reconcile starts a canary."""
    kube = seeded(deployment(replicas=replicas, promotion=promotion(**extra)), model_version(1))
    serve(kube, replicas)
    kube.add(model_version(2))
    return kube


def step_ready(kube: FakeKube, at: datetime, canary: int, stable: int) -> None:
    """Both predictors at the step's counts, all ready; one reconcile records it."""
    roll_out(kube, CANARY, canary)
    roll_out(kube, PREDICTOR, stable)
    run(kube, now=at, prometheus=GOOD)


def test_a_canary_walks_every_step_and_is_promoted() -> None:
    kube = serving_v1_canary_v2()

    # Step 1: one of four pods runs the candidate, behind the same Service.
    run(kube, now=NOW, prometheus=GOOD)
    assert writes(kube) == [APPLY, APPLY_CANARY, PATCH]
    assert (replicas_of(kube, CANARY), replicas_of(kube, PREDICTOR)) == (1, 3)
    assert (version_of(kube, CANARY), version_of(kube, PREDICTOR)) == ("2", "1")
    canary = kube.get_deployment("ml", CANARY)
    assert canary is not None
    assert canary["spec"]["selector"]["matchLabels"]["driftloop.dev/track"] == "canary"
    status = deployment_status(kube)
    assert canary_of(kube) == {
        "version": 2,
        "modelVersion": "iris-v2",
        "step": 0,
        "weight": 25,
        "canaryReplicas": 1,
        "stableReplicas": 3,
        "stepStarted": text(NOW),
        "promoting": False,
        "readings": [],
    }
    assert conditions_of(status)["Ready"] == ("True", "Serving")
    assert conditions_of(status)["Promoted"] == ("Unknown", analysis.CANARY_PROGRESSING)
    assert status["servingVersion"] == 1
    assert status["desiredVersion"] == 2

    # Its pods ready: the pause starts; no analysis before it ends.
    step_ready(kube, later(5), canary=1, stable=3)
    assert canary_of(kube)["stepReady"] == text(later(5))
    assert "analysis in 30s" in message_of(deployment_status(kube), "Promoted")
    queries = len(GOOD.queries)
    run(kube, now=later(20), prometheus=GOOD)
    assert len(GOOD.queries) == queries

    # The pause over: both checks pass, the next step.
    outcome = run(kube, now=later(35), prometheus=GOOD)
    assert GOOD.queries[-2:] == ['err{version="2",deployment="iris"}', 'acc{v="2"}']
    assert [e[1] for e in events(outcome)] == ["CanaryStepPassed"]
    assert canary_of(kube)["step"] == 1
    assert [r["passed"] for r in canary_of(kube)["readings"]] == [True, True]

    # Step 2: two of four.
    run(kube, now=later(36), prometheus=GOOD)
    assert (replicas_of(kube, CANARY), replicas_of(kube, PREDICTOR)) == (2, 2)
    step_ready(kube, later(40), canary=2, stable=2)
    run(kube, now=later(71), prometheus=GOOD)
    status = deployment_status(kube)
    assert canary_of(kube)["promoting"] is True
    # Promoting: the serving predictor rolls to v2 at full size, the canary stays.
    assert version_of(kube, PREDICTOR) == "2"
    assert replicas_of(kube, PREDICTOR) == 4
    assert replicas_of(kube, CANARY) == 2
    assert conditions_of(status)["Promoted"][0] == "Unknown"

    roll_out(kube, PREDICTOR, 4)
    outcome = run(kube, now=later(90), prometheus=GOOD)
    status = deployment_status(kube)
    assert status["servingVersion"] == 2
    assert status["previousVersion"] == 1
    assert conditions_of(status)["Promoted"] == ("True", "RolledOut")
    assert status["history"][0] == {
        "version": 2,
        "from": 1,
        "reason": "CanaryPromoted",
        "message": "serving iris-v2",
        "time": text(later(90)),
    }
    assert events(outcome) == [
        ("Normal", "Promoted", "serving iris-v2 (version 1 -> 2): CanaryPromoted")
    ]

    # Settled: the canary's predictor and status go.
    kube.writes.clear()
    run(kube, now=later(91), prometheus=GOOD)
    assert writes(kube) == [DELETE_CANARY, PATCH]
    assert "canary" not in deployment_status(kube)


def test_a_failing_check_aborts_at_once_and_returns_all_traffic() -> None:
    kube = serving_v1_canary_v2()
    bad = Answers(errors=0.0, accuracy=0.31)
    run(kube, now=NOW, prometheus=bad)
    step_ready(kube, later(5), canary=1, stable=3)
    kube.writes.clear()

    outcome = run(kube, now=later(40), prometheus=bad)
    assert writes(kube) == [DELETE_CANARY, APPLY, PATCH]
    assert kube.get_deployment("ml", CANARY) is None
    assert (version_of(kube, PREDICTOR), replicas_of(kube, PREDICTOR)) == ("1", 4)
    status = deployment_status(kube)
    failure = (
        "canary iris-v2 step 1/2: 25% (1 of 4 pods): check accuracy: value 0.31 is not >= 0.8: "
        'acc{v="${version}"}; all traffic back to iris-v1'
    )
    assert conditions_of(status)["Promoted"] == ("False", analysis.CANARY_ABORTED)
    assert message_of(status, "Promoted") == f"{analysis.ANALYSIS_FAILED}: {failure}"
    assert conditions_of(status)["Ready"] == ("True", "Serving")
    assert events(outcome) == [
        ("Warning", analysis.CANARY_ABORTED, f"{analysis.ANALYSIS_FAILED}: {failure}")
    ]
    assert "canary" not in status
    assert status["servingVersion"] == 1
    assert status["desiredVersion"] == 1
    assert status["rejectedVersions"][0]["reason"] == analysis.REJECTED_BY_CANARY
    assert status["history"][0]["reason"] == analysis.CANARY_ABORTED
    assert (status["history"][0]["version"], status["history"][0]["from"]) == (1, 2)

    # The serving predictor back at 4 pods, the refused candidate is not tried again.
    roll_out(kube, PREDICTOR, 4)
    run(kube, now=later(45), prometheus=bad)
    assert conditions_of(deployment_status(kube))["Ready"] == ("True", "Serving")
    kube.writes.clear()
    run(kube, now=later(50), prometheus=bad)
    assert writes(kube) == []


def test_a_query_without_data_waits_out_its_grace_then_fails() -> None:
    kube = serving_v1_canary_v2()
    silent = Answers(errors=0.0, accuracy=None)
    run(kube, now=NOW, prometheus=silent)
    step_ready(kube, later(5), canary=1, stable=3)

    outcome = run(kube, now=later(40), prometheus=silent)
    status = deployment_status(kube)
    assert events(outcome) == []
    assert conditions_of(status)["Promoted"] == ("Unknown", analysis.CANARY_PROGRESSING)
    assert "no data yet for accuracy (grace 1m)" in message_of(status, "Promoted")
    assert canary_of(kube)["analysisStarted"] == text(later(40))
    assert outcome.requeue_after == 10

    run(kube, now=later(99), prometheus=silent)  # 59 s after the first evaluation
    assert canary_of(kube)["step"] == 0
    outcome = run(kube, now=later(100), prometheus=silent)
    status = deployment_status(kube)
    assert conditions_of(status)["Promoted"] == ("False", analysis.CANARY_ABORTED)
    assert message_of(status, "Promoted").startswith(
        f"{analysis.ANALYSIS_NO_DATA}: canary iris-v2 step 1/2: 25% (1 of 4 pods): "
        "check accuracy: no data after the grace of 1m"
    )
    assert [e[1] for e in events(outcome)] == [analysis.CANARY_ABORTED]


def test_canary_pods_never_ready_abort_after_the_rollout_deadline() -> None:
    kube = serving_v1_canary_v2(rolloutDeadline="1m")
    run(kube, now=NOW, prometheus=GOOD)
    roll_out(kube, CANARY, 1, ready=False)
    roll_out(kube, PREDICTOR, 3)
    run(kube, now=later(30), prometheus=GOOD)
    assert "waiting for pods" in message_of(deployment_status(kube), "Promoted")
    outcome = run(kube, now=later(61), prometheus=GOOD)
    status = deployment_status(kube)
    assert conditions_of(status)["Promoted"] == ("False", analysis.CANARY_ABORTED)
    assert status["rejectedVersions"][0]["reason"] == "RolloutFailed"
    assert [e[1] for e in events(outcome)] == [analysis.CANARY_ABORTED]
    assert kube.get_deployment("ml", CANARY) is None


def test_one_replica_splits_one_pod_each() -> None:
    kube = serving_v1_canary_v2(replicas=1)
    run(kube, now=NOW, prometheus=GOOD)
    assert (replicas_of(kube, CANARY), replicas_of(kube, PREDICTOR)) == (1, 1)


def test_a_rolling_strategy_takes_no_canary() -> None:
    kube = seeded(deployment(replicas=2), model_version(1))
    serve(kube, 2)
    kube.add(model_version(2))
    run(kube, now=NOW)
    assert writes(kube) == [APPLY, PATCH]
    assert version_of(kube, PREDICTOR) == "2"


def test_turning_the_canary_off_mid_way_removes_its_predictor() -> None:
    kube = serving_v1_canary_v2()
    run(kube, now=NOW, prometheus=GOOD)
    edit_spec(promotion={"strategy": "rolling"})(kube)
    kube.writes.clear()
    run(kube, now=later(1), prometheus=GOOD)
    assert writes(kube)[:2] == [DELETE_CANARY, APPLY]
    assert version_of(kube, PREDICTOR) == "2"
    assert "canary" not in deployment_status(kube)


# ----------------------------------------------------------- post-promotion


def post_promotion(**extra: Any) -> Obj:
    checks = promotion()["analysis"]
    return {"analysis": checks, "postPromotion": {"window": "2m"}, **extra}


def promoted_v2(**extra: Any) -> FakeKube:
    """v1 served, v2 rolled out (rolling) with a post-promotion window of 2 m from NOW."""
    kube = seeded(deployment(promotion=post_promotion(**extra)), model_version(1))
    serve(kube)
    kube.add(model_version(2))
    run(kube, now=NOW, prometheus=GOOD)
    roll_out(kube, PREDICTOR)
    run(kube, now=NOW, prometheus=GOOD)
    assert deployment_status(kube)["servingVersion"] == 2
    kube.writes.clear()
    return kube


def test_a_promotion_opens_its_window() -> None:
    kube = promoted_v2()
    status = deployment_status(kube)
    assert status["postPromotion"] == {
        "version": 2,
        "previousVersion": 1,
        "started": text(NOW),
        "until": text(later(120)),
        "readings": [],
    }
    assert status["history"][0]["reason"] == "Promoted"
    assert status["history"][1]["reason"] == "FirstVersion"


def test_a_promoted_version_that_degrades_rolls_back_to_the_previous() -> None:
    kube = promoted_v2()
    outcome = run(kube, now=later(30), prometheus=Answers(errors=0.2, accuracy=0.9))
    status = deployment_status(kube)
    message = (
        "version 2 failed its post-promotion analysis: check errors: value 0.2 is not < 0.05: "
        'err{version="${version}",deployment="${deployment}"}; rolling back to version 1'
    )
    # Promoted follows the rollback's rollout; Verified keeps the failure.
    assert conditions_of(status)["Promoted"] == ("Unknown", "RollingOut")
    assert message_of(status, "Verified") == message
    assert conditions_of(status)["Verified"] == ("False", analysis.ANALYSIS_FAILED)
    assert events(outcome) == [("Warning", "RolledBack", message)]
    assert status["rejectedVersions"][0]["reason"] == analysis.REJECTED_AFTER_PROMOTION
    assert version_of(kube, PREDICTOR) == "1"
    assert "postPromotion" not in status

    roll_out(kube, PREDICTOR)
    outcome = run(kube, now=later(40), prometheus=GOOD)
    status = deployment_status(kube)
    assert (status["servingVersion"], status["previousVersion"]) == (1, 2)
    assert status["history"][0]["reason"] == "RolledBack"
    assert (status["history"][0]["version"], status["history"][0]["from"]) == (1, 2)
    assert "postPromotion" not in status  # a rollback is not checked again
    assert [e[1] for e in events(outcome)] == ["Promoted"]


def test_a_pinned_version_that_degrades_rolls_back_too() -> None:
    kube = seeded(deployment(promotion=post_promotion()), model_version(1), model_version(2))
    kube.stored(API_VERSION, "Deployment", "ml", "iris")["spec"]["model"] = {
        "name": "iris",
        "version": 1,
    }
    serve(kube)
    edit_spec(model={"name": "iris", "version": 2})(kube)
    run(kube, now=NOW, prometheus=GOOD)
    roll_out(kube, PREDICTOR)
    run(kube, now=NOW, prometheus=GOOD)
    assert deployment_status(kube)["history"][0]["reason"] == "PinChanged"
    run(kube, now=later(30), prometheus=Answers(errors=0.2, accuracy=0.9))
    assert version_of(kube, PREDICTOR) == "1"
    roll_out(kube, PREDICTOR)
    run(kube, now=later(40), prometheus=GOOD)
    status = deployment_status(kube)
    assert status["servingVersion"] == 1
    assert status["history"][0]["reason"] == "RolledBack"
    # The pin still names version 2, refused: it stays on version 1.
    run(kube, now=later(50), prometheus=GOOD)
    assert version_of(kube, PREDICTOR) == "1"


def test_a_window_that_passes_closes() -> None:
    kube = promoted_v2()
    run(kube, now=later(30), prometheus=GOOD)
    status = deployment_status(kube)
    assert conditions_of(status)["Verified"] == ("Unknown", "AnalysisPassed")
    assert [r["passed"] for r in status["postPromotion"]["readings"]] == [True, True]
    run(kube, now=later(121), prometheus=GOOD)
    status = deployment_status(kube)
    assert "postPromotion" not in status
    assert conditions_of(status)["Verified"] == ("True", "AnalysisPassed")
    assert status["servingVersion"] == 2


def test_a_manual_approval_is_recorded_as_such() -> None:
    kube = seeded(deployment(promotion={"mode": "manual"}), model_version(1))
    serve(kube)
    kube.add(model_version(2))
    run(kube, now=NOW)
    assert conditions_of(deployment_status(kube))["Promoted"][1] == "AwaitingApproval"
    approve("iris-v2")(kube)
    run(kube, now=later(5))
    roll_out(kube, PREDICTOR)
    outcome = run(kube, now=later(10))
    status = deployment_status(kube)
    assert status["history"][0]["reason"] == "ManualApproval"
    assert events(outcome) == [
        ("Normal", "Promoted", "serving iris-v2 (version 1 -> 2): ManualApproval")
    ]


def test_history_is_bounded() -> None:
    kube = seeded(deployment(), model_version(1))
    serve(kube)
    history = [{"version": 1, "reason": "Promoted", "message": "", "time": text(NOW)}] * 20
    kube.update_status(kube.stored(API_VERSION, "Deployment", "ml", "iris"), history=history)
    kube.add(model_version(2))
    run(kube, now=NOW)
    roll_out(kube, PREDICTOR)
    run(kube, now=later(1))
    status = deployment_status(kube)
    assert len(status["history"]) == 20
    assert status["history"][0]["version"] == 2


# ------------------------------------------------- one step's analysis, table


@dataclass(frozen=True)
class StepCase:
    name: str
    answers: Answers
    #: seconds since the step's pods were ready (the pause is 30 s)
    at: float
    step: int
    promoted: tuple[str, str]
    events: tuple[str, ...] = ()
    canary_replicas: int | None = 1
    first_evaluation: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


STEP_CASES = [
    StepCase("in the pause", GOOD, 10, 0, ("Unknown", analysis.CANARY_PROGRESSING)),
    StepCase(
        "passes: next step",
        GOOD,
        30,
        1,
        ("Unknown", analysis.CANARY_PROGRESSING),
        ("CanaryStepPassed",),
    ),
    StepCase(
        "the last step passes: promoting",
        GOOD,
        30,
        0,
        # the serving predictor rolls to the candidate: a rollout like any other
        ("Unknown", "RollingOut"),
        ("CanaryStepPassed",),
        extra={"weights": (50,)},
    ),
    StepCase(
        "error rate too high: aborted",
        Answers(errors=0.5, accuracy=0.9),
        30,
        0,
        ("False", analysis.CANARY_ABORTED),
        (analysis.CANARY_ABORTED,),
        canary_replicas=None,
    ),
    StepCase(
        "no data, within the grace: waits",
        Answers(errors=None, accuracy=0.9),
        30,
        0,
        ("Unknown", analysis.CANARY_PROGRESSING),
    ),
    StepCase(
        "no data, grace over: aborted",
        Answers(errors=None, accuracy=0.9),
        95,
        0,
        ("False", analysis.CANARY_ABORTED),
        (analysis.CANARY_ABORTED,),
        canary_replicas=None,
        first_evaluation=30,
    ),
    StepCase(
        "Prometheus unreachable counts as no data",
        Answers(),
        30,
        0,
        ("Unknown", analysis.CANARY_PROGRESSING),
    ),
]


@pytest.mark.parametrize("case", STEP_CASES, ids=[c.name for c in STEP_CASES])
def test_one_step(case: StepCase) -> None:
    weights = case.extra.get("weights", (25, 50))
    kube = serving_v1_canary_v2(weights=weights)
    run(kube, now=NOW, prometheus=case.answers)
    canary_pods = analysis.split(4, weights[0])[0]
    step_ready(kube, NOW, canary=canary_pods, stable=4 - canary_pods)
    if case.first_evaluation is not None:
        run(kube, now=later(case.first_evaluation), prometheus=case.answers)
    outcome = run(kube, now=later(case.at), prometheus=case.answers)
    status = deployment_status(kube)
    assert conditions_of(status)["Promoted"] == case.promoted
    assert tuple(e[1] for e in events(outcome)) == case.events
    assert conditions_of(status)["Ready"] == ("True", "Serving")
    if case.canary_replicas is None:
        assert kube.get_deployment("ml", CANARY) is None
    else:
        assert canary_of(kube)["step"] == case.step
