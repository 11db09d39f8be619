"""/healthz: a live process with a dead watch or a wedged loop is unhealthy."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request

import pytest

from driftloop.health import Health, HealthServer, LoopHeartbeat, WatchEchoes


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_write_whose_echo_never_comes_is_a_stalled_watch() -> None:
    clock = Clock()
    echoes = WatchEchoes(stall_after=60, clock=clock)
    echoes.wrote("TrainingRun", "u1", based_on="10")
    clock.now = 60
    assert echoes.problems() == []
    echoes.seen("TrainingRun", "u1", "10")  # an old event, queued before the write
    clock.now = 61
    assert echoes.problems() == [
        "the TrainingRun watch is stalled: a status write 61s ago never came back"
    ]
    echoes.seen("TrainingRun", "u1", "11")  # the echo
    assert echoes.problems() == []


def test_a_deletion_is_an_echo_too() -> None:
    clock = Clock()
    echoes = WatchEchoes(stall_after=1, clock=clock)
    echoes.wrote("Dataset", "u1", based_on="5")
    echoes.seen("Dataset", "u1", "5", deleted=True)
    clock.now = 100
    assert echoes.problems() == []


def test_the_oldest_write_dates_a_stall() -> None:
    clock = Clock()
    echoes = WatchEchoes(stall_after=1, clock=clock)
    echoes.wrote("Dataset", "u1", based_on="5")
    clock.now = 50
    echoes.wrote("Dataset", "u1", based_on="6")  # a second write: still waiting since 0
    clock.now = 70
    assert echoes.problems() == [
        "the Dataset watch is stalled: a status write 70s ago never came back"
    ]


def test_a_loop_that_stops_running_tasks_is_unhealthy() -> None:
    clock = Clock()
    heartbeat = LoopHeartbeat(period=0.01, stale_after=30, clock=clock)
    assert heartbeat.problems() == []  # not started

    async def beat_once() -> None:
        task = asyncio.create_task(heartbeat.run())
        await asyncio.sleep(0.05)
        task.cancel()

    asyncio.run(beat_once())
    clock.now = 30
    assert heartbeat.problems() == []
    clock.now = 31
    assert heartbeat.problems() == ["the event loop has not run for 31s"]


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.fixture
def served() -> tuple[HealthServer, list[str]]:
    problems: list[str] = []
    health = Health([lambda: list(problems)])
    server = HealthServer("http://127.0.0.1:0/healthz", health)
    server.start()
    yield server, problems  # type: ignore[misc]
    server.stop()


def test_healthz_answers_200_or_500_with_the_problems(
    served: tuple[HealthServer, list[str]],
) -> None:
    server, problems = served
    url = f"http://127.0.0.1:{server.port}"
    assert _get(url + "/healthz") == (200, "ok\n")
    problems.append("the Dataset watch is stalled")
    assert _get(url + "/healthz") == (500, "the Dataset watch is stalled\n")
    assert _get(url + "/other")[0] == 404


def test_a_broken_check_is_a_problem_not_a_crash() -> None:
    def broken() -> list[str]:
        raise RuntimeError("boom")

    assert Health([broken, lambda: ["x"]]).problems() == ["health check failed: boom", "x"]
