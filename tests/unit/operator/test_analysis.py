"""The canary's pure decisions: the split, a step's position, the analysis verdict."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from driftloop import analysis
from driftloop.analysis import Move, Next, Verdict
from driftloop.api import AnalysisMetric, CanaryStep

NOW = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("total", "weight", "expected"),
    [
        (4, 25, (1, 3)),
        (4, 50, (2, 2)),
        (4, 75, (3, 1)),
        (4, 100, (4, 0)),
        (10, 10, (1, 9)),
        (10, 33, (3, 7)),
        # the granularity limit: one pod each below 100 %
        (1, 10, (1, 1)),
        (1, 90, (1, 1)),
        (1, 100, (1, 0)),
        (2, 5, (1, 1)),
        (2, 95, (1, 1)),
        # never fewer than one candidate, never no serving pod below 100 %
        (10, 1, (1, 9)),
        (10, 99, (9, 1)),
        # replicas 0: one pod each still (there is nothing to split)
        (0, 50, (1, 1)),
    ],
)
def test_split(total: int, weight: int, expected: tuple[int, int]) -> None:
    assert analysis.split(total, weight) == expected


def test_render_replaces_known_placeholders_only() -> None:
    query = 'sum(x{namespace="${namespace}",version="${version}",y="$other"}) / ${baseline}'
    out = analysis.render(query, {"namespace": "ml", "version": "3", "baseline": "2"})
    assert out == 'sum(x{namespace="ml",version="3",y="$other"}) / 2'


ERRORS = AnalysisMetric(name="errors", query="err", operator="<", threshold=0.05)
ACCURACY = AnalysisMetric(name="accuracy", query="acc", operator=">=", threshold=0.8)
P99 = AnalysisMetric(name="p99", query="p99", operator="<=", threshold=0.25)
BOTH = [ERRORS, ACCURACY]


@pytest.mark.parametrize(
    ("name", "metrics", "values", "since", "verdict", "reason", "message"),
    [
        ("every check passes", BOTH, [0.01, 0.95], 0, Verdict.passed, "AnalysisPassed", ""),
        ("no checks pass", [], [], 0, Verdict.passed, "AnalysisPassed", "no checks"),
        (
            "a value beyond its threshold fails at once",
            BOTH,
            [0.01, 0.31],
            0,
            Verdict.failed,
            analysis.ANALYSIS_FAILED,
            "check accuracy: value 0.31 is not >= 0.8: acc",
        ),
        (
            "the first failing check in spec order names the failure",
            BOTH,
            [0.5, 0.31],
            0,
            Verdict.failed,
            analysis.ANALYSIS_FAILED,
            "check errors: value 0.5 is not < 0.05: err",
        ),
        (
            "equal to a strict bound fails",
            [ERRORS],
            [0.05],
            0,
            Verdict.failed,
            analysis.ANALYSIS_FAILED,
            "",
        ),
        ("equal to an inclusive bound passes", [P99], [0.25], 0, Verdict.passed, "", ""),
        (
            "no data within the grace waits",
            BOTH,
            [0.01, None],
            59,
            Verdict.waiting,
            "AwaitingData",
            "no data yet for accuracy (grace 1m)",
        ),
        (
            "no data after the grace fails with its own reason",
            BOTH,
            [0.01, None],
            60,
            Verdict.failed,
            analysis.ANALYSIS_NO_DATA,
            "check accuracy: no data after the grace of 1m: acc",
        ),
        (
            "NaN is no data",
            [ACCURACY],
            [float("nan")],
            0,
            Verdict.waiting,
            "AwaitingData",
            "",
        ),
        (
            "a failing value wins over missing data within the grace",
            BOTH,
            [0.9, None],
            0,
            Verdict.failed,
            analysis.ANALYSIS_FAILED,
            "check errors",
        ),
    ],
)
def test_judge(
    name: str,
    metrics: list[AnalysisMetric],
    values: list[float | None],
    since: float,
    verdict: Verdict,
    reason: str,
    message: str,
) -> None:
    judgement = analysis.judge(
        metrics, values, NOW - timedelta(seconds=since), NOW, "1m", "2026-11-30T12:00:00Z"
    )
    assert judgement.verdict is verdict, name
    if reason:
        assert judgement.reason == reason
    assert message in judgement.message
    assert [r["name"] for r in judgement.readings] == [m.name for m in metrics]


def test_readings_hold_value_threshold_and_verdict() -> None:
    judgement = analysis.judge(BOTH, [0.01, None], NOW, NOW, "1m", "t")
    assert judgement.readings == [
        {
            "name": "errors",
            "value": 0.01,
            "operator": "<",
            "threshold": 0.05,
            "passed": True,
            "time": "t",
        },
        # no data, within the grace: neither value nor verdict (absent, not null)
        {"name": "accuracy", "operator": ">=", "threshold": 0.8, "time": "t"},
    ]


STEP = CanaryStep(weight=25, pause="30s")


@pytest.mark.parametrize(
    ("name", "pods_ready", "ready_ago", "move", "wait"),
    [
        ("pods not ready", False, None, Move.await_pods, 0.0),
        ("pods ready, not yet recorded", True, None, Move.await_pods, 0.0),
        ("pods lost during the pause", False, 10, Move.await_pods, 0.0),
        ("in the pause", True, 10, Move.pause, 20.0),
        ("the pause just ended", True, 30, Move.analyse, 0.0),
        ("long after the pause", True, 300, Move.analyse, 0.0),
    ],
)
def test_step_state(
    name: str, pods_ready: bool, ready_ago: float | None, move: Move, wait: float
) -> None:
    ready_at = None if ready_ago is None else NOW - timedelta(seconds=ready_ago)
    state = analysis.step_state(STEP, pods_ready, ready_at, NOW)
    assert (state.move, state.wait_seconds) == (move, wait), name


@pytest.mark.parametrize(
    ("step", "steps", "verdict", "expected"),
    [
        (0, 3, Verdict.passed, Next.advance),
        (1, 3, Verdict.passed, Next.advance),
        (2, 3, Verdict.passed, Next.promote),
        (0, 1, Verdict.passed, Next.promote),
        (0, 3, Verdict.failed, Next.abort),
        (2, 3, Verdict.failed, Next.abort),
        (1, 3, Verdict.waiting, Next.wait),
    ],
)
def test_after_analysis(step: int, steps: int, verdict: Verdict, expected: Next) -> None:
    assert analysis.after_analysis(step, steps, verdict) is expected


def test_window() -> None:
    until = analysis.format_time(analysis.window_end(NOW, "2m"))
    assert until == "2026-11-30T12:02:00Z"
    assert analysis.window_open(until, NOW + timedelta(seconds=119))
    assert not analysis.window_open(until, NOW + timedelta(seconds=120))
