"""Fault-injection suite: fixtures shared by tests/faults (see driftloop_testkit.faults).

The seed is printed in the report header and the recovery times in the terminal summary;
each test draws from its own ``random.Random(f"{seed}/{test name}")``, so a test replays
alone with the same seed.
"""

from __future__ import annotations

from typing import Any

import pytest

from driftloop_testkit.cluster import Kubectl
from driftloop_testkit.faults import FaultRun, RecoveryLog, fault_scale, fault_seed

SEED = fault_seed()
LOG = RecoveryLog()


def pytest_sessionstart(session: pytest.Session) -> None:
    # Written directly (not a report header): `pytest -q` hides headers.
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        scale = fault_scale()
        reporter.write_line(
            f"fault seed: DRIFTLOOP_FAULT_SEED={SEED}; {scale.lifecycles} lifecycle(s) x "
            f"{scale.kills_per_lifecycle} operator kills, outages {scale.outage_seconds:.0f}s"
        )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if LOG.injected or LOG.recovery:
        terminalreporter.section("fault injection")
        for line in LOG.summary(SEED):
            terminalreporter.write_line(line)


@pytest.fixture
def faults(
    request: pytest.FixtureRequest, namespace: str, custom: Any, kubectl: Kubectl
) -> FaultRun:
    """This test's faults: its own seeded random source (the session seed and the test's
    name), the namespace, and the session's recovery log."""
    print(f"\nfault seed: DRIFTLOOP_FAULT_SEED={SEED} ({request.node.name})")
    return FaultRun(
        seed=SEED,
        salt=request.node.name,
        namespace=namespace,
        custom=custom,
        kubectl=kubectl,
        log=LOG,
    )
