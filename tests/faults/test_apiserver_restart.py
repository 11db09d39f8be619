"""kube-apiserver SIGKILLed and restarted mid-lifecycle: the operator (one process, never
restarted) must notice its dead watches and resume, so objects created after the
restart are handled."""

from __future__ import annotations

import time
from typing import Any

import pytest

from driftloop_testkit.data import iris_csv, training_run_manifest
from driftloop_testkit.driftloop import OperatorProcess, create_cr
from driftloop_testkit.faults import FaultRun, restart_apiserver
from driftloop_testkit.scenarios import in_phase, ready_dataset, serve

pytestmark = [pytest.mark.faults, pytest.mark.cluster]

FAULT = "kube-apiserver restart"


def _restart(faults: FaultRun, operator: OperatorProcess, label: str) -> None:
    """Restart the API server, then prove the same operator process sees a new object."""
    assert operator.process is not None
    pid = operator.process.pid
    restart_apiserver(faults.rng.randint(3, 15))
    faults.log.fault(FAULT)
    faults.log.recovered(FAULT, faults.canary(label))
    assert operator.process is not None
    assert operator.process.pid == pid, "the operator was restarted"
    assert operator.process.poll() is None, f"the operator exited:\n{operator.log()[-3000:]}"


def test_operator_resumes_after_apiserver_restarts(
    operator: OperatorProcess, faults: FaultRun, stage: Any
) -> None:
    stage("data/iris.csv", iris_csv())
    ready_dataset(faults.custom, faults.namespace)
    create_cr(faults.custom, faults.namespace, training_run_manifest("iris-1", "iris"))
    faults.wait_cr("TrainingRun", "iris-1", in_phase("Running"), what="iris-1 running")
    _restart(faults, operator, "training")  # while the training Job runs
    faults.wait_cr("TrainingRun", "iris-1", in_phase("Succeeded"), what="iris-1 after the restart")

    serve(faults.custom, faults.namespace)
    create_cr(faults.custom, faults.namespace, training_run_manifest("iris-2", "iris"))
    faults.wait_cr(
        "Deployment",
        "iris",
        lambda o: (o.get("status") or {}).get("desiredVersion") == 2,
        what="the rollout of version 2 to start",
    )
    started = time.monotonic()
    _restart(faults, operator, "rollout")  # while version 2 rolls out
    faults.settle("after the API server restarts", kind="settled after apiserver", since=started)
