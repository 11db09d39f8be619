"""Shadow promotion: a candidate serves a mirrored copy of live traffic before it serves.

With ``spec.promotion.strategy: shadow`` a version that passes the promotion policy
does not replace the serving one at once.  It runs as its own predictor Deployment,
``<name>-shadow`` (one pod, component ``shadow``: not behind the predictor Service),
behind the Service of the same name, whose address the serving pods mirror every
request to (``DRIFTLOOP_SHADOW_TARGET``, set on the predictor while the strategy is
shadow).  Once its pod is ready, the candidate is judged on the next
``shadow.window``: agreement of its predictions with the serving ones, enough rows
to say, and its own error share (:mod:`driftloop.shadowing`).  Then it either rolls
out as usual or is refused like a policy failure, and its Deployment is deleted.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from driftloop import builders, naming, policies, shadowing
from driftloop.api import DeploymentSpec, parse_duration
from driftloop.builders import Owner
from driftloop.builders.common import spec_hash
from driftloop.builders.serving import SHADOW, ServedVersion
from driftloop.prometheus import PrometheusError

from ._outcome import Context, Event, Obj, StatusWriter
from ._predictor import needs_apply

#: How soon a candidate short of traffic (or of Prometheus) is judged again.
RECHECK_SECONDS = 30.0

Reject = Callable[[StatusWriter, Obj, str, str], bool]


def shadow_gate(
    ctx: Context,
    owner: Owner,
    spec: DeploymentSpec,
    candidate: Obj,
    status: StatusWriter,
    events: list[Event],
    reject: Reject,
) -> bool:
    """Shadow ``candidate``; True once it passed and may roll out."""
    served = ServedVersion.of(candidate)
    record = dict(status.current.get("shadow") or {})
    if record.get("version") != served.version:
        record = {"version": served.version, "modelVersion": served.name, "started": ctx.now_text}
    status.fields["shadow"] = record
    shadow = _ensure_shadow(ctx, owner, spec, served)
    rollout = policies.rollout_state(shadow, 1)
    if not rollout.complete:
        return _starting(ctx, spec, candidate, record, status, events, reject, owner)
    record.setdefault("readySince", ctx.now_text)
    analysis = spec.promotion.shadow_analysis
    window = parse_duration(analysis.window)
    left = (_time(record["readySince"]) + window - ctx.now).total_seconds()
    if left > 0:
        status.condition(
            "Promoted",
            "Unknown",
            shadowing.SHADOWING,
            f"version {served.version} shadows live traffic; judged in {int(left)}s",
        )
        status.wake_in(left)
        return False
    verdict = _measure(ctx, owner, spec, served.version, record, status)
    if verdict is None:
        return False
    if verdict.passed is None:
        status.condition("Promoted", "Unknown", verdict.reason, verdict.message)
        status.wake_in(RECHECK_SECONDS)
        return False
    if verdict.passed:
        events.append(Event("Normal", shadowing.SHADOW_AGREES, verdict.message))
        return True
    status.condition("Promoted", False, verdict.reason, verdict.message)
    if reject(status, candidate, verdict.reason, verdict.message):
        events.append(Event("Warning", "ShadowRejected", verdict.message))
    retire_shadow(ctx, owner, status)
    return False


def retire_shadow(ctx: Context, owner: Owner, status: StatusWriter) -> None:
    """No candidate shadows: its Deployment goes (the Service stays for the next one)."""
    status.fields["shadow"] = None
    if ctx.kube.get_deployment(owner.namespace, naming.shadow(owner.name)) is not None:
        ctx.kube.delete_deployment(owner.namespace, naming.shadow(owner.name))


def _ensure_shadow(
    ctx: Context, owner: Owner, spec: DeploymentSpec, served: ServedVersion
) -> dict[str, Any] | None:
    manifest = builders.predictor_deployment(owner, spec, served, ctx.config, component=SHADOW)
    digest = spec_hash(manifest)
    existing = ctx.kube.get_deployment(owner.namespace, naming.shadow(owner.name))
    if needs_apply(existing, digest):
        manifest["metadata"]["annotations"] = {naming.ANNOTATION_SPEC_HASH: digest}
        existing = ctx.kube.apply_deployment(manifest)
    return existing


def _starting(
    ctx: Context,
    spec: DeploymentSpec,
    candidate: Obj,
    record: dict[str, Any],
    status: StatusWriter,
    events: list[Event],
    reject: Reject,
    owner: Owner,
) -> bool:
    """The candidate's pod is not ready (yet): wait up to rolloutDeadline, then refuse."""
    version = int(candidate["spec"]["version"])
    elapsed = (ctx.now - _time(record["started"])).total_seconds()
    deadline = parse_duration(spec.promotion.rollout_deadline).total_seconds()
    if elapsed > deadline:
        message = (
            f"version {version} shadow not ready after {spec.promotion.rollout_deadline}; "
            "keeps serving the current version"
        )
        status.condition("Promoted", False, policies.REJECTED_AFTER_ROLLOUT, message)
        if reject(status, candidate, policies.REJECTED_AFTER_ROLLOUT, message):
            events.append(Event("Warning", "ShadowRejected", message))
        retire_shadow(ctx, owner, status)
        return False
    record.pop("readySince", None)  # the window starts once it is ready again
    status.condition(
        "Promoted",
        "Unknown",
        shadowing.SHADOW_STARTING,
        f"version {version} starting as a shadow of live traffic",
    )
    status.wake_in(deadline - elapsed + 1)  # readiness is watched; the deadline is time
    return False


def _measure(
    ctx: Context,
    owner: Owner,
    spec: DeploymentSpec,
    version: int,
    record: dict[str, Any],
    status: StatusWriter,
) -> shadowing.Verdict | None:
    """Query the window; None (and why, in Promoted) when Prometheus cannot answer."""
    retraining = spec.retraining
    address = (retraining.prometheus.address if retraining else None) or ctx.config.prometheus_url
    if not address:
        status.condition(
            "Promoted",
            "Unknown",
            shadowing.NO_PROMETHEUS,
            "strategy shadow needs Prometheus (spec.retraining.prometheus.address or the "
            "Helm value) to measure agreement",
        )
        return None
    token = None
    if retraining is not None and retraining.prometheus.bearer_token_secret_ref is not None:
        ref = retraining.prometheus.bearer_token_secret_ref
        token = ctx.kube.secret_value(owner.namespace, ref.name, ref.key)
    seconds = parse_duration(spec.promotion.shadow_analysis.window).total_seconds()
    window = f"{max(1, round(seconds))}s"
    ns, name = owner.namespace, owner.name
    values: list[float | None] = []
    for query in (
        shadowing.agreement_query(ns, name, version, window),
        shadowing.compared_query(ns, name, version, window),
        shadowing.error_ratio_query(ns, name, version, window),
    ):
        try:
            values.append(ctx.query_prometheus(address, query, token))
        except PrometheusError as error:
            if error.reason != "EmptyResult":
                status.condition("Promoted", "Unknown", error.reason, error.message)
                status.wake_in(RECHECK_SECONDS)
                return None
            values.append(None)  # no samples: no traffic yet
    agreement, rows, error_ratio = values
    record.update(agreement=agreement, comparedRows=rows, errorRatio=error_ratio)
    return shadowing.judge(spec.promotion.shadow_analysis, version, agreement, rows, error_ratio)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
