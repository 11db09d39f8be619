"""Deployment: resolve the model version, serve it, promote or roll back."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from pydantic import ValidationError

from driftloop import conditions, naming, policies
from driftloop.api import MODEL_VERSION, DeploymentSpec, PromotionStrategy, parse_duration
from driftloop.builders import Owner
from driftloop.builders.serving import ServedVersion, service_url

from ._outcome import Context, Event, Obj, Outcome, StatusWriter, owner_of
from ._pods import announce, predictor_problem
from ._predictor import desired_replicas, ensure_predictor, reject
from .canary import (
    FIRST_VERSION,
    PROMOTED,
    change_reason,
    end_canary,
    record_change,
    run_canary,
    start_verification,
    verify_promotion,
)
from .drift import evaluate_retraining, retrain_on_request
from .shadow import retire_shadow, shadow_gate


def reconcile_deployment(ctx: Context, body: Obj) -> Outcome:
    meta = body["metadata"]
    namespace = meta["namespace"]
    status = StatusWriter(body, ctx.now_text)
    current = status.current
    try:
        spec = DeploymentSpec.model_validate(body["spec"])
    except ValidationError as error:
        status.ready(False, "InvalidSpec", str(error))
        return status.outcome(phase="Failed")
    owner = owner_of(body)
    events: list[Event] = []

    versions = ctx.kube.list(MODEL_VERSION, namespace, f"{naming.LABEL_MODEL}={spec.model.name}")
    by_number = {int(mv["spec"]["version"]): mv for mv in versions}
    serving_number: int | None = current.get("servingVersion")
    serving = by_number.get(serving_number) if serving_number is not None else None
    refused = policies.refused_versions(current.get("rejectedVersions") or [], versions)
    if serving is not None and verify_promotion(ctx, body, spec, serving, status, events):
        # The version just promoted failed its live checks: refused from now on.
        rejected = status.fields.get("rejectedVersions", current.get("rejectedVersions"))
        refused = policies.refused_versions(rejected or [], versions)

    target = policies.resolve_version(spec.model, versions, refused)
    if target is not None and target is serving and serving_number in refused:
        # A refused version still serving (a pin, or a rollback under way) gives way to
        # the last known good one.
        target = by_number.get(current.get("previousVersion") or 0, target)
    if target is not None and serving is not None and target is not serving:
        target = _gate(spec, target, serving, refused, status, events)
    target = _shadowed(ctx, owner, spec, target, serving, status, events)
    if target is None:
        if spec.model.version is not None:
            reason = "ModelVersionNotFound"
            pinned = naming.model_version(spec.model.name, spec.model.version)
            message = f"ModelVersion {pinned} not found"
        else:
            reason = "NoApprovedVersion"
            message = (
                f"model {spec.model.name!r} has no {spec.model.channel or 'latestApproved'} version"
            )
        if serving is None:
            status.ready(False, reason, message)
            return status.outcome(events, phase="Pending")
        status.condition("ModelResolved", False, reason, message)
        target = serving  # keep serving what works
    else:
        status.condition("ModelResolved", True, "Resolved", f"{target['metadata']['name']}")

    served = ServedVersion.of(target)
    if (
        spec.promotion.strategy == PromotionStrategy.canary
        and serving is not None
        and served.version > int(serving["spec"]["version"])
    ):
        if not run_canary(ctx, owner, spec, target, serving, status, events):
            return _finish(ctx, body, spec, status, events, serving_number)
        # Every step passed: the serving predictor rolls to the candidate, the canary's
        # pods serving beside it until the rollout completes.
    else:
        end_canary(ctx, owner, status)
    predictor = ensure_predictor(ctx, owner, spec, served)
    rollout = policies.rollout_state(predictor, desired_replicas(spec, predictor))
    status.fields.update(
        url=service_url(owner, spec.model.name),
        replicas=rollout.replicas,
        readyReplicas=rollout.ready_replicas,
        desiredVersion=served.version,
    )

    if served.version == serving_number:
        status.fields["rolloutStarted"] = None
        # No rollout under way: the last one's verdict (rolled out, or rolled back and
        # refused) stands for the current spec as well.
        status.keep("Promoted")
        if rollout.complete:
            status.ready(True, "Serving", f"serving {served.name}")
        elif problem := predictor_problem(ctx, owner, predictor, served.version):
            status.ready(False, problem.reason, problem.message)
            events.extend(announce(problem, conditions.get_condition(current, conditions.READY)))
        else:
            status.ready(
                False,
                "Scaling",
                f"{rollout.ready_replicas}/{rollout.replicas} replicas ready: {rollout.progress}",
            )
    else:
        _track_rollout(
            ctx, owner, spec, target, served, serving, predictor, rollout, status, events
        )
    return _finish(ctx, body, spec, status, events, serving_number)


def _finish(
    ctx: Context,
    body: Obj,
    spec: DeploymentSpec,
    status: StatusWriter,
    events: list[Event],
    serving_number: int | None,
) -> Outcome:
    """Retraining (triggers and requests), then the outcome."""
    if spec.retraining is not None and spec.retraining.enabled:
        evaluate_retraining(ctx, body, spec, status, events)
    else:
        # Nothing monitors or retrains any more: conditions saying so would be stale.
        status.drop("DriftMonitoring", "Retraining", "Schedule")
        status.fields.update(nextScheduleTime=None)
    retrain_on_request(ctx, body, spec, status, events)
    serving_now = status.fields.get("servingVersion", serving_number)
    return status.outcome(events, phase="Serving" if serving_now else "Pending")


def _gate(
    spec: DeploymentSpec,
    target: Obj,
    serving: Obj,
    refused: Mapping[int, Obj],
    status: StatusWriter,
    events: list[Event],
) -> Obj:
    """Apply the promotion policy to a newer version; returns what to serve."""
    record = refused.get(int(target["spec"]["version"]))
    if record is not None:  # only a pinned version gets here: a channel skips refused ones
        status.condition("Promoted", False, record["reason"], record.get("message", ""))
        return serving
    if spec.model.version is not None:
        return target  # pinned by the user: no policy
    if int(target["spec"]["version"]) < int(serving["spec"]["version"]):
        return target  # going back: the user archived or rejected the newer version
    decision = policies.promotion_decision(spec.promotion, target, serving)
    if decision.promote:
        return target
    status.condition("Promoted", False, decision.reason, decision.message)
    if decision.reason == policies.REJECTED_BY_POLICY and reject(
        status, target, policies.REJECTED_BY_POLICY, decision.message
    ):
        events.append(Event("Warning", "PromotionRejected", decision.message))
        # The channel may now resolve to another candidate; it is gated next time.
    return serving


def _shadowed(
    ctx: Context,
    owner: Owner,
    spec: DeploymentSpec,
    target: Obj | None,
    serving: Obj | None,
    status: StatusWriter,
    events: list[Event],
) -> Obj | None:
    """Strategy shadow: a newer version the policy passed shadows live traffic before it
    is served (:mod:`.shadow`); what to serve meanwhile.  Otherwise no shadow is left."""
    candidate = (
        spec.promotion.strategy == PromotionStrategy.shadow
        and spec.model.version is None  # pinned by the user: no policy, no shadow
        and target is not None
        and serving is not None
        and int(target["spec"]["version"]) > int(serving["spec"]["version"])
        # passed already: its rollout is under way
        and status.current.get("desiredVersion") != int(target["spec"]["version"])
    )
    if not candidate:
        # Whatever the strategy now: a shadow left from an earlier one goes too.
        retire_shadow(ctx, owner, status)
        return target
    assert target is not None
    return target if shadow_gate(ctx, owner, spec, target, status, events, reject) else serving


def _track_rollout(
    ctx: Context,
    owner: Owner,
    spec: DeploymentSpec,
    target: Obj,
    served: ServedVersion,
    serving: Obj | None,
    predictor: Obj | None,
    rollout: policies.RolloutState,
    status: StatusWriter,
    events: list[Event],
) -> None:
    current = status.current
    started = (
        current.get("rolloutStarted") if current.get("desiredVersion") == served.version else None
    )
    started = started or ctx.now_text
    status.fields["rolloutStarted"] = started
    if rollout.complete:
        previous = current.get("servingVersion")
        status.fields.update(
            servingVersion=served.version,
            servingModelVersion=served.name,
            previousVersion=previous,
            rolloutStarted=None,
        )
        # Ready pods passed the server's digest check: the ModelVersion reconciler
        # reads servingModelVersion into the version's artifactVerified.
        status.condition("Promoted", True, "RolledOut", f"now serving {served.name}")
        status.ready(True, "Serving", f"serving {served.name}")
        what = (
            f"version {previous} -> {served.version}" if previous else f"version {served.version}"
        )
        reason = change_reason(spec, target, previous, current)
        record_change(status, served.version, previous, reason, f"serving {served.name}")
        why = "" if reason in (PROMOTED, FIRST_VERSION) else f": {reason}"
        events.append(Event("Normal", "Promoted", f"serving {served.name} ({what}){why}"))
        start_verification(spec, served.version, previous, status)
        return
    elapsed = (ctx.now - _parse_time(started)).total_seconds()
    deadline = parse_duration(spec.promotion.rollout_deadline).total_seconds()
    if elapsed > deadline:
        message = f"{served.name} not ready after {spec.promotion.rollout_deadline}; " + (
            f"rolling back to version {current.get('servingVersion')}"
            if serving
            else "no previous version"
        )
        status.condition("Promoted", False, policies.REJECTED_AFTER_ROLLOUT, message)
        if reject(status, target, policies.REJECTED_AFTER_ROLLOUT, message, since=started):
            events.append(Event("Warning", "RolledBack", message))
            if serving is not None:
                record_change(
                    status,
                    int(serving["spec"]["version"]),
                    served.version,
                    policies.REJECTED_AFTER_ROLLOUT,
                    message,
                )
        if serving is not None:
            old = ServedVersion.of(serving)
            ensure_predictor(ctx, owner, spec, old)
            status.fields.update(desiredVersion=old.version, rolloutStarted=None)
            status.ready(True, "RolledBack", message)
        else:
            status.ready(False, policies.REJECTED_AFTER_ROLLOUT, message)
        return
    status.wake_in(deadline - elapsed + 1)  # readiness is watched; the deadline is time
    what = f"rolling out {served.name}: {rollout.ready_replicas}/{rollout.replicas} ready"
    problem = predictor_problem(ctx, owner, predictor, served.version)
    # Nothing served yet: Ready tells why the first version's pods cannot run.  Else the
    # old version still serves (Ready=True) and Promoted tells why the new one cannot.
    summary = conditions.READY if serving is None else "Promoted"
    if problem is not None:
        events.extend(announce(problem, conditions.get_condition(current, summary)))
        what = f"{what}; {problem.reason}: {problem.message}"
    reason, message = (problem.reason, problem.message) if problem else ("RollingOut", what)
    if serving is None:
        status.ready(False, reason, message)
    else:
        status.condition("Promoted", "Unknown", reason, message)
        status.ready(True, "Serving", f"serving version {current.get('servingVersion')}; {what}")


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
