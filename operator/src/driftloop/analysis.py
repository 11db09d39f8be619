"""Pure decisions of a canary and of a post-promotion window: split, step, verdict.

A canary runs the candidate version as its own predictor behind the serving
predictor's Service, with replica counts in proportion to the step's weight (Argo
Rollouts' basic canary, no mesh).  Each step holds for its pause once its pods are
ready, then every analysis check must pass; one failing check aborts the canary.
Nothing here does I/O: the reconciler reads Prometheus and passes the values in.
"""

from __future__ import annotations

import enum
import math
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from driftloop.api import AnalysisMetric, AnalysisOperator, CanaryStep, parse_duration

#: Promoted / Ready reasons of a canary and of a post-promotion analysis.
CANARY_PROGRESSING = "CanaryProgressing"
CANARY_ABORTED = "CanaryAborted"
#: A check whose value is beyond its threshold ...
ANALYSIS_FAILED = "AnalysisFailed"
#: ... or whose query still returns no data once the grace is over.
ANALYSIS_NO_DATA = "AnalysisNoData"
#: Reasons a Deployment records in ``status.rejectedVersions`` (beside the policy's).
REJECTED_BY_CANARY = "CanaryAnalysis"
REJECTED_AFTER_PROMOTION = "PostPromotionAnalysis"


def split(total: int, weight: int) -> tuple[int, int]:
    """(candidate pods, serving pods) for ``weight`` % of ``total`` serving pods.

    Traffic follows pods (kube-proxy spreads connections evenly over ready endpoints),
    so the weight is honoured to the nearest pod: at least one candidate pod, and at
    least one serving pod below 100 %, which with one replica makes every step 50 %.
    """
    total = max(total, 1)
    if weight >= 100:
        return total, 0
    candidate = min(max(1, round(total * weight / 100)), max(total - 1, 1))
    return candidate, max(total - candidate, 1)


def render(query: str, variables: Mapping[str, str]) -> str:
    """``${name}`` placeholders replaced; unknown ones and other ``$`` text left as is."""
    return string.Template(query).safe_substitute(variables)


_COMPARE = {
    AnalysisOperator.less_than: lambda v, t: v < t,
    AnalysisOperator.less_or_equal: lambda v, t: v <= t,
    AnalysisOperator.greater_than: lambda v, t: v > t,
    AnalysisOperator.greater_or_equal: lambda v, t: v >= t,
}


def passes(metric: AnalysisMetric, value: float) -> bool:
    return bool(_COMPARE[AnalysisOperator(metric.operator)](value, metric.threshold))


class Verdict(enum.StrEnum):
    passed = "passed"
    failed = "failed"
    waiting = "waiting"


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    reason: str
    message: str
    readings: list[dict[str, Any]]


def judge(
    metrics: Sequence[AnalysisMetric],
    values: Sequence[float | None],
    started: datetime,
    now: datetime,
    grace: str,
    now_text: str,
) -> Judgement:
    """The verdict of one evaluation of every check; ``values[i]`` is ``metrics[i]``'s
    value, None when its query returned no data (or NaN).

    A value beyond its threshold fails at once; no data waits until ``grace`` after
    ``started`` (the first evaluation of this analysis), then fails.  The first
    failing check (in spec order) names the failure.
    """
    readings: list[dict[str, Any]] = []
    failure: tuple[str, str] | None = None
    missing: list[str] = []
    late = now - started >= parse_duration(grace)
    for metric, value in zip(metrics, values, strict=True):
        ok: bool | None
        if value is None or math.isnan(value):
            value, ok = None, (False if late else None)
            missing.append(metric.name)
            if late and failure is None:
                failure = (
                    ANALYSIS_NO_DATA,
                    f"check {metric.name}: no data after the grace of {grace}: {metric.query}",
                )
        else:
            ok = passes(metric, value)
            if not ok and failure is None:
                failure = (
                    ANALYSIS_FAILED,
                    f"check {metric.name}: value {value:.4g} is not {metric.operator} "
                    f"{metric.threshold:g}: {metric.query}",
                )
        reading = {
            "name": metric.name,
            "value": value,
            "operator": str(metric.operator),
            "threshold": metric.threshold,
            "passed": ok,
            "time": now_text,
        }
        readings.append({k: v for k, v in reading.items() if v is not None})
    if failure is not None:
        return Judgement(Verdict.failed, failure[0], failure[1], readings)
    if missing:
        return Judgement(
            Verdict.waiting,
            "AwaitingData",
            f"no data yet for {', '.join(missing)} (grace {grace})",
            readings,
        )
    names = ", ".join(m.name for m in metrics) or "no checks"
    return Judgement(Verdict.passed, "AnalysisPassed", f"passed: {names}", readings)


class Move(enum.StrEnum):
    """What a canary step does next."""

    #: the step's pods are not all ready yet
    await_pods = "await_pods"
    #: the pods are ready and the pause is not over
    pause = "pause"
    #: the pause is over: run the analysis
    analyse = "analyse"


@dataclass(frozen=True)
class StepState:
    move: Move
    #: seconds until the pause ends (``pause`` only)
    wait_seconds: float = 0.0


def step_state(
    step: CanaryStep, pods_ready: bool, step_ready: datetime | None, now: datetime
) -> StepState:
    """Where one step stands: its pause counts from its pods being ready."""
    if not pods_ready or step_ready is None:
        return StepState(Move.await_pods)
    left = (step_ready + parse_duration(step.pause) - now).total_seconds()
    if left > 0:
        return StepState(Move.pause, left)
    return StepState(Move.analyse)


class Next(enum.StrEnum):
    """What follows an analysed step."""

    advance = "advance"
    promote = "promote"
    abort = "abort"
    wait = "wait"


def after_analysis(step: int, steps: int, verdict: Verdict) -> Next:
    """The next move after step ``step`` (0-based) of ``steps`` was analysed."""
    if verdict is Verdict.failed:
        return Next.abort
    if verdict is Verdict.waiting:
        return Next.wait
    return Next.promote if step + 1 >= steps else Next.advance


def window_open(until: str, now: datetime) -> bool:
    """Whether a post-promotion window that ends at ``until`` is still open."""
    return now < parse_time(until)


def window_end(now: datetime, window: str) -> datetime:
    return now + parse_duration(window)


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def format_time(at: datetime) -> str:
    return at.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def seconds(duration: str) -> float:
    return float(parse_duration(duration) / timedelta(seconds=1))
