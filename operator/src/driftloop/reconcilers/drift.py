"""Drift-triggered retraining: read Prometheus, start TrainingRuns, record history."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from driftloop import builders, conditions, naming, retraining, schedule
from driftloop.api import RETRAIN_REQUEST_ANNOTATION, TRAINING_RUN, DeploymentSpec, parse_duration
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
    # The schedule needs no Prometheus: it goes first, and its run counts against
    # the triggers' admission below (``runs``).
    started = evaluate_schedule(ctx, body, spec, runs, status, events)

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
    queried = False
    for trigger in retraining.effective_triggers(policy.triggers, str(spec.monitoring.method)):
        before = previous.get(trigger.name)
        if not retraining.due(before, policy.interval, ctx.now):
            observations.append(dict(before or {}))
            continue
        queried = True
        query = trigger.query or retraining.default_query(
            namespace,
            name,
            str(spec.monitoring.method),
            serving,
            window=spec.monitoring.window,
            pool_range=retraining.promql_duration(spec.monitoring.pool_range),
            calibrated=retraining.is_calibrated(trigger),
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
    status.wake_in(retraining.next_due(observations, policy.interval, ctx.now))
    if errors:
        status.condition("DriftMonitoring", False, errors[0].reason, errors[0].message)
    elif queried:
        status.condition("DriftMonitoring", True, "Observed", "Prometheus queries succeed")
    else:
        # No query ran in this pass (none due): the last queries' outcome still stands.
        # Calling it success here flipped an outage back to True between two readings.
        status.keep("DriftMonitoring")


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


def evaluate_schedule(
    ctx: Context,
    body: Obj,
    spec: DeploymentSpec,
    runs: list[Obj],
    status: StatusWriter,
    events: list[Event],
) -> bool:
    """Start the run of the schedule's due tick, if admitted; whether it was started.

    One run per tick (named after it: a retry finds it); a tick refused by the
    cooldown or maxConcurrent is skipped, not deferred, as a CronJob's with
    concurrencyPolicy Forbid.  The reconcile wakes at the next tick: nothing else
    would (the work queue is event-driven).
    """
    policy = spec.retraining
    assert policy is not None
    if policy.schedule is None:
        status.fields.update(nextScheduleTime=None)
        status.drop("Schedule")
        return False
    try:
        cron = schedule.parse(policy.schedule, policy.time_zone)
    except schedule.ScheduleError as error:
        status.fields.update(nextScheduleTime=None)
        if _reason(status.current, "Schedule") != error.reason:
            events.append(Event("Warning", error.reason, error.message))
        status.condition("Schedule", False, error.reason, error.message)
        return False
    recorded = status.current.get("nextScheduleTime")
    deadline = (
        parse_duration(policy.starting_deadline) if policy.starting_deadline is not None else None
    )
    plan = schedule.plan(cron, ctx.now, _time(recorded) if recorded else None, deadline)
    status.fields["nextScheduleTime"] = _text(plan.next)
    status.wake_in((plan.next - ctx.now).total_seconds())
    zone = policy.time_zone or "UTC"
    status.condition(
        "Schedule", True, "Scheduled", f"{policy.schedule} ({zone}): next {_text(plan.next)}"
    )
    if plan.missed is not None:
        message = (
            f"schedule: tick {_text(plan.missed)} not started within startingDeadline "
            f"{policy.starting_deadline}: skipped"
        )
        status.condition("Retraining", False, "MissedSchedule", message)
        events.append(Event("Warning", "MissedSchedule", message))
        return False
    if plan.tick is None:
        return False
    tick = _text(plan.tick)
    manifest = builders.retraining_run(
        owner_of(body),
        spec.model.name,
        policy.template,
        retraining.SCHEDULE_TRIGGER,
        schedule.tick_window(plan.tick),
    )
    run_name = manifest["metadata"]["name"]
    if any(r["metadata"]["name"] == run_name for r in runs):
        status.fields["lastScheduleTime"] = tick  # a retry: this tick's run exists
        return False
    admission = retraining.admit(runs, policy.cooldown, policy.max_concurrent, ctx.now)
    if not admission.allowed:
        message = f"schedule: tick {tick} skipped: {admission.message}"
        status.condition("Retraining", False, admission.reason, message)
        events.append(Event("Normal", "ScheduledRunSkipped", message))
        return False
    obj, created = ctx.kube.create(manifest)
    status.fields["lastScheduleTime"] = tick
    if not created:
        return False
    runs.append(obj)
    message = f"schedule: tick {tick}: started TrainingRun {run_name}"
    if plan.skipped:
        message += f" (catching up; {plan.skipped} earlier tick(s) missed)"
    history = [
        {
            "trainingRun": run_name,
            "trigger": retraining.SCHEDULE_TRIGGER,
            "value": None,
            "time": ctx.now_text,
        },
        *status.fields.get("retrainHistory", []),
    ][:HISTORY_LIMIT]
    status.fields["retrainHistory"] = history
    status.condition("Retraining", True, "Scheduled", message)
    events.append(Event("Normal", "RetrainingStarted", message))
    return True


def _reason(current: Obj, type_: str) -> str | None:
    found = conditions.get_condition(current, type_)
    return str(found.get("reason")) if found else None


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _text(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def retrain_on_request(
    ctx: Context, body: Obj, spec: DeploymentSpec, status: StatusWriter, events: list[Event]
) -> None:
    """Start the TrainingRun a user asked for with ``driftloop.dev/retrain-request``.

    One run per request id (its name is derived from the id: a retry or a restart finds
    it); admitted like a trigger's run (cooldown, maxConcurrent).  A refused request stays
    pending, reported in the Retraining condition, until it is admitted or the annotation
    is removed.
    """
    meta = body["metadata"]
    request = str((meta.get("annotations") or {}).get(RETRAIN_REQUEST_ANNOTATION) or "").strip()
    if not request:
        return
    name, namespace = meta["name"], meta["namespace"]
    trigger = retraining.REQUEST_TRIGGER
    window = retraining.request_window(request)
    if ctx.kube.get(TRAINING_RUN, namespace, naming.retraining_run(name, trigger, window)):
        return  # this request was served
    policy = spec.retraining
    if policy is None:
        status.condition(
            "Retraining",
            False,
            "NoTemplate",
            f"retrain request {request}: spec.retraining has no template to train from",
        )
        return
    runs = ctx.kube.list(TRAINING_RUN, namespace, f"{naming.LABEL_DEPLOYMENT}={name}")
    admission = retraining.admit(runs, policy.cooldown, policy.max_concurrent, ctx.now)
    if not admission.allowed:
        status.condition(
            "Retraining", False, admission.reason, f"retrain request {request}: {admission.message}"
        )
        if admission.retry_in is not None:  # a run's end is an event; a cooldown's end is not
            status.wake_in(admission.retry_in)
        return
    manifest = builders.retraining_run(
        owner_of(body), spec.model.name, policy.template, trigger, window
    )
    obj, created = ctx.kube.create(manifest)
    if not created:
        return
    run_name = obj["metadata"]["name"]
    message = f"retrain request {request}: started TrainingRun {run_name}"
    history = [
        {"trainingRun": run_name, "trigger": trigger, "value": None, "time": ctx.now_text},
        *status.fields.get("retrainHistory", status.current.get("retrainHistory") or []),
    ][:HISTORY_LIMIT]
    status.fields["retrainHistory"] = history
    status.condition("Retraining", True, "Requested", message)
    events.append(Event("Normal", "RetrainingStarted", message))


def _history_with_outcomes(current: Obj, runs: Sequence[Obj]) -> list[dict[str, Any]]:
    """The history read back from the runs: each retraining's outcome once its run has
    finished, and a record for a trigger's run the history lacks.

    A run is created before the status write that records it; when that write fails (a
    conflict, a crash), the retry finds the run already there and is refused by the
    cooldown, so the record comes from the run itself (its trigger label and creation
    time; the value that fired it is lost with the write).
    """
    by_name = {r["metadata"]["name"]: r for r in runs}
    history = []
    for record in current.get("retrainHistory") or []:
        history.append(_with_outcome(dict(record), by_name.get(record.get("trainingRun", ""))))
    recorded = {record.get("trainingRun") for record in history}
    for run in runs:
        meta = run["metadata"]
        trigger = (meta.get("labels") or {}).get(naming.LABEL_TRIGGER)
        if trigger and meta["name"] not in recorded:
            record = {"trainingRun": meta["name"], "trigger": trigger, "value": None}
            history.append(_with_outcome({**record, "time": meta["creationTimestamp"]}, run))
    history.sort(key=lambda record: str(record.get("time", "")), reverse=True)
    return history[:HISTORY_LIMIT]


def _with_outcome(record: dict[str, Any], run: Obj | None) -> dict[str, Any]:
    run_status = (run or {}).get("status") or {}
    if not record.get("outcome") and run_status.get("phase") in ("Succeeded", "Failed"):
        record["outcome"] = (
            f"registered {run_status.get('modelVersion')}"
            if run_status["phase"] == "Succeeded"
            else f"failed: {run_status.get('failureReason')}"
        )
    return record
