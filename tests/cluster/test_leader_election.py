"""Two operator replicas and one Lease on the real cluster: the leader dies, freezes or
stops, the standby takes over, and nothing is done twice.

Each replica is ``python -m driftloop --leader-elect`` (as the chart runs it), with the
Lease in the test namespace.  Takeover times are printed (docs/reliability.md), never
asserted; the waits are generous bounds that fail with a message.
"""

from __future__ import annotations

import os
import random
import re
import signal
import statistics
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from driftloop_testkit.cluster import Kubectl, wait_for
from driftloop_testkit.data import iris_csv, training_run_manifest
from driftloop_testkit.driftloop import (
    GROUP,
    VERSION,
    OperatorProcess,
    create_cr,
    delete_crs,
    wait_cr,
)
from driftloop_testkit.scenarios import in_phase, ready_dataset

pytestmark = pytest.mark.cluster

LEASE = "driftloop-operator"
WROTE = re.compile(r"\w+ [\w.-]+/[\w.-]+: wrote status")
#: Exit code of a replica that lost the Lease (driftloop.__main__.EXIT_LEADERSHIP_LOST).
LOST_LEASE_EXIT = 3


class Replicas:
    """``count`` operator processes campaigning for one Lease in ``namespace``."""

    def __init__(
        self, kubeconfig: str, namespace: str, image: str, log_dir: Path, count: int = 2
    ) -> None:
        self.namespace = namespace
        self.starts = 0
        self.procs = [
            OperatorProcess(
                kubeconfig,
                namespace,
                image,
                log_dir,
                log_name=f"replica-{i}.log",
                args=["--leader-elect", "--lease-namespace", namespace],
            )
            for i in range(count)
        ]
        self.identities: dict[str, OperatorProcess] = {}

    def start(self, proc: OperatorProcess) -> None:
        self.starts += 1
        identity = f"{Path(proc.log_path).stem}-{self.starts}"
        self.identities[identity] = proc
        proc.start(DRIFTLOOP_IDENTITY=identity)

    def holder(self, kube_api: Any) -> str:
        from kubernetes import client

        try:
            lease = client.CoordinationV1Api(kube_api).read_namespaced_lease(LEASE, self.namespace)
        except client.ApiException as error:
            if error.status == 404:
                return ""
            raise
        return str(lease.spec.holder_identity or "")

    def leader(self, kube_api: Any, timeout: float = 60) -> tuple[str, OperatorProcess]:
        def live_holder() -> str | None:
            identity = self.holder(kube_api)
            proc = self.identities.get(identity)
            return identity if proc is not None and proc.process is not None else None

        identity = wait_for(live_holder, timeout=timeout, interval=0.2, what="a live leader")
        return identity, self.identities[identity]

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.process is not None:
                os.kill(proc.process.pid, signal.SIGCONT)  # in case a test left it frozen
            proc.stop()


@pytest.fixture
def replicas(
    kubeconfig: str,
    namespace: str,
    crds: None,
    artifact_store: str,
    runtime_image: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Replicas]:
    group = Replicas(kubeconfig, namespace, runtime_image, tmp_path_factory.mktemp("replicas"))
    for proc in group.procs:
        group.start(proc)
    try:
        yield group
    finally:
        delete_crs(Kubectl(kubeconfig), namespace)  # a leader lifts kopf's finalizers
        group.stop_all()
        if os.environ.get("DRIFTLOOP_SHOW_OPERATOR_LOG"):
            for proc in group.procs:
                print(proc.log()[-10000:])


def _takeover(replicas: Replicas, kube_api: Any, old: str) -> float:
    """Seconds until a live replica other than ``old`` holds the Lease."""
    started = time.monotonic()
    wait_for(
        lambda: (
            replicas.holder(kube_api) not in ("", old)
            and replicas.identities[replicas.holder(kube_api)].process is not None
        ),
        timeout=90,
        interval=0.2,
        what=f"a new leader after {old}",
    )
    return time.monotonic() - started


def _assert_exactly_once(
    custom: Any, kubectl: Kubectl, namespace: str, runs: list[str], model: str
) -> None:
    """One Job per run, one ModelVersion per run, versions 1..N without gaps."""
    for run in runs:
        jobs = kubectl.json("get", "jobs", "-n", namespace, "-l", f"{GROUP}/training-run={run}")
        assert len(jobs["items"]) == 1, f"{run}: {[j['metadata']['name'] for j in jobs['items']]}"
    versions = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "modelversions")
    numbers = sorted(mv["spec"]["version"] for mv in versions["items"])
    assert numbers == list(range(1, len(runs) + 1)), numbers
    registered = {}
    for run in runs:
        obj = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "trainingruns", run)
        registered[run] = obj["status"]["modelVersion"]
    assert len(set(registered.values())) == len(runs), registered
    assert {f"{model}-v{n}" for n in numbers} == set(registered.values()), registered


def test_killed_leaders_are_replaced_and_nothing_is_done_twice(
    replicas: Replicas, custom: Any, kubectl: Kubectl, kube_api: Any, namespace: str, stage: Any
) -> None:
    seed = int(os.environ.get("DRIFTLOOP_FAULT_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    print(f"DRIFTLOOP_FAULT_SEED={seed}")
    stage("data/iris.csv", iris_csv(repeat=20))
    ready_dataset(custom, namespace)
    runs = [f"iris-ha-{i}" for i in range(4)]
    for run in runs:
        create_cr(custom, namespace, training_run_manifest(run, "iris"))

    takeovers: list[float] = []
    for kill in range(3):
        time.sleep(rng.uniform(1, 8))
        identity, proc = replicas.leader(kube_api)
        proc.stop(signal.SIGKILL)  # as a node or OOM kill would: no release
        takeovers.append(_takeover(replicas, kube_api, identity))
        print(f"kill {kill + 1}: SIGKILLed leader {identity}, takeover in {takeovers[-1]:.1f}s")
        replicas.start(proc)  # back as a standby, as the kubelet would restart it

    identity, proc = replicas.leader(kube_api)
    proc.stop(signal.SIGTERM)  # a rolling update: the leader releases the Lease
    graceful = _takeover(replicas, kube_api, identity)
    print(f"SIGTERM to leader {identity}: takeover in {graceful:.1f}s (released lease)")
    replicas.start(proc)

    for run in runs:
        wait_cr(custom, namespace, "TrainingRun", run, in_phase("Succeeded"), timeout=600)
    _assert_exactly_once(custom, kubectl, namespace, runs, "iris")
    print(
        f"takeover after SIGKILL: p50 {statistics.median(takeovers):.1f}s, "
        f"max {max(takeovers):.1f}s (goal <= 20s); after SIGTERM {graceful:.1f}s"
    )


def test_a_frozen_leader_wakes_up_fenced_and_exits(
    replicas: Replicas, custom: Any, kubectl: Kubectl, kube_api: Any, namespace: str, stage: Any
) -> None:
    """SIGSTOP stands for a long GC pause, a frozen VM or a partition: the Lease expires
    under a leader that does not know it.  When it wakes, it must not act."""
    stage("data/iris.csv", iris_csv(repeat=20))
    ready_dataset(custom, namespace)
    identity, frozen = replicas.leader(kube_api)
    assert frozen.process is not None
    os.kill(frozen.process.pid, signal.SIGSTOP)
    try:
        # Work arrives while the leader is frozen: the standby must take it.
        create_cr(custom, namespace, training_run_manifest("iris-frozen", "iris"))
        takeover = _takeover(replicas, kube_api, identity)
        print(f"frozen leader {identity}: takeover in {takeover:.1f}s (goal <= 20s)")
        wait_cr(
            custom,
            namespace,
            "TrainingRun",
            "iris-frozen",
            lambda o: bool((o.get("status") or {}).get("jobName")),
            timeout=120,
        )
    finally:
        before_waking = len(frozen.log())
        os.kill(frozen.process.pid, signal.SIGCONT)
    # It wakes with a backlog of watch events for the run; its fence refuses every write
    # and its watchdog ends it.
    try:
        code = frozen.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        code = None
    awake = frozen.log()[before_waking:]
    assert code == LOST_LEASE_EXIT, awake[-5000:]
    assert "lost lease" in awake
    # The operator logs every status write it makes ("<Kind> <ns>/<name>: wrote status").
    acted = [line for line in awake.splitlines() if WROTE.search(line)]
    assert not acted, "the frozen leader acted after it woke:\n" + "\n".join(acted)
    frozen.process = None
    wait_cr(custom, namespace, "TrainingRun", "iris-frozen", in_phase("Succeeded"), timeout=600)
    _assert_exactly_once(custom, kubectl, namespace, ["iris-frozen"], "iris")
