"""Deployment: resolve, gate, roll out, roll back - one reconcile per named case.

Each case seeds objects, optionally plays the first rollout to the end, changes
the world, runs one reconcile at a fixed clock and compares the conditions,
status fields, recorded writes and events with what it expects.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest

from driftloop.config import OperatorConfig

from .deploy_harness import (
    PREDICTOR,
    URL,
    Change,
    add,
    applied,
    approve,
    conditions_of,
    crd,
    deployment_status,
    edit_spec,
    mark,
    message_of,
    nothing,
    pods_not_ready,
    predictor_pod,
    replica_failure,
    run,
    serve,
    set_status,
    steps,
)
from .harness import (
    CONFIG,
    NOW,
    deployment,
    events,
    later,
    model_version,
    roll_out,
    seeded,
    text,
    writes,
)

Obj = dict[str, Any]

APPLY = f"apply Deployment/{PREDICTOR}"
SERVICE = f"create Service/{PREDICTOR}"
MONITOR = f"create ServiceMonitor/{PREDICTOR}"
PATCH = "patch_status Deployment/iris"
MONITOR_CRD = "servicemonitors.monitoring.coreos.com"

#: The conditions of a Deployment that serves what it resolves.
SERVING = {
    "Ready": ("True", "Serving"),
    "ModelResolved": ("True", "Resolved"),
    "Promoted": ("True", "RolledOut"),
}
#: ... while a newer version rolls out next to the serving one.
ROLLING = {**SERVING, "Promoted": ("Unknown", "RollingOut")}

V2_POLICY = "version 2 accuracy=0.8 fails >= 0.9 - 0"
V2_ROLLED_BACK = "iris-v2 not ready after 5m; rolling back to version 1"


PULL_ERROR = 'failed to pull and unpack image "registry.invalid/nope:1": no such host'
NO_CPU = "0/1 nodes are available: 1 Insufficient cpu."
QUOTA = "exceeded quota: no-pods, requested: pods=1, used: pods=1, limited: pods=1"
V1_POD = f"pod {PREDICTOR}-1-abcde"
V2_CRASHING = f"pod {PREDICTOR}-2-abcde: container server: restarting after exit code 3 (Error)"


def rejection(version: int, reason: str, message: str, at: datetime = NOW) -> Obj:
    return {
        "version": version,
        "modelVersion": f"iris-v{version}",
        "reason": reason,
        "message": message,
        "time": text(at),
    }


def dep(model: Obj | None = None, **spec: Any) -> Obj:
    obj = deployment(**spec)
    if model is not None:
        obj["spec"]["model"] = model
    return obj


def mv(version: int, accuracy: float = 0.9, **kw: Any) -> Obj:
    return model_version(version, accuracy=accuracy, **kw)


def pinned(version: int) -> Obj:
    return {"name": "iris", "version": version}


@dataclass(frozen=True)
class Case:
    name: str
    given: tuple[Obj, ...]
    #: Play the first rollout to the end before the change.
    serving: bool = False
    then: Change = nothing
    now: datetime = NOW
    config: OperatorConfig = CONFIG
    # What the reconcile under test must do.
    conditions: dict[str, tuple[str, str]] = field(default_factory=dict)
    status: Obj = field(default_factory=dict)
    absent: tuple[str, ...] = ()
    messages: dict[str, str] = field(default_factory=dict)
    writes: tuple[str, ...] = ()
    events: tuple[tuple[str, str, str], ...] = ()
    phase: str = "Serving"


CASES = [
    # ------------------------------------------------------------ nothing to serve
    Case(
        "invalid spec",
        given=(dep(replicas=-1),),
        conditions={"Ready": ("False", "InvalidSpec"), "Stalled": ("True", "InvalidSpec")},
        status={"observedGeneration": 1},
        absent=("desiredVersion", "url"),
        writes=(PATCH,),
        phase="Failed",
    ),
    Case(
        "no version registered yet",
        given=(dep(),),
        conditions={
            "Ready": ("False", "NoApprovedVersion"),
            "Reconciling": ("True", "NoApprovedVersion"),
        },
        messages={"Ready": "model 'iris' has no latestApproved version"},
        absent=("desiredVersion", "url", "servingVersion"),
        writes=(PATCH,),
        phase="Pending",
    ),
    Case(
        "latestApproved skips a version not approved",
        given=(dep(), mv(1, approval=None)),
        conditions={
            "Ready": ("False", "NoApprovedVersion"),
            "Reconciling": ("True", "NoApprovedVersion"),
        },
        writes=(PATCH,),
        phase="Pending",
    ),
    Case(
        "channel latest names itself when empty",
        given=(dep({"name": "iris", "channel": "latest"}), mv(1, approval="rejected")),
        conditions={
            "Ready": ("False", "NoApprovedVersion"),
            "Reconciling": ("True", "NoApprovedVersion"),
        },
        messages={"Ready": "model 'iris' has no latest version"},
        writes=(PATCH,),
        phase="Pending",
    ),
    Case(
        "pinned version missing",
        given=(dep(pinned(3)), mv(1)),
        conditions={
            "Ready": ("False", "ModelVersionNotFound"),
            "Reconciling": ("True", "ModelVersionNotFound"),
        },
        messages={"Ready": "ModelVersion iris-v3 not found"},
        writes=(PATCH,),
        phase="Pending",
    ),
    # ------------------------------------------------------------- first rollout
    Case(
        "first rollout",
        given=(dep(), mv(1), mv(2, approval=None)),
        conditions={
            "Ready": ("False", "RollingOut"),
            "Reconciling": ("True", "RollingOut"),
            "ModelResolved": ("True", "Resolved"),
        },
        messages={"Ready": "rolling out iris-v1: 0/1 ready", "ModelResolved": "iris-v1"},
        status={
            "desiredVersion": 1,
            "rolloutStarted": text(NOW),
            "url": URL,
            "replicas": 1,
            "readyReplicas": 0,
        },
        absent=("servingVersion", "previousVersion", "rejectedVersions"),
        writes=(SERVICE, APPLY, PATCH),
        phase="Pending",
    ),
    Case(
        "first rollout of channel latest takes a version not yet approved",
        given=(dep({"name": "iris", "channel": "latest"}), mv(1), mv(2, approval=None)),
        conditions={
            "Ready": ("False", "RollingOut"),
            "Reconciling": ("True", "RollingOut"),
            "ModelResolved": ("True", "Resolved"),
        },
        status={"desiredVersion": 2},
        writes=(SERVICE, APPLY, PATCH),
        phase="Pending",
    ),
    Case(
        "first rollout of a pinned older version",
        given=(dep(pinned(1), replicas=2), mv(1), mv(2)),
        conditions={
            "Ready": ("False", "RollingOut"),
            "Reconciling": ("True", "RollingOut"),
            "ModelResolved": ("True", "Resolved"),
        },
        messages={"Ready": "rolling out iris-v1: 0/2 ready"},
        status={"desiredVersion": 1, "replicas": 2},
        writes=(SERVICE, APPLY, PATCH),
        phase="Pending",
    ),
    Case(
        "first rollout with the Prometheus Operator installed",
        given=(dep(), mv(1)),
        then=crd(MONITOR_CRD),
        conditions={
            "Ready": ("False", "RollingOut"),
            "Reconciling": ("True", "RollingOut"),
            "ModelResolved": ("True", "Resolved"),
        },
        writes=(SERVICE, APPLY, MONITOR, PATCH),
        phase="Pending",
    ),
    Case(
        "ServiceMonitors turned off in the Helm values",
        given=(dep(), mv(1)),
        then=crd(MONITOR_CRD),
        config=dataclasses.replace(CONFIG, model_service_monitors=False),
        conditions={
            "Ready": ("False", "RollingOut"),
            "Reconciling": ("True", "RollingOut"),
            "ModelResolved": ("True", "Resolved"),
        },
        writes=(SERVICE, APPLY, PATCH),
        phase="Pending",
    ),
    Case(
        "first rollout: the image cannot be pulled",
        given=(dep(), mv(1), predictor_pod(1, waiting=("ErrImagePull", PULL_ERROR))),
        conditions={
            "Ready": ("False", "ImagePullFailed"),
            "Reconciling": ("True", "ImagePullFailed"),
            "ModelResolved": ("True", "Resolved"),
        },
        messages={"Ready": f"{V1_POD}: container server: {PULL_ERROR}"},
        status={"desiredVersion": 1, "rolloutStarted": text(NOW), "readyReplicas": 0},
        writes=(SERVICE, APPLY, PATCH),
        events=(("Warning", "ImagePullFailed", f"{V1_POD}: container server: {PULL_ERROR}"),),
        phase="Pending",
    ),
    Case(
        "first rollout: a quota refuses the pods (the predictor's ReplicaFailure)",
        given=(dep(), mv(1)),
        then=steps(applied, replica_failure(QUOTA)),
        conditions={
            "Ready": ("False", "QuotaExceeded"),
            "Reconciling": ("True", "QuotaExceeded"),
            "ModelResolved": ("True", "Resolved"),
        },
        messages={"Ready": f"cannot create pods: {QUOTA}"},
        writes=(PATCH,),
        events=(("Warning", "QuotaExceeded", f"cannot create pods: {QUOTA}"),),
        phase="Pending",
    ),
    Case(
        "first rollout: another version's stuck pod is not this rollout's problem",
        given=(dep(), mv(1), predictor_pod(2, waiting=("ErrImagePull", PULL_ERROR))),
        conditions={
            "Ready": ("False", "RollingOut"),
            "Reconciling": ("True", "RollingOut"),
            "ModelResolved": ("True", "Resolved"),
        },
        writes=(SERVICE, APPLY, PATCH),
        phase="Pending",
    ),
    # ------------------------------------------------------------------ serving
    Case(
        "serving, nothing changed: no write at all",
        given=(dep(), mv(1)),
        serving=True,
        conditions=SERVING,
        messages={"Ready": "serving iris-v1", "Promoted": "now serving iris-v1"},
        status={
            "servingVersion": 1,
            "servingModelVersion": "iris-v1",
            "desiredVersion": 1,
            "readyReplicas": 1,
            "url": URL,
        },
        absent=("rolloutStarted", "previousVersion"),
    ),
    Case(
        "serving, pods lost: Scaling",
        given=(dep(), mv(1)),
        serving=True,
        then=pods_not_ready(),
        conditions={
            **SERVING,
            "Ready": ("False", "Scaling"),
            "Reconciling": ("True", "Scaling"),
        },
        messages={"Ready": "0/1 replicas ready: 0 of 1 updated replicas available"},
        status={"servingVersion": 1, "readyReplicas": 0},
        writes=(PATCH,),
    ),
    Case(
        "serving, a lost pod cannot be scheduled: PodUnschedulable",
        given=(dep(), mv(1)),
        serving=True,
        then=steps(pods_not_ready(), add(predictor_pod(1, unschedulable=NO_CPU))),
        conditions={
            **SERVING,
            "Ready": ("False", "PodUnschedulable"),
            "Reconciling": ("True", "PodUnschedulable"),
        },
        messages={"Ready": f"{V1_POD}: {NO_CPU}"},
        status={"servingVersion": 1, "readyReplicas": 0},
        writes=(PATCH,),
        events=(("Warning", "PodUnschedulable", f"{V1_POD}: {NO_CPU}"),),
    ),
    Case(
        "serving, scaled up: the predictor is applied again",
        given=(dep(), mv(1)),
        serving=True,
        then=edit_spec(replicas=3),
        conditions={
            **SERVING,
            "Ready": ("False", "Scaling"),
            "Reconciling": ("True", "Scaling"),
        },
        messages={
            "Ready": "1/3 replicas ready: waiting for the Deployment spec update to be observed"
        },
        status={"servingVersion": 1, "replicas": 3, "observedGeneration": 2},
        writes=(APPLY, PATCH),
    ),
    # -------------------------------------------------------------- promotion
    Case(
        "better version: its rollout starts",
        given=(dep(), mv(1)),
        serving=True,
        then=add(mv(2, 0.95)),
        conditions=ROLLING,
        messages={
            "Ready": "serving version 1; rolling out iris-v2: 1/1 ready",
            "Promoted": "rolling out iris-v2: 1/1 ready",
            "ModelResolved": "iris-v2",
        },
        status={"servingVersion": 1, "desiredVersion": 2, "rolloutStarted": text(NOW)},
        absent=("previousVersion", "rejectedVersions"),
        writes=(APPLY, PATCH),
    ),
    Case(
        "better version whose pods crash: the old one serves, Promoted says why",
        given=(dep(), mv(1)),
        serving=True,
        then=steps(
            add(mv(2, 0.95)),
            add(predictor_pod(2, waiting=("CrashLoopBackOff", "back-off 10s"), exited=3)),
        ),
        conditions={**ROLLING, "Promoted": ("Unknown", "CrashLooping")},
        messages={
            "Ready": "serving version 1; rolling out iris-v2: 1/1 ready; "
            f"CrashLooping: {V2_CRASHING}",
            "Promoted": V2_CRASHING,
        },
        status={"servingVersion": 1, "desiredVersion": 2, "rolloutStarted": text(NOW)},
        writes=(APPLY, PATCH),
        events=(("Warning", "CrashLooping", V2_CRASHING),),
    ),
    Case(
        "worse version: refused by the promotion policy",
        given=(dep(), mv(1)),
        serving=True,
        then=add(mv(2, 0.8)),
        conditions={**SERVING, "Promoted": ("False", "PromotionPolicy")},
        messages={"Promoted": V2_POLICY, "ModelResolved": "iris-v1"},
        status={
            "servingVersion": 1,
            "desiredVersion": 1,
            "rejectedVersions": [rejection(2, "PromotionPolicy", V2_POLICY)],
        },
        writes=(PATCH,),
        events=(("Warning", "PromotionRejected", V2_POLICY),),
    ),
    Case(
        "a refusal goes first, earlier ones stay",
        given=(dep(), mv(1)),
        serving=True,
        then=steps(
            set_status(
                rejectedVersions=[
                    rejection(2, "RolloutFailed", "old", later(-60)),
                    rejection(5, "PromotionPolicy", "older", later(-120)),
                ]
            ),
            add(mv(2, 0.8)),
            approve("iris-v2"),  # lifts the old refusal: the policy judges it again
        ),
        conditions={**SERVING, "Promoted": ("False", "PromotionPolicy")},
        status={
            "rejectedVersions": [
                rejection(2, "PromotionPolicy", V2_POLICY),
                rejection(5, "PromotionPolicy", "older", later(-120)),
            ],
        },
        writes=(PATCH,),
        events=(("Warning", "PromotionRejected", V2_POLICY),),
    ),
    Case(
        "worse version within the tolerance",
        given=(dep(promotion={"tolerance": 0.15}), mv(1)),
        serving=True,
        then=add(mv(2, 0.8)),
        conditions=ROLLING,
        status={"servingVersion": 1, "desiredVersion": 2},
        absent=("rejectedVersions",),
        writes=(APPLY, PATCH),
    ),
    Case(
        "manual mode: awaiting the user's approval",
        given=(dep(promotion={"mode": "manual"}), mv(1)),
        serving=True,
        then=add(mv(2, 0.95)),
        conditions={**SERVING, "Promoted": ("False", "AwaitingApproval")},
        messages={"Promoted": "version 2 waits for driftloop.dev/approval=approved"},
        status={"servingVersion": 1, "desiredVersion": 1},
        absent=("rejectedVersions", "rolloutStarted"),
        writes=(PATCH,),
    ),
    Case(
        "manual mode: approved by the user",
        given=(dep(promotion={"mode": "manual"}), mv(1)),
        serving=True,
        then=steps(add(mv(2, 0.95)), approve("iris-v2")),
        conditions=ROLLING,
        status={"servingVersion": 1, "desiredVersion": 2},
        writes=(APPLY, PATCH),
    ),
    Case(
        "pinned to a worse version: no policy",
        given=(dep(), mv(1)),
        serving=True,
        then=steps(add(mv(2, 0.5)), edit_spec(model=pinned(2))),
        conditions=ROLLING,
        status={"servingVersion": 1, "desiredVersion": 2, "observedGeneration": 2},
        absent=("rejectedVersions",),
        writes=(APPLY, PATCH),
    ),
    Case(
        "going back: the newer version archived, the older one is worse",
        given=(dep(), mv(1, 0.5), mv(2, 0.9)),
        serving=True,
        then=mark("iris-v2", "archived"),
        conditions=ROLLING,
        messages={"Ready": "serving version 2; rolling out iris-v1: 1/1 ready"},
        status={"servingVersion": 2, "desiredVersion": 1},
        absent=("rejectedVersions",),
        writes=(APPLY, PATCH),
    ),
    Case(
        "pinned version missing: keeps serving",
        given=(dep(), mv(1)),
        serving=True,
        then=edit_spec(model=pinned(7)),
        conditions={**SERVING, "ModelResolved": ("False", "ModelVersionNotFound")},
        messages={"ModelResolved": "ModelVersion iris-v7 not found"},
        status={"servingVersion": 1, "desiredVersion": 1},
        writes=(PATCH,),
    ),
    Case(
        "every version archived: keeps serving",
        given=(dep(), mv(1)),
        serving=True,
        then=mark("iris-v1", "archived"),
        conditions={**SERVING, "ModelResolved": ("False", "NoApprovedVersion")},
        status={"servingVersion": 1},
        writes=(PATCH,),
    ),
    # ------------------------------------------------- status.rejectedVersions
    Case(
        "the channel skips a refused version",
        given=(dep(), mv(1)),
        serving=True,
        then=steps(
            set_status(rejectedVersions=[rejection(2, "RolloutFailed", V2_ROLLED_BACK)]),
            add(mv(2, 0.95)),
        ),
        conditions=SERVING,
        status={"servingVersion": 1, "desiredVersion": 1},
        writes=(),
    ),
    Case(
        "a refused pinned version keeps the serving one",
        given=(dep(), mv(1)),
        serving=True,
        then=steps(
            set_status(rejectedVersions=[rejection(2, "RolloutFailed", V2_ROLLED_BACK)]),
            add(mv(2, 0.95)),
            edit_spec(model=pinned(2)),
        ),
        conditions={**SERVING, "Promoted": ("False", "RolloutFailed")},
        messages={"Promoted": V2_ROLLED_BACK, "ModelResolved": "iris-v1"},
        status={"servingVersion": 1, "desiredVersion": 1},
        writes=(PATCH,),
    ),
    Case(
        "the user's approval lifts a refusal: rolled out again",
        given=(dep(), mv(1)),
        serving=True,
        then=steps(
            set_status(rejectedVersions=[rejection(2, "RolloutFailed", V2_ROLLED_BACK)]),
            add(mv(2, 0.95)),
            approve("iris-v2"),
        ),
        conditions=ROLLING,
        status={
            "servingVersion": 1,
            "desiredVersion": 2,
            # The record stays: without the annotation the version is refused again.
            "rejectedVersions": [rejection(2, "RolloutFailed", V2_ROLLED_BACK)],
        },
        writes=(APPLY, PATCH),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_reconcile_deployment(case: Case) -> None:
    kube = seeded(*case.given)
    if case.serving:
        serve(kube)
    case.then(kube)

    outcome = run(kube, now=case.now, config=case.config)

    status = deployment_status(kube)
    assert conditions_of(status) == case.conditions
    for type_, message in case.messages.items():
        assert message_of(status, type_) == message, type_
    assert {k: status.get(k) for k in case.status} == case.status
    assert [k for k in case.absent if k in status] == []
    assert writes(kube) == list(case.writes)
    assert events(outcome) == list(case.events)
    assert outcome.phase == case.phase


# ------------------------------------------------------------ across reconciles


def _serving_v1_then_v2(**spec: Any) -> Any:
    kube = seeded(dep(**spec), mv(1))
    serve(kube)
    kube.add(mv(2, 0.95))
    return kube


def test_rollout_keeps_its_start_across_reconciles_and_completes() -> None:
    kube = _serving_v1_then_v2()

    run(kube, now=NOW)
    assert writes(kube) == [APPLY, PATCH]
    run(kube, now=later(60))  # pods not ready yet: same start, no new apply
    status = deployment_status(kube)
    assert status["rolloutStarted"] == text(NOW)
    assert writes(kube) == [APPLY, PATCH]  # nothing new to say

    roll_out(kube, PREDICTOR)
    outcome = run(kube, now=later(120))
    status = deployment_status(kube)
    assert conditions_of(status) == SERVING
    assert message_of(status, "Promoted") == "now serving iris-v2"
    assert {k: status.get(k) for k in ("servingVersion", "previousVersion", "desiredVersion")} == {
        "servingVersion": 2,
        "previousVersion": 1,
        "desiredVersion": 2,
    }
    assert status["servingModelVersion"] == "iris-v2"
    assert "rolloutStarted" not in status
    assert events(outcome) == [("Normal", "Promoted", "serving iris-v2 (version 1 -> 2)")]
    assert writes(kube) == [APPLY, PATCH, PATCH]

    run(kube, now=later(180))  # settled: nothing to write
    assert writes(kube) == [APPLY, PATCH, PATCH]


def test_first_rollout_event_names_only_the_version() -> None:
    kube = seeded(dep(), mv(1))
    run(kube)
    roll_out(kube, PREDICTOR)
    outcome = run(kube, now=later(5))
    assert events(outcome) == [("Normal", "Promoted", "serving iris-v1 (version 1)")]
    status = deployment_status(kube)
    assert (status["servingVersion"], status.get("previousVersion")) == (1, None)
    assert outcome.phase == "Serving"


def test_rollout_deadline_rolls_back_to_the_serving_version() -> None:
    kube = _serving_v1_then_v2()
    run(kube, now=NOW)
    run(kube, now=later(300))  # exactly the deadline: still rolling out
    assert conditions_of(deployment_status(kube)) == ROLLING
    kube.writes.clear()

    outcome = run(kube, now=later(301))

    status = deployment_status(kube)
    assert conditions_of(status) == {
        "Ready": ("True", "RolledBack"),
        "ModelResolved": ("True", "Resolved"),
        "Promoted": ("False", "RolloutFailed"),
    }
    assert message_of(status, "Ready") == V2_ROLLED_BACK
    assert status["rejectedVersions"] == [rejection(2, "RolloutFailed", V2_ROLLED_BACK, later(301))]
    assert (status["servingVersion"], status["desiredVersion"]) == (1, 1)
    assert "rolloutStarted" not in status
    assert events(outcome) == [("Warning", "RolledBack", V2_ROLLED_BACK)]
    assert writes(kube) == [APPLY, PATCH]  # v1's template applied again
    assert outcome.phase == "Serving"

    # The channel now skips v2; v1's pods come back and it serves as before.
    kube.writes.clear()
    roll_out(kube, PREDICTOR)
    outcome = run(kube, now=later(310))
    status = deployment_status(kube)
    assert conditions_of(status) == {**SERVING, "Promoted": ("False", "RolloutFailed")}
    assert (status["servingVersion"], status["desiredVersion"]) == (1, 1)
    assert writes(kube) == [PATCH]
    assert events(outcome) == []


def test_rollout_deadline_without_a_previous_version() -> None:
    kube = seeded(dep(promotion={"rolloutDeadline": "1m"}), mv(1))
    run(kube, now=NOW)
    run(kube, now=later(30))
    assert deployment_status(kube)["rolloutStarted"] == text(NOW)
    kube.writes.clear()

    outcome = run(kube, now=later(61))

    message = "iris-v1 not ready after 1m; no previous version"
    status = deployment_status(kube)
    assert conditions_of(status) == {
        "Ready": ("False", "RolloutFailed"),
        "Stalled": ("True", "RolloutFailed"),
        "ModelResolved": ("True", "Resolved"),
        "Promoted": ("False", "RolloutFailed"),
    }
    assert message_of(status, "Ready") == message
    assert status["rejectedVersions"] == [rejection(1, "RolloutFailed", message, later(61))]
    assert "servingVersion" not in status
    assert events(outcome) == [("Warning", "RolledBack", message)]
    assert writes(kube) == [PATCH]
    assert outcome.phase == "Pending"

    # The channel has nothing else: nothing to serve.
    outcome = run(kube, now=later(70))
    assert conditions_of(deployment_status(kube))["Ready"] == ("False", "NoApprovedVersion")
    assert outcome.phase == "Pending"
    assert events(outcome) == []


def test_a_failed_pinned_first_rollout_is_judged_once() -> None:
    """Nothing to roll back to and nothing else to pick: it stays failed, quietly."""
    kube = seeded(dep(pinned(1), promotion={"rolloutDeadline": "1m"}), mv(1))
    run(kube, now=NOW)
    first = run(kube, now=later(61))
    kube.writes.clear()

    again = run(kube, now=later(90))

    message = "iris-v1 not ready after 1m; no previous version"
    assert events(first) == [("Warning", "RolledBack", message)]
    assert events(again) == []
    assert writes(kube) == []
    status = deployment_status(kube)
    assert status["rejectedVersions"] == [rejection(1, "RolloutFailed", message, later(61))]
    assert conditions_of(status)["Ready"] == ("False", "RolloutFailed")

    # Its pods become ready after all: it serves.
    roll_out(kube, PREDICTOR)
    outcome = run(kube, now=later(120))
    assert conditions_of(deployment_status(kube))["Ready"] == ("True", "Serving")
    assert events(outcome) == [("Normal", "Promoted", "serving iris-v1 (version 1)")]


def test_a_refusal_the_user_overrides_in_vain_is_recorded_once() -> None:
    """Manual mode: the user approves a worse version; the policy still refuses it.

    The approval lifts the refusal, so every reconcile judges the version again;
    the same verdict must not be recorded (a new time) or announced again.
    """
    kube = seeded(dep(promotion={"mode": "manual"}), mv(1))
    serve(kube)
    kube.add(mv(2, 0.8))
    approve("iris-v2")(kube)

    first = run(kube, now=NOW)
    again = run(kube, now=later(30))
    status = deployment_status(kube)

    assert events(first) == [("Warning", "PromotionRejected", V2_POLICY)]
    assert events(again) == []
    assert writes(kube) == [PATCH]
    assert status["rejectedVersions"] == [rejection(2, "PromotionPolicy", V2_POLICY)]
    assert conditions_of(status) == {**SERVING, "Promoted": ("False", "PromotionPolicy")}


def test_a_lifted_rollback_is_retried_and_rolled_back_again() -> None:
    kube = _serving_v1_then_v2()
    run(kube, now=NOW)
    run(kube, now=later(301))  # rolled back
    roll_out(kube, PREDICTOR)
    run(kube, now=later(310))
    approve("iris-v2")(kube)
    kube.writes.clear()

    retry = run(kube, now=later(400))
    assert conditions_of(deployment_status(kube)) == {**ROLLING, "Ready": ("True", "Serving")}
    assert deployment_status(kube)["rolloutStarted"] == text(later(400))
    assert writes(kube) == [APPLY, PATCH]
    assert events(retry) == []

    failed = run(kube, now=later(701))  # the second attempt fails too: a new record
    status = deployment_status(kube)
    assert status["rejectedVersions"] == [rejection(2, "RolloutFailed", V2_ROLLED_BACK, later(701))]
    assert events(failed) == [("Warning", "RolledBack", V2_ROLLED_BACK)]
    assert conditions_of(status)["Ready"] == ("True", "RolledBack")


def test_a_crashing_rollout_is_announced_once_then_rolled_back() -> None:
    kube = _serving_v1_then_v2()
    kube.add(predictor_pod(2, waiting=("CrashLoopBackOff", "back-off 10s"), exited=3))

    first = run(kube, now=NOW)
    again = run(kube, now=later(60))

    assert events(first) == [("Warning", "CrashLooping", V2_CRASHING)]
    assert events(again) == []
    assert writes(kube) == [APPLY, PATCH]  # nothing new to say the second time
    rolled_back = run(kube, now=later(301))
    assert events(rolled_back) == [("Warning", "RolledBack", V2_ROLLED_BACK)]
    assert conditions_of(deployment_status(kube))["Ready"] == ("True", "RolledBack")


def test_the_predictor_gets_its_service_address_as_peers_seed() -> None:
    """The Service is created first: its ClusterIP lets a feedback call that lands on any
    replica reach the one that made the prediction."""
    import driftloop_contract as contract

    kube = seeded(dep(), mv(1))
    run(kube)
    assert writes(kube)[:2] == [SERVICE, APPLY]
    service = kube.stored("v1", "Service", "ml", PREDICTOR)
    predictor = kube.get_deployment("ml", PREDICTOR)
    assert predictor is not None
    (container,) = predictor["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env[contract.ENV_PEERS_SEED] == f"{service['spec']['clusterIP']}:8080"
    # the address is not part of the spec hash: the next reconcile applies nothing
    kube.writes.clear()
    run(kube, now=later(5))
    assert APPLY not in writes(kube)


HPA = f"apply HorizontalPodAutoscaler/{PREDICTOR}"


@pytest.mark.parametrize(
    ("autoscaling", "hpa_replicas", "want_writes", "want_replicas"),
    [
        pytest.param(
            {"minReplicas": 2, "maxReplicas": 5},
            None,
            [SERVICE, APPLY, HPA],
            2,
            id="autoscaling: HPA applied, the predictor without replicas, minReplicas expected",
        ),
        pytest.param(
            {"minReplicas": 2, "maxReplicas": 5},
            4,
            [SERVICE, APPLY, HPA],
            4,
            id="the HPA scaled to 4: the rollout waits for its count, not spec.replicas",
        ),
        pytest.param(None, None, [SERVICE, APPLY], 3, id="no autoscaling: spec.replicas, no HPA"),
    ],
)
def test_autoscaling_owns_the_replica_count(
    autoscaling: Obj | None, hpa_replicas: int | None, want_writes: list[str], want_replicas: int
) -> None:
    spec: dict[str, Any] = {"replicas": 3}
    if autoscaling is not None:
        spec["autoscaling"] = autoscaling
    kube = seeded(dep(**spec), mv(1))
    run(kube)
    assert [w for w in writes(kube) if w != PATCH] == want_writes
    predictor = kube.get_deployment("ml", PREDICTOR)
    assert predictor is not None
    assert ("replicas" in predictor["spec"]) is (autoscaling is None)
    if hpa_replicas is not None:  # the HPA controller scales the predictor
        predictor_obj = kube.stored("apps/v1", "Deployment", "ml", PREDICTOR)
        predictor_obj["spec"]["replicas"] = hpa_replicas
    kube.writes.clear()
    run(kube, now=later(5))
    assert APPLY not in writes(kube)  # nothing to re-apply: the two never fight
    assert deployment_status(kube)["replicas"] == want_replicas


def test_removing_autoscaling_deletes_the_hpa_and_restores_replicas() -> None:
    kube = seeded(dep(replicas=3, autoscaling={"maxReplicas": 5}), mv(1))
    run(kube)
    assert kube.of_kind("HorizontalPodAutoscaler")
    edit_spec(replicas=3)(kube)
    kube.stored("driftloop.dev/v1alpha1", "Deployment", "ml", "iris")["spec"].pop("autoscaling")
    kube.writes.clear()
    run(kube, now=later(5))
    assert f"delete HorizontalPodAutoscaler/{PREDICTOR}" in writes(kube)
    assert not kube.of_kind("HorizontalPodAutoscaler")
    predictor = kube.get_deployment("ml", PREDICTOR)
    assert predictor is not None
    assert predictor["spec"]["replicas"] == 3
