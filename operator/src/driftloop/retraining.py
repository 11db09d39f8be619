"""Pure drift-trigger policy: when does a reading start a retraining run?"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import driftloop_contract as contract
from driftloop.api import Trigger, TriggerOperator, parse_duration

DEFAULT_TRIGGER = "drift"


def default_query(namespace: str, deployment: str, method: str, version: int | None) -> str:
    """Max drift over this Deployment's features, for its serving version only.

    Filtering on the version keeps old pods' last readings from re-triggering
    retraining after a promotion.  ``namespace`` is the target label Prometheus
    Operator (and hack/prometheus.sh) attach to every scraped pod.
    """
    selector = f'namespace="{namespace}",deployment="{deployment}",method="{method}"'
    if version is not None:
        selector += f',version="{version}"'
    return f"max({contract.METRIC_FEATURE_DRIFT}{{{selector}}})"


def effective_triggers(triggers: Sequence[Trigger], method: str) -> list[Trigger]:
    """The user's triggers, or one default drift trigger held for 1m.

    Its threshold is the method's Evidently-style default: 0.1 for PSI,
    Jensen-Shannon and Wasserstein; 0.95 for KS and chi2, whose score is
    1 - p-value (so p < 0.05).
    """
    if triggers:
        return list(triggers)
    threshold = contract.DRIFT_THRESHOLDS[contract.DriftMethod(method)]
    return [Trigger(name=DEFAULT_TRIGGER, threshold=threshold)]


def crossed(value: float, trigger: Trigger) -> bool:
    if trigger.operator == TriggerOperator.less_than:
        return value < trigger.threshold
    return value > trigger.threshold


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
        "threshold": trigger.threshold,
        "time": now_text,
    }
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


def window(now: datetime, cooldown: str) -> int:
    """Index of the cooldown window: part of the retraining run's name."""
    seconds = max(parse_duration(cooldown).total_seconds(), 1.0)
    return int(now.timestamp() // seconds)


@dataclass(frozen=True)
class Admission:
    allowed: bool
    reason: str
    message: str


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
            return Admission(False, "Cooldown", f"cooldown: {int(left)}s left")
    return Admission(True, "Admitted", "")
