"""Stalled connections: every connection the operator has open to the API server goes
silent at once (its watch streams and its pooled request connections), neither closed
nor answered, as when a NAT or load balancer drops the flows.  The same operator
process must notice and carry on: kopf reopens a watch silent for
``settings.watching.inactivity_timeout`` (70 s), and the operator's own calls time out
(``driftloop.kube.CALL_TIMEOUT``) instead of hanging their reconcile for good.

Seen failing before the call timeout: the canary created after the stall was never
judged (its reconcile hung on a pooled connection that would never answer)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from driftloop_testkit.data import iris_csv, training_run_manifest
from driftloop_testkit.driftloop import OperatorProcess, create_cr, running_operator
from driftloop_testkit.faults import FaultRun, fault_scale
from driftloop_testkit.scenarios import in_phase, ready_dataset
from driftloop_testkit.stall import FreezingProxy

# In the long suite (`make test-faults`): ~3 minutes, mostly kopf's 70 s inactivity
# timeout, that `make test` cannot spare.
pytestmark = [pytest.mark.faults, pytest.mark.faults_long, pytest.mark.cluster]

FAULT = "connections stalled"


@pytest.fixture
def proxy(kubeconfig: str) -> Iterator[FreezingProxy]:
    with FreezingProxy(FreezingProxy.upstream_of(kubeconfig)) as proxy:
        yield proxy


@pytest.fixture
def proxied_operator(
    proxy: FreezingProxy,
    kubeconfig: str,
    namespace: str,
    crds: None,
    artifact_store: str,
    runtime_image: str,
    tmp_path: Path,
) -> Iterator[OperatorProcess]:
    """The operator reaching the API server only through ``proxy``."""
    proxied = proxy.kubeconfig(kubeconfig, tmp_path / "kubeconfig")
    with running_operator(proxied, namespace, runtime_image, tmp_path) as operator:
        yield operator


def test_stalled_connections_heal_without_a_restart(
    proxy: FreezingProxy, proxied_operator: OperatorProcess, faults: FaultRun, stage: Any
) -> None:
    stage("data/iris.csv", iris_csv())
    ready_dataset(faults.custom, faults.namespace)
    create_cr(faults.custom, faults.namespace, training_run_manifest("iris-1", "iris"))
    faults.wait_cr("TrainingRun", "iris-1", in_phase("Succeeded"), what="iris-1 before the stall")
    assert proxied_operator.process is not None
    pid = proxied_operator.process.pid

    # More than once (the long suite): a stall also catches connections opened to heal.
    for round_ in range(fault_scale().stalls):
        stalled = proxy.freeze()
        assert stalled > 0, "the operator had no connection open to stall"
        faults.log.fault(FAULT)
        # A new object: the operator sees it only on a live watch and judges it only
        # with calls that complete.
        faults.log.recovered(FAULT, faults.canary(f"stall-{round_}"))

    create_cr(faults.custom, faults.namespace, training_run_manifest("iris-2", "iris"))
    faults.wait_cr("TrainingRun", "iris-2", in_phase("Succeeded"), what="iris-2 after the stalls")
    faults.settle("after the stalled connections")
    assert proxied_operator.process is not None
    assert proxied_operator.process.pid == pid, "the operator was restarted"
    assert proxied_operator.process.poll() is None, proxied_operator.log()[-3000:]
