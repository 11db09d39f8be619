"""Pure drift-trigger policy: when does a reading start a retraining run?"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import driftloop_contract as contract
from driftloop import api
from driftloop.api import Trigger, TriggerOperator, parse_duration

DEFAULT_TRIGGER = "drift"


#: Methods whose score is a function of binned counts: pooled across replicas in PromQL.
POOLED_METHODS = frozenset({contract.DriftMethod.psi, contract.DriftMethod.jensen_shannon})
#: Proportions are clipped to this before logs, as the runtime does (drift.EPS).
_EPS = "1e-4"
DEFAULT_POOL_RANGE = "5m"


def default_query(
    namespace: str,
    deployment: str,
    method: str,
    version: int | None,
    *,
    window: int = contract.DEFAULT_DRIFT_WINDOW,
    pool_range: str = DEFAULT_POOL_RANGE,
    calibrated: bool = False,
) -> str:
    """The drift of this Deployment's whole traffic, for its serving version only.

    PSI and Jensen-Shannon are computed in PromQL from the live rows per reference bin
    that every pod counts (``driftloop_feature_bin_rows_total``), summed over all pods
    over ``pool_range``: one score for the Deployment, whatever the number of replicas
    (see :func:`pooled_query`).  The sample-based methods (KS, Wasserstein) and chi2's
    p-value cannot be computed in PromQL: for them it is the max over pods of each
    pod's own window score.

    ``calibrated``: the value is the max over features of each feature's score relative
    to its calibrated threshold (``driftloop_feature_drift_threshold``, exported by the
    pods from the profile's calibration for ``window`` rows and the Deployment's
    false-alarm rate), so the trigger fires above 1; a feature without a calibrated
    threshold (a profile made before calibration, Wasserstein) is scored against the
    fixed default instead.  See :func:`calibrated_ratio`.

    Filtering on the version keeps old pods' last readings from re-triggering
    retraining after a promotion.  ``namespace`` is the target label Prometheus
    Operator (and hack/prometheus.sh) attach to every scraped pod.
    """
    selector = f'namespace="{namespace}",deployment="{deployment}"'
    if version is not None:
        selector += f',version="{version}"'
    drift_method = contract.DriftMethod(method)
    if drift_method in POOLED_METHODS:
        if calibrated:
            rows = calibrated_min_rows(window)
            return pooled_query(selector, drift_method, pool_range, rows, window=window)
        return pooled_query(selector, drift_method, pool_range, min_rows(window))
    score = f'{contract.METRIC_FEATURE_DRIFT}{{{selector},method="{method}"}}'
    if calibrated:
        limit = f'{contract.METRIC_FEATURE_DRIFT_THRESHOLD}{{{selector},method="{method}"}}'
        fixed = contract.DRIFT_THRESHOLDS[drift_method]
        return f"max({score} / {limit} or {score} / {fixed:g})"
    return f"max({score})"


def promql_duration(duration: str) -> str:
    """A Duration ("1.5m") as a PromQL range ("90s"), whole seconds, at least 1s."""
    return f"{max(1, round(parse_duration(duration).total_seconds()))}s"


def min_rows(window: int) -> int:
    """Rows before drift is reported, as the runtime's window (no data is not "no drift")."""
    return max(1, min(100, window // 10))


#: From this many live rows on, the no-drift tail of a binned statistic is smooth (an
#: empty decile bin is rare), so a calibrated threshold rescales from the window to the
#: rows of the pooled range; below it, only the threshold calibrated for that very
#: window size holds.
SMOOTH_ROWS = 200


def calibrated_min_rows(window: int) -> int:
    """Rows the calibrated pooled query needs: the window itself, or SMOOTH_ROWS for
    larger windows; never fewer than a binned statistic needs (contract.MIN_BINNED_ROWS)."""
    return max(contract.MIN_BINNED_ROWS, min(window, SMOOTH_ROWS))


def pooled_query(
    selector: str,
    method: contract.DriftMethod,
    pool_range: str,
    rows: int,
    *,
    window: int | None = None,
) -> str:
    """Max over features of PSI / Jensen-Shannon of the summed per-pod bin counts.

    ``c`` = live share of each bin over all pods in ``pool_range``, ``r`` = reference
    share; PSI = sum((c - r) ln(c / r)) with both clipped to 1e-4 (as the runtime);
    JS distance = sqrt(0.5 sum(r ln(r/m) + c ln(c/m))), m = (r + c) / 2.  Empty until
    the range holds ``rows`` live rows.  With ``window`` (calibrated): each feature's
    score relative to its calibrated threshold, see :func:`calibrated_ratio`.
    """
    counts = (
        f"sum by (feature, bin) (increase({contract.METRIC_FEATURE_BIN_ROWS}{{{selector}}}"
        f"[{pool_range}]))"
    )
    share = f"({counts} / on (feature) group_left sum by (feature) ({counts}))"
    ref = f"max by (feature, bin) ({contract.METRIC_FEATURE_REFERENCE}{{{selector}}})"
    if method is contract.DriftMethod.psi:
        c = f"clamp_min({share}, {_EPS})"
        r = f"clamp_min({ref}, {_EPS})"
        per_feature = f"sum by (feature) (({c} - {r}) * ln({c} / {r}))"
    else:
        tiny = "1e-12"
        m = f"(({share} + {ref}) / 2)"
        term_r = f"{ref} * ln(clamp_min({ref}, {tiny}) / clamp_min({m}, {tiny}))"
        term_c = f"{share} * ln(clamp_min({share}, {tiny}) / clamp_min({m}, {tiny}))"
        per_feature = f"sqrt(clamp_min(0.5 * sum by (feature) ({term_r} + {term_c}), 0))"
    live_rows = f"sum(increase({contract.METRIC_DRIFT_ROWS}{{{selector}}}[{pool_range}]))"
    enough = f"{live_rows} >= {rows}"
    if window is not None:
        per_feature = calibrated_ratio(selector, method, per_feature, live_rows, window)
    return f"max({per_feature}) and on () ({enough})"


def calibrated_ratio(
    selector: str, method: contract.DriftMethod, per_feature: str, live_rows: str, window: int
) -> str:
    """Each feature's pooled score relative to its calibrated threshold.

    The pods export the threshold ``T`` for ``window`` live rows.  The pooled range
    holds ``n`` rows instead (traffic decides), so ``T`` is rescaled to ``n``: with no
    drift PSI (and the JS distance squared) is chi-squared over the effective sample
    size 1 / (1/n + 1/N), N the reference rows, so the threshold at ``n`` is
    T * (1/n + 1/N) / (1/window + 1/N).  A feature without a calibrated threshold is
    scored against the fixed default.
    """
    limit = f"max by (feature) ({contract.METRIC_FEATURE_DRIFT_THRESHOLD}{{{selector}}})"
    reference_rows = f"max({contract.METRIC_REFERENCE_ROWS}{{{selector}}})"
    rescale = f"((1 / {window} + 1 / {reference_rows}) / (1 / {live_rows} + 1 / {reference_rows}))"
    relative = f"({per_feature} / on (feature) {limit})"
    if method is contract.DriftMethod.jensen_shannon:
        relative = f"{relative} ^ 2"
    fixed = contract.DRIFT_THRESHOLDS[method]
    return f"({relative} * on () group_left () {rescale} or {per_feature} / {fixed:g})"


def live_score_query(
    namespace: str, deployment: str, metric: str = "accuracy", pool_range: str = "5m"
) -> str:
    """The Deployment's live score from ground-truth feedback, over all its replicas.

    Each pod counts the labelled rows of its own predictions (feedback reaching another
    replica is forwarded to it), so the Deployment's accuracy is the summed counters'
    ratio: ``accuracy`` (classifiers), ``mae`` or ``rmse`` (regressors).
    """
    sel = f'namespace="{namespace}",deployment="{deployment}"'

    def total(metric_name: str) -> str:
        return f"sum(increase({metric_name}{{{sel}}}[{pool_range}]))"

    rows = total(contract.METRIC_LIVE_LABELED_ROWS)
    if metric == "accuracy":
        return f"{total(contract.METRIC_LIVE_CORRECT_ROWS)} / {rows}"
    if metric == "mae":
        return f"{total(contract.METRIC_LIVE_ABS_ERROR)} / {rows}"
    if metric == "rmse":
        return f"sqrt({total(contract.METRIC_LIVE_SQUARED_ERROR)} / {rows})"
    raise ValueError(f"unknown live metric {metric!r}: accuracy, mae or rmse")


def effective_triggers(triggers: Sequence[Trigger], method: str) -> list[Trigger]:
    """The user's triggers, or one default drift trigger held for 1m.

    The default is calibrated (no threshold): its value is the max over features of the
    drift relative to each feature's calibrated threshold, and it fires above 1.
    """
    if triggers:
        return list(triggers)
    return [Trigger(name=DEFAULT_TRIGGER)]


def is_calibrated(trigger: Trigger) -> bool:
    """A drift trigger without threshold: the default query, relative to calibration."""
    return trigger.threshold is None and trigger.query is None


#: A calibrated trigger's value is score / calibrated threshold: it fires above 1.
CALIBRATED_THRESHOLD = 1.0


def threshold_of(trigger: Trigger) -> float:
    return CALIBRATED_THRESHOLD if trigger.threshold is None else trigger.threshold


def crossed(value: float, trigger: Trigger) -> bool:
    if trigger.operator == TriggerOperator.less_than:
        return value < threshold_of(trigger)
    return value > threshold_of(trigger)


@dataclass(frozen=True)
class Reading:
    """The new observation of one trigger and whether it fires now."""

    observation: dict[str, Any]
    fires: bool


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def observe(
    trigger: Trigger,
    value: float | None,
    previous: Mapping[str, Any] | None,
    now: datetime,
    now_text: str,
) -> Reading:
    """Update a trigger's observation; it fires once crossed for ``for``."""
    observation: dict[str, Any] = {
        "trigger": trigger.name,
        "value": value,
        "threshold": threshold_of(trigger),
        "time": now_text,
    }
    if is_calibrated(trigger):
        observation["calibrated"] = True
    if value is None or not crossed(value, trigger):
        return Reading(observation, fires=False)
    since = (previous or {}).get("firingSince") or now_text
    observation["firingSince"] = since
    held = (now - _time(since)).total_seconds()
    return Reading(observation, fires=held >= parse_duration(trigger.for_).total_seconds())


def due(previous: Mapping[str, Any] | None, interval: str, now: datetime) -> bool:
    """Whether a trigger's evaluation interval has passed since its last reading."""
    if not previous or not previous.get("time"):
        return True
    return (now - _time(previous["time"])).total_seconds() >= parse_duration(
        interval
    ).total_seconds()


def next_due(observations: Sequence[Mapping[str, Any]], interval: str, now: datetime) -> float:
    """Seconds until the first trigger is due for its next evaluation."""
    every = parse_duration(interval).total_seconds()
    waits = [
        every - (now - _time(o["time"])).total_seconds() if o.get("time") else 0.0
        for o in observations
    ]
    return max(0.0, min(waits, default=every))


def window(now: datetime, cooldown: str) -> int:
    """Index of the cooldown window: part of the retraining run's name."""
    seconds = max(parse_duration(cooldown).total_seconds(), 1.0)
    return int(now.timestamp() // seconds)


@dataclass(frozen=True)
class Admission:
    allowed: bool
    reason: str
    message: str
    #: Refused by the cooldown: seconds until it ends (time is what admits it then).
    retry_in: float | None = None


def admit(
    runs: Sequence[Mapping[str, Any]], cooldown: str, max_concurrent: int, now: datetime
) -> Admission:
    """Cooldown and maxConcurrent, judged from the TrainingRuns themselves."""
    active = [
        r for r in runs if (r.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
    ]
    if len(active) >= max_concurrent:
        return Admission(False, "MaxConcurrent", f"{len(active)} retraining run(s) in flight")
    created = [_time(r["metadata"]["creationTimestamp"]) for r in runs]
    if created:
        last = max(created)
        left = parse_duration(cooldown).total_seconds() - (now - last).total_seconds()
        if left > 0:
            return Admission(False, "Cooldown", f"cooldown: {int(left)}s left", left)
    return Admission(True, "Admitted", "")


#: The trigger name of runs a user requested (``driftloop.dev/retrain-request``).
REQUEST_TRIGGER = api.REQUEST_TRIGGER
#: The trigger name of the runs of ``spec.retraining.schedule``.
SCHEDULE_TRIGGER = api.SCHEDULE_TRIGGER


def request_window(request: str) -> int:
    """The stand-in for a cooldown window in a requested run's name: a hash of the id,
    so one request id names one TrainingRun and a retry finds it."""
    return int(hashlib.sha256(request.encode()).hexdigest()[:8], 16)
