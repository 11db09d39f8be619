"""Drift-triggered retraining: read Prometheus, start TrainingRuns, record history."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from driftloop import builders, naming, retraining
from driftloop.api import TRAINING_RUN, DeploymentSpec
from driftloop.prometheus import PrometheusError

from ._outcome import Context, Event, Obj, StatusWriter, owner_of

HISTORY_LIMIT = 20


def evaluate_retraining(
    ctx: Context, body: Obj, spec: DeploymentSpec, status: StatusWriter, events: list[Event]
) -> None:
    policy = spec.retraining
    assert policy is not None
    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    current = status.current
    runs: list[Obj] = list(
        ctx.kube.list(TRAINING_RUN, namespace, f"{naming.LABEL_DEPLOYMENT}={name}")
    )
    status.fields["retrainHistory"] = _history_with_outcomes(current, runs)

    address = policy.prometheus.address or ctx.config.prometheus_url
    if not address:
        status.condition(
            "DriftMonitoring",
            False,
            "NoPrometheus",
            "no Prometheus address (spec.retraining.prometheus.address or Helm value)",
        )
        return
    token = None
    if policy.prometheus.bearer_token_secret_ref is not None:
        ref = policy.prometheus.bearer_token_secret_ref
        token = ctx.kube.secret_value(namespace, ref.name, ref.key)

    previous = {o.get("trigger"): o for o in current.get("drift") or []}
    observations: list[dict[str, Any]] = []
    serving = status.fields.get("servingVersion", current.get("servingVersion"))
    errors: list[PrometheusError] = []
    started = False
    for trigger in retraining.effective_triggers(policy.triggers, str(spec.monitoring.method)):
        before = previous.get(trigger.name)
        if not retraining.due(before, policy.interval, ctx.now):
            observations.append(dict(before or {}))
            continue
        query = trigger.query or retraining.default_query(
            namespace, name, str(spec.monitoring.method), serving
        )
        try:
            value: float | None = ctx.query_prometheus(address, query, token)
        except PrometheusError as error:
            errors.append(error)
            value = None
        reading = retraining.observe(trigger, value, before, ctx.now, ctx.now_text)
        observations.append(reading.observation)
        if reading.fires:
            started |= _retrain(
                ctx, body, spec, trigger.name, reading.observation, runs, status, events, started
            )
    status.fields["drift"] = observations
    if errors:
        status.condition("DriftMonitoring", False, errors[0].reason, errors[0].message)
    else:
        status.condition("DriftMonitoring", True, "Observed", "Prometheus queries succeed")


def _retrain(
    ctx: Context,
    body: Obj,
    spec: DeploymentSpec,
    trigger: str,
    observation: dict[str, Any],
    runs: list[Obj],
    status: StatusWriter,
    events: list[Event],
    started: bool,
) -> bool:
    """Start this window's run of ``trigger`` if admitted; whether it was started now.

    ``runs`` are the Deployment's runs, listed once per pass: a run this pass starts is
    appended, so that a second trigger firing in the same pass is admitted against it
    (cooldown, maxConcurrent).  ``started``: an earlier trigger of this pass started a
    run, whose Retraining condition a refusal of this one does not replace.
    """
    policy = spec.retraining
    assert policy is not None
    admission = retraining.admit(runs, policy.cooldown, policy.max_concurrent, ctx.now)
    if not admission.allowed:
        if not started:
            status.condition("Retraining", False, admission.reason, admission.message)
        return False
    window = retraining.window(ctx.now, policy.cooldown)
    manifest = builders.retraining_run(
        owner_of(body), spec.model.name, policy.template, trigger, window
    )
    obj, created = ctx.kube.create(manifest)
    run_name = obj["metadata"]["name"]
    if not created:
        return False  # this window's run already exists: a retry, not a new trigger
    runs.append(obj)
    value = observation.get("value")
    message = (
        f"trigger {trigger}: value {value:.4g} beyond {observation['threshold']:g} since "
        f"{observation.get('firingSince')}; started TrainingRun {run_name}"
    )
    history = [
        {"trainingRun": run_name, "trigger": trigger, "value": value, "time": ctx.now_text},
        *status.fields.get("retrainHistory", []),
    ][:HISTORY_LIMIT]
    status.fields["retrainHistory"] = history
    status.condition("Retraining", True, "DriftDetected", message)
    events.append(Event("Normal", "RetrainingStarted", message))
    return True


def _history_with_outcomes(current: Obj, runs: Sequence[Obj]) -> list[dict[str, Any]]:
    """Fill in each retraining's outcome once its TrainingRun has finished."""
    by_name = {r["metadata"]["name"]: r for r in runs}
    history = []
    for record in current.get("retrainHistory") or []:
        record = dict(record)
        run = by_name.get(record.get("trainingRun", ""))
        run_status = (run or {}).get("status") or {}
        if not record.get("outcome") and run_status.get("phase") in ("Succeeded", "Failed"):
            record["outcome"] = (
                f"registered {run_status.get('modelVersion')}"
                if run_status["phase"] == "Succeeded"
                else f"failed: {run_status.get('failureReason')}"
            )
        history.append(record)
    return history
