"""The fault suite's seed, scale and recovery summary (driftloop_testkit.faults)."""

from __future__ import annotations

import pytest

from driftloop_testkit.faults import SCALES, RecoveryLog, fault_scale, fault_seed


def test_the_seed_comes_from_the_environment_else_fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLOOP_FAULT_SEED", "1234")
    assert fault_seed() == 1234
    monkeypatch.delenv("DRIFTLOOP_FAULT_SEED")
    assert fault_seed() > 0


def test_the_scale_is_quick_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DRIFTLOOP_FAULT_SCALE", raising=False)
    assert fault_scale() == SCALES["quick"]
    monkeypatch.setenv("DRIFTLOOP_FAULT_SCALE", "long")
    assert fault_scale().lifecycles * fault_scale().kills_per_lifecycle >= 36  # dozens
    monkeypatch.setenv("DRIFTLOOP_FAULT_SCALE", "huge")
    with pytest.raises(ValueError, match="huge"):
        fault_scale()


def test_the_summary_counts_faults_and_gives_percentiles() -> None:
    log = RecoveryLog()
    for seconds in range(1, 101):
        log.fault("operator SIGKILL")
        log.recovered("operator SIGKILL", float(seconds))
    log.fault("Prometheus down")
    lines = log.summary(seed=7)
    assert lines[0] == (
        "fault seed 7; faults injected: 101 Prometheus down 1, operator SIGKILL 100"
    )
    assert lines[1] == ("  recovery after operator SIGKILL: n=100 p50=50.5s p99=99.0s max=100.0s")
