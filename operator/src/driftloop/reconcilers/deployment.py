"""Deployment: resolve the model version, serve it, promote or roll back."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from driftloop import builders, conditions, naming, policies
from driftloop.api import MODEL_VERSION, DeploymentSpec, parse_duration
from driftloop.builders import Owner
from driftloop.builders.common import spec_hash
from driftloop.builders.serving import ServedVersion, service_url

from ._outcome import Context, Event, Obj, Outcome, StatusWriter, owner_of
from ._pods import announce, predictor_problem
from .drift import evaluate_retraining

SERVICE_MONITOR_CRD = "servicemonitors.monitoring.coreos.com"


REJECTIONS_LIMIT = 20


def _reject(
    status: StatusWriter, mv: Obj, reason: str, message: str, since: str | None = None
) -> bool:
    """Record in this Deployment's own status that it will not serve ``mv`` again.

    The ModelVersion reconciler reads these records into the version's approval:
    each object's status has one writer.  Returns False, recording nothing, when
    the same refusal is already recorded (at or after ``since``): the next
    reconcile must not repeat it, nor its event.
    """
    version = int(mv["spec"]["version"])
    earlier = status.fields.get("rejectedVersions", status.current.get("rejectedVersions")) or []
    if any(
        int(r["version"]) == version
        and (r.get("reason"), r.get("message")) == (reason, message[:1024])
        and str(r.get("time", "")) >= (since or "")
        for r in earlier
    ):
        return False
    kept = [r for r in earlier if int(r["version"]) != version]
    record = {
        "version": version,
        "modelVersion": mv["metadata"]["name"],
        "reason": reason,
        "message": message[:1024],
        "time": status.now,
    }
    status.fields["rejectedVersions"] = [record, *kept][:REJECTIONS_LIMIT]
    return True


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

    target = policies.resolve_version(spec.model, versions, refused)
    if target is not None and serving is not None and target is not serving:
        target = _gate(spec, target, serving, refused, status, events)
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
    predictor = _ensure_predictor(ctx, owner, spec, served)
    rollout = policies.rollout_state(predictor, spec.replicas)
    status.fields.update(
        url=service_url(owner, spec.model.name),
        replicas=spec.replicas,
        readyReplicas=rollout.ready_replicas,
        desiredVersion=served.version,
    )

    if served.version == serving_number:
        status.fields["rolloutStarted"] = None
        if rollout.complete:
            status.ready(True, "Serving", f"serving {served.name}")
        elif problem := predictor_problem(ctx, owner, predictor, served.version):
            status.ready(False, problem.reason, problem.message)
            events.extend(announce(problem, conditions.get_condition(current, conditions.READY)))
        else:
            status.ready(
                False, "Scaling", f"{rollout.ready_replicas}/{spec.replicas} replicas ready"
            )
    else:
        _track_rollout(
            ctx, owner, spec, target, served, serving, predictor, rollout, status, events
        )

    if spec.retraining is not None and spec.retraining.enabled:
        evaluate_retraining(ctx, body, spec, status, events)
    serving_now = status.fields.get("servingVersion", serving_number)
    return status.outcome(events, phase="Serving" if serving_now else "Pending")


def _gate(
    spec: DeploymentSpec,
    target: Obj,
    serving: Obj,
    refused: Mapping[int, Obj],
    status: StatusWriter,
    events: list[Event],
) -> Obj | None:
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
    if decision.reason == policies.REJECTED_BY_POLICY and _reject(
        status, target, policies.REJECTED_BY_POLICY, decision.message
    ):
        events.append(Event("Warning", "PromotionRejected", decision.message))
        # The channel may now resolve to another candidate; it is gated next time.
    return serving


def _ensure_predictor(
    ctx: Context, owner: Owner, spec: DeploymentSpec, served: ServedVersion
) -> dict[str, Any] | None:
    manifest = builders.predictor_deployment(owner, spec, served, ctx.config)
    digest = spec_hash(manifest)
    manifest["metadata"]["annotations"] = {naming.ANNOTATION_SPEC_HASH: digest}
    existing = ctx.kube.get_deployment(owner.namespace, manifest["metadata"]["name"])
    current = ((existing or {}).get("metadata") or {}).get("annotations") or {}
    if existing is None or current.get(naming.ANNOTATION_SPEC_HASH) != digest:
        existing = ctx.kube.apply_deployment(manifest)
        ctx.kube.create(builders.predictor_service(owner))
        if ctx.config.model_service_monitors and ctx.crds.exists(SERVICE_MONITOR_CRD):
            ctx.kube.create(builders.service_monitor(owner))
    return existing


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
        events.append(Event("Normal", "Promoted", f"serving {served.name} ({what})"))
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
        if _reject(status, target, policies.REJECTED_AFTER_ROLLOUT, message, since=started):
            events.append(Event("Warning", "RolledBack", message))
        if serving is not None:
            old = ServedVersion.of(serving)
            _ensure_predictor(ctx, owner, spec, old)
            status.fields.update(desiredVersion=old.version, rolloutStarted=None)
            status.ready(True, "RolledBack", message)
        else:
            status.ready(False, policies.REJECTED_AFTER_ROLLOUT, message)
        return
    what = f"rolling out {served.name}: {rollout.ready_replicas}/{spec.replicas} ready"
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
