"""Scheduled retraining on a real cluster, with the real clock: a schedule every minute.

No pod runs: the Deployment serves a hand-registered version with 0 replicas, and its
retraining template names a Dataset that does not exist, so each TrainingRun the
schedule starts stays Pending - in flight - for the whole test.  That lets one test
show, tick by tick: one run per tick; none while runs are in flight at maxConcurrent
1; and after the operator was down across two ticks, one catch-up run only.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from driftloop import schedule
from driftloop_testkit.cluster import Kubectl, wait_for
from driftloop_testkit.data import deployment_manifest, model_version_manifest, training_template
from driftloop_testkit.driftloop import (
    OperatorProcess,
    condition,
    create_cr,
    get_cr,
    wait_cr,
)

pytestmark = pytest.mark.cluster

NAME = "sched"


#: A schedule every minute; every run stays Pending (its Dataset does not exist).
RETRAINING = {
    "schedule": "* * * * *",
    "cooldown": "1s",
    "maxConcurrent": 10,
    "template": training_template("absent"),
}


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _run_name(tick: datetime) -> str:
    return f"{NAME}-schedule-{schedule.tick_window(tick)}"


def _scheduled_runs(kubectl: Kubectl, namespace: str) -> set[str]:
    runs = kubectl.json(
        "get",
        "trainingruns.driftloop.dev",
        "-n",
        namespace,
        "-l",
        f"driftloop.dev/deployment={NAME},driftloop.dev/trigger=schedule",
    )
    return {r["metadata"]["name"] for r in runs["items"]}


def _patch_retraining(kubectl: Kubectl, namespace: str, retraining: dict[str, Any]) -> None:
    """A user's edit of the retraining policy."""
    patch = json.dumps({"spec": {"retraining": retraining}})
    kubectl(
        "patch", "deployments.driftloop.dev", NAME, "-n", namespace, "--type=merge", "-p", patch
    )


def _sleep_until(moment: datetime) -> None:
    time.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()))


def test_a_schedule_every_minute_one_run_per_tick_and_one_catch_up(
    operator: OperatorProcess, custom: Any, kubectl: Kubectl, namespace: str
) -> None:
    version = model_version_manifest(f"{NAME}-v1", model=NAME)
    version["metadata"]["labels"] = {"driftloop.dev/model": NAME}
    create_cr(custom, namespace, version)
    manifest = deployment_manifest(
        NAME,
        NAME,
        version=1,
        replicas=0,
        retraining=RETRAINING,
    )
    create_cr(custom, namespace, manifest)
    deployment = wait_cr(
        custom,
        namespace,
        "Deployment",
        NAME,
        lambda d: bool((d.get("status") or {}).get("nextScheduleTime")),
        timeout=60,
        what="the next tick in status",
    )
    first = _time(deployment["status"]["nextScheduleTime"])
    second = first + timedelta(minutes=1)

    # One run per tick, named after it.
    wait_for(
        lambda: _scheduled_runs(kubectl, namespace) >= {_run_name(first), _run_name(second)},
        timeout=(second - datetime.now(UTC)).total_seconds() + 45,
        what="the runs of two ticks",
    )
    assert _scheduled_runs(kubectl, namespace) == {_run_name(first), _run_name(second)}

    # maxConcurrent 1 with two runs in flight: the third tick starts nothing.
    _patch_retraining(kubectl, namespace, {"maxConcurrent": 1})
    third = second + timedelta(minutes=1)
    skipped = wait_cr(
        custom,
        namespace,
        "Deployment",
        NAME,
        lambda d: _time(d["status"]["nextScheduleTime"]) > third,
        timeout=(third - datetime.now(UTC)).total_seconds() + 45,
        what="the third tick judged",
    )
    assert condition(skipped, "Retraining")["reason"] == "MaxConcurrent", skipped["status"]
    assert _scheduled_runs(kubectl, namespace) == {_run_name(first), _run_name(second)}

    # The operator down across two ticks; back up, one catch-up run for the latest.
    operator.stop()
    _patch_retraining(kubectl, namespace, {"maxConcurrent": 10})
    fourth, fifth = third + timedelta(minutes=1), third + timedelta(minutes=2)
    _sleep_until(fifth + timedelta(seconds=3))
    operator.start()
    wait_for(
        lambda: len(_scheduled_runs(kubectl, namespace)) > 2,
        timeout=90,
        what="the catch-up run",
    )
    runs = _scheduled_runs(kubectl, namespace)
    caught_up = runs - {_run_name(first), _run_name(second)}
    assert _run_name(fourth) not in runs
    # The latest tick when the operator came back: the fifth (or the sixth, had it
    # taken a minute to start; then the fifth was missed as well).
    assert caught_up in ({_run_name(fifth)}, {_run_name(fifth + timedelta(minutes=1))}), runs
    after = get_cr(custom, namespace, "Deployment", NAME)
    assert after is not None
    retraining = condition(after, "Retraining")
    assert retraining["reason"] == "Scheduled", retraining
    assert "catching up" in retraining["message"], retraining
    assert after["status"]["lastScheduleTime"] in {
        fifth.isoformat().replace("+00:00", "Z"),
        (fifth + timedelta(minutes=1)).isoformat().replace("+00:00", "Z"),
    }
