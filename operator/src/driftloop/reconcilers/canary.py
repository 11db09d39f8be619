"""Canary steps, post-promotion analysis and the history of what a Deployment serves.

The canary's candidate runs as its own predictor, ``<name>-canary``, behind the
serving predictor's Service; the split of ``spec.replicas`` between the two follows
each step's weight (:func:`driftloop.analysis.split`).  The decisions are pure
(:mod:`driftloop.analysis`); this module reads Prometheus, applies the two
predictors and writes the Deployment's own status (``canary``, ``postPromotion``,
``history``, ``rejectedVersions``).
"""

from __future__ import annotations

from typing import Any

from driftloop import analysis, builders, naming, policies
from driftloop.analysis import Move, Next, Verdict
from driftloop.api import Analysis, DeploymentSpec
from driftloop.builders import Owner
from driftloop.builders.common import spec_hash
from driftloop.builders.serving import ServedVersion
from driftloop.conditions import compact
from driftloop.prometheus import PrometheusError

from ._outcome import Context, Event, Obj, StatusWriter, owner_of
from ._pods import predictor_problem
from ._predictor import ensure_predictor, needs_apply, reject

HISTORY_LIMIT = 20

# Reasons of status.history records (besides policies.REJECTED_AFTER_ROLLOUT).
FIRST_VERSION = "FirstVersion"
PROMOTED = "Promoted"
CANARY_PROMOTED = "CanaryPromoted"
MANUAL_APPROVAL = "ManualApproval"
PIN_CHANGED = "PinChanged"
ROLLED_BACK = "RolledBack"


# --------------------------------------------------------------------- history


def record_change(
    status: StatusWriter, version: int, previous: int | None, reason: str, message: str
) -> None:
    """Head ``status.history`` with one change of the version served (bounded)."""
    earlier = status.fields.get("history", status.current.get("history")) or []
    record = {
        "version": version,
        "from": previous,
        "reason": reason,
        "message": message[:1024],
        "time": status.now,
    }
    status.fields["history"] = [compact(record), *earlier][:HISTORY_LIMIT]


def change_reason(spec: DeploymentSpec, target: Obj, previous: int | None, current: Obj) -> str:
    """Why the version served changes to ``target`` (from ``previous``)."""
    version = int(target["spec"]["version"])
    if previous is None:
        return FIRST_VERSION
    refused = {int(r["version"]) for r in current.get("rejectedVersions") or []}
    if version < previous or previous in refused:
        return ROLLED_BACK
    if policies.user_approval(target) == "approved":
        return MANUAL_APPROVAL
    if spec.model.version is not None:
        return PIN_CHANGED
    canary = current.get("canary") or {}
    if canary.get("promoting") and canary.get("version") == version:
        return CANARY_PROMOTED
    return PROMOTED


# -------------------------------------------------------------------- analysis


def _address(ctx: Context, spec: DeploymentSpec, checks: Analysis) -> tuple[str | None, Any]:
    source = checks.prometheus or (spec.retraining.prometheus if spec.retraining else None)
    address = (source.address if source else None) or ctx.config.prometheus_url
    ref = source.bearer_token_secret_ref if source else None
    return address, ref


def _evaluate(
    ctx: Context,
    owner: Owner,
    spec: DeploymentSpec,
    checks: Analysis,
    version: int,
    baseline: int,
    started: str,
) -> analysis.Judgement:
    """Run every check once; a query without data (or an unreachable Prometheus) is no
    data, judged against the grace counted from ``started``."""
    address, ref = _address(ctx, spec, checks)
    token = ctx.kube.secret_value(owner.namespace, ref.name, ref.key) if ref else None
    variables = {
        "namespace": owner.namespace,
        "deployment": owner.name,
        "model": spec.model.name,
        "version": str(version),
        "baseline": str(baseline),
    }
    values: list[float | None] = []
    for metric in checks.metrics:
        value: float | None = None
        if address:
            try:
                value = ctx.query_prometheus(
                    address, analysis.render(metric.query, variables), token
                )
            except PrometheusError:
                value = None
        values.append(value)
    return analysis.judge(
        checks.metrics,
        values,
        analysis.parse_time(started),
        ctx.now,
        checks.no_data_grace,
        ctx.now_text,
    )


# ---------------------------------------------------------------------- canary


def _ensure_canary(
    ctx: Context, owner: Owner, spec: DeploymentSpec, served: ServedVersion, replicas: int
) -> Obj | None:
    """The candidate's predictor, applied when its spec hash changed."""
    manifest = builders.predictor_deployment(
        owner, spec, served, ctx.config, replicas=replicas, canary=True
    )
    digest = spec_hash(manifest)
    name = naming.canary_predictor(owner.name)
    existing = ctx.kube.get_deployment(owner.namespace, name)
    if needs_apply(existing, digest):
        service, _ = ctx.kube.create(builders.predictor_service(owner))
        manifest = builders.predictor_deployment(
            owner,
            spec,
            served,
            ctx.config,
            peers_seed=builders.peers_seed(service),
            replicas=replicas,
            canary=True,
        )
        manifest["metadata"]["annotations"] = {naming.ANNOTATION_SPEC_HASH: digest}
        existing = ctx.kube.apply_deployment(manifest)
    return existing


def end_canary(ctx: Context, owner: Owner, status: StatusWriter) -> None:
    """No canary under way: its predictor goes, and its status."""
    if ctx.kube.get_deployment(owner.namespace, naming.canary_predictor(owner.name)):
        ctx.kube.delete_deployment(owner.namespace, naming.canary_predictor(owner.name))
    if status.current.get("canary") is not None:
        status.fields["canary"] = None


def run_canary(
    ctx: Context,
    owner: Owner,
    spec: DeploymentSpec,
    target: Obj,
    serving: Obj,
    status: StatusWriter,
    events: list[Event],
) -> bool:
    """One reconcile of the canary of ``target`` beside ``serving``.

    Returns True once every step has passed: the caller then rolls the serving
    predictor to the candidate (a normal rollout, tracked as any other).
    """
    candidate, stable = ServedVersion.of(target), ServedVersion.of(serving)
    steps = spec.promotion.steps
    state = dict(status.current.get("canary") or {})
    if state.get("version") != candidate.version:  # a new canary (or a newer candidate)
        state = {"version": candidate.version, "step": 0, "stepStarted": status.now}
    if state.get("promoting"):
        status.fields["canary"] = state
        status.fields["desiredVersion"] = candidate.version
        return True
    step = min(int(state["step"]), len(steps) - 1)
    weight = steps[step].weight
    canary_pods, serving_pods = analysis.split(spec.replicas, weight)
    stable_predictor = ensure_predictor(ctx, owner, spec, stable, replicas=serving_pods)
    canary_predictor = _ensure_canary(ctx, owner, spec, candidate, canary_pods)
    ready = (
        policies.rollout_state(stable_predictor, serving_pods).complete
        and policies.rollout_state(canary_predictor, canary_pods).complete
    )
    if ready and not state.get("stepReady"):
        state["stepReady"] = status.now
    state.update(
        modelVersion=candidate.name,
        weight=weight,
        canaryReplicas=canary_pods,
        stableReplicas=serving_pods,
        promoting=False,
    )
    state.setdefault("readings", [])
    status.fields.update(desiredVersion=candidate.version, rolloutStarted=None)
    status.ready(True, "Serving", f"serving {stable.name}")
    where = (
        f"canary {candidate.name} step {step + 1}/{len(steps)}: {weight}% "
        f"({canary_pods} of {canary_pods + serving_pods} pods)"
    )
    ready_at = analysis.parse_time(state["stepReady"]) if state.get("stepReady") else None
    position = analysis.step_state(steps[step], ready, ready_at, ctx.now)

    if position.move is Move.await_pods:
        started = analysis.parse_time(state["stepStarted"])
        deadline = analysis.seconds(spec.promotion.rollout_deadline)
        elapsed = (ctx.now - started).total_seconds()
        if elapsed > deadline:
            message = f"{where}: pods not ready after {spec.promotion.rollout_deadline}"
            _abort(
                ctx,
                owner,
                spec,
                target,
                stable,
                policies.REJECTED_AFTER_ROLLOUT,
                message,
                status,
                events,
            )
            return False
        problem = predictor_problem(ctx, owner, canary_predictor, candidate.version)
        detail = f"{problem.reason}: {problem.message}" if problem else "waiting for pods"
        status.condition("Promoted", "Unknown", analysis.CANARY_PROGRESSING, f"{where}; {detail}")
        status.wake_in(deadline - elapsed + 1)
        status.fields["canary"] = state
        return False
    if position.move is Move.pause:
        status.condition(
            "Promoted",
            "Unknown",
            analysis.CANARY_PROGRESSING,
            f"{where}; analysis in {position.wait_seconds:.0f}s",
        )
        status.wake_in(position.wait_seconds)
        status.fields["canary"] = state
        return False

    checks = spec.promotion.analysis or Analysis()
    state.setdefault("analysisStarted", status.now)
    judgement = _evaluate(
        ctx, owner, spec, checks, candidate.version, stable.version, state["analysisStarted"]
    )
    state["readings"] = judgement.readings
    move = analysis.after_analysis(step, len(steps), judgement.verdict)
    if move is Next.abort:
        _abort(
            ctx,
            owner,
            spec,
            target,
            stable,
            judgement.reason,
            f"{where}: {judgement.message}",
            status,
            events,
        )
        return False
    if move is Next.wait:
        status.condition(
            "Promoted", "Unknown", analysis.CANARY_PROGRESSING, f"{where}; {judgement.message}"
        )
        status.wake_in(analysis.seconds(checks.interval))
        status.fields["canary"] = state
        return False
    events.append(Event("Normal", "CanaryStepPassed", f"{where}: {judgement.message}"))
    if move is Next.advance:
        state = {
            **state,
            "step": step + 1,
            "stepStarted": status.now,
            "stepReady": None,
            "analysisStarted": None,
        }
        status.condition(
            "Promoted", "Unknown", analysis.CANARY_PROGRESSING, f"{where}: passed, next step"
        )
        status.wake_in(0)
        status.fields["canary"] = state
        return False
    state["promoting"] = True
    status.fields["canary"] = state
    return True


def _abort(
    ctx: Context,
    owner: Owner,
    spec: DeploymentSpec,
    target: Obj,
    stable: ServedVersion,
    reason: str,
    message: str,
    status: StatusWriter,
    events: list[Event],
) -> None:
    """Every pod back to the serving version; the candidate is refused from now on."""
    ctx.kube.delete_deployment(owner.namespace, naming.canary_predictor(owner.name))
    ensure_predictor(ctx, owner, spec, stable)
    text = f"{message}; all traffic back to {stable.name}"
    rejection = (
        policies.REJECTED_AFTER_ROLLOUT
        if reason == policies.REJECTED_AFTER_ROLLOUT
        else analysis.REJECTED_BY_CANARY
    )
    reject(status, target, rejection, text)
    status.fields.update(canary=None, desiredVersion=stable.version)
    status.condition("Promoted", False, analysis.CANARY_ABORTED, f"{reason}: {text}")
    status.ready(True, "Serving", f"serving {stable.name}")
    record_change(
        status, stable.version, int(target["spec"]["version"]), analysis.CANARY_ABORTED, text
    )
    events.append(Event("Warning", analysis.CANARY_ABORTED, f"{reason}: {text}"))


# -------------------------------------------------------------- post-promotion


def start_verification(
    spec: DeploymentSpec, version: int, previous: int | None, status: StatusWriter
) -> None:
    """A promotion just completed: open its post-promotion window, when configured
    (and there is a version to roll back to)."""
    window = spec.promotion.post_promotion
    if window is None or spec.promotion.analysis is None or previous is None or previous == version:
        status.fields["postPromotion"] = None
        return
    if version < previous:  # a rollback is not checked again
        status.fields["postPromotion"] = None
        return
    until = analysis.window_end(analysis.parse_time(status.now), window.window)
    status.fields["postPromotion"] = {
        "version": version,
        "previousVersion": previous,
        "started": status.now,
        "until": analysis.format_time(until),
        "readings": [],
    }
    status.wake_in(analysis.seconds(spec.promotion.analysis.interval))


def verify_promotion(
    ctx: Context,
    body: Obj,
    spec: DeploymentSpec,
    serving: Obj,
    status: StatusWriter,
    events: list[Event],
) -> bool:
    """Check the version promoted last while its window is open.  True when it failed:
    it is then recorded as refused (``rejectedVersions``) and the caller rolls back."""
    window = dict(status.current.get("postPromotion") or {})
    checks = spec.promotion.analysis
    version = int(serving["spec"]["version"])
    if not window:
        return False
    if window.get("version") != version or checks is None or spec.promotion.post_promotion is None:
        status.fields["postPromotion"] = None
        return False
    if not analysis.window_open(str(window["until"]), ctx.now):
        status.fields["postPromotion"] = None
        status.condition(
            "Verified",
            True,
            "AnalysisPassed",
            f"version {version} passed its post-promotion window",
        )
        return False
    owner = owner_of(body)
    previous = int(window["previousVersion"])
    judgement = _evaluate(ctx, owner, spec, checks, version, previous, str(window["started"]))
    left = (analysis.parse_time(str(window["until"])) - ctx.now).total_seconds()
    if judgement.verdict is not Verdict.failed:
        status.fields["postPromotion"] = {**window, "readings": judgement.readings}
        status.condition("Verified", "Unknown", judgement.reason, judgement.message)
        status.wake_in(min(analysis.seconds(checks.interval), left + 1))
        return False
    message = (
        f"version {version} failed its post-promotion analysis: {judgement.message}; "
        f"rolling back to version {previous}"
    )
    status.fields["postPromotion"] = None
    reject(status, serving, analysis.REJECTED_AFTER_PROMOTION, message)
    status.condition("Verified", False, judgement.reason, message)
    status.condition("Promoted", False, analysis.REJECTED_AFTER_PROMOTION, message)
    events.append(Event("Warning", ROLLED_BACK, message))
    return True
