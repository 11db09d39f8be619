#!/usr/bin/env python3
"""Reconcile latency: TrainingRun applied -> its Job exists, next to a built-in peer.

    .venv/bin/python bench/reconcile_latency.py [--runs 100]   (make bench-reconcile)

driftloop side: the operator (``python -m driftloop``, the same code as in-cluster)
watches a namespace; we create N TrainingRuns and time, from our create call
returning, until a watch on Jobs sees the run's Job.  A ResourceQuota of zero pods
keeps the Jobs from starting real training, so only the controller's reaction is
measured.

Peer side, in the same invocation: kube-controller-manager's Job controller - we
create N Jobs (running the pause image) and time until a watch sees their Pod.  Both
are "an object appears, a controller creates its child" through the same API server,
measured the same way.  Runs alternate in batches so background load hits both.
"""

from __future__ import annotations

import argparse
import os
import queue
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

from driftloop_testkit.cluster import EMBEDDED_KUBECONFIG, VERSIONS, Kubectl, wait_for
from driftloop_testkit.data import iris_csv, training_run_manifest
from driftloop_testkit.driftloop import (
    GROUP,
    VERSION,
    OperatorProcess,
    create_artifact_store,
    delete_artifact_store,
    install_crds,
    stage_file,
)
from driftloop_testkit.scenarios import ready_dataset


class Watcher:
    """Records when each named object is first seen ADDED (monotonic clock)."""

    def __init__(self, list_fn: Any, namespace: str, key: Any) -> None:
        self.seen: dict[str, float] = {}
        self.events: queue.Queue[str] = queue.Queue()
        self._stop = False
        self._thread = threading.Thread(
            target=self._run, args=(list_fn, namespace, key), daemon=True
        )
        self._thread.start()

    def _run(self, list_fn: Any, namespace: str, key: Any) -> None:
        w = watch.Watch()
        while not self._stop:
            for event in w.stream(list_fn, namespace, timeout_seconds=30):
                name = key(event["object"])
                if name and name not in self.seen:
                    self.seen[name] = time.monotonic()
                if self._stop:
                    w.stop()
                    break

    def wait(self, names: list[str], timeout: float = 120) -> None:
        wait_for(lambda: all(n in self.seen for n in names), timeout=timeout, interval=0.05)

    def stop(self) -> None:
        self._stop = True


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--batch", type=int, default=10)
    args = parser.parse_args()
    kubeconfig = os.environ.get("KUBECONFIG", str(EMBEDDED_KUBECONFIG))
    install_crds(Kubectl(kubeconfig))  # a fresh cluster has none
    api = config.new_client_from_config(config_file=kubeconfig)
    core, batch, custom = (
        client.CoreV1Api(api),
        client.BatchV1Api(api),
        client.CustomObjectsApi(api),
    )
    image = VERSIONS["RUNTIME_IMAGE"]
    ns = f"dl-bench-{uuid.uuid4().hex[:6]}"
    peer_ns = ns + "-peer"
    for name in (ns, peer_ns):
        core.create_namespace({"metadata": {"name": name}})
        wait_for(lambda n=name: core.read_namespaced_service_account("default", n), timeout=60)
    pv = create_artifact_store(api, ns)
    # The operator's own defaults (no test settings: its timers as in production); its
    # log goes to the temp directory.
    operator = OperatorProcess(kubeconfig, ns, image, Path(tempfile.gettempdir()), settings={})
    operator.start()
    try:
        stage_file(api, ns, image, "data/iris.csv", iris_csv())
        ready_dataset(custom, ns)
        # From here on no pod may start: we time controllers, not training.
        core.create_namespaced_resource_quota(
            ns, {"metadata": {"name": "no-pods"}, "spec": {"hard": {"pods": "0"}}}
        )
        jobs = Watcher(
            batch.list_namespaced_job,
            ns,
            lambda job: (job.metadata.labels or {}).get("driftloop.dev/training-run"),
        )
        pods = Watcher(
            core.list_namespaced_pod,
            peer_ns,
            lambda pod: (pod.metadata.labels or {}).get("job-name"),
        )
        ours: list[float] = []
        peer: list[float] = []
        for start in range(0, args.runs, args.batch):
            names = [f"r{i}" for i in range(start, min(args.runs, start + args.batch))]
            sent: dict[str, float] = {}
            for name in names:
                custom.create_namespaced_custom_object(
                    GROUP, VERSION, ns, "trainingruns", training_run_manifest(name, "iris")
                )
                sent[name] = time.monotonic()
                time.sleep(0.05)
            jobs.wait(names)
            ours += [jobs.seen[n] - sent[n] for n in names]
            sent = {}
            for name in names:
                batch.create_namespaced_job(
                    peer_ns,
                    {
                        "metadata": {"name": name},
                        "spec": {
                            "backoffLimit": 0,
                            "template": {
                                "spec": {
                                    "restartPolicy": "Never",
                                    "containers": [{"name": "c", "image": VERSIONS["PAUSE_IMAGE"]}],
                                }
                            },
                        },
                    },
                )
                sent[name] = time.monotonic()
                time.sleep(0.05)
            pods.wait(names)
            peer += [pods.seen[n] - sent[n] for n in names]
            for name in names:  # the peer's pods run pause: clean them up per batch
                batch.delete_namespaced_job(name, peer_ns, propagation_policy="Background")
            print(f"  {len(ours)}/{args.runs}", file=sys.stderr, flush=True)
        jobs.stop()
        pods.stop()
    finally:
        operator.stop()
        Kubectl(kubeconfig)(
            "delete",
            f"trainingruns.{GROUP},datasets.{GROUP}",
            "--all",
            "-n",
            ns,
            "--wait=false",
            check=False,
        )
        core.delete_namespace(ns)
        core.delete_namespace(peer_ns)
        delete_artifact_store(api, ns, pv)

    print(f"\nreconcile latency over {args.runs} objects (ms), created in batches of {args.batch}:")
    print(f"{'controller':<52} {'p50':>8} {'p99':>8} {'mean':>8}")
    for label, values in [
        ("driftloop: TrainingRun created -> Job exists", ours),
        ("peer, job controller: Job created -> Pod create", peer),
    ]:
        ms = [v * 1000 for v in values]
        p50, p99, mean = percentile(ms, 0.5), percentile(ms, 0.99), statistics.mean(ms)
        print(f"{label:<52} {p50:8.1f} {p99:8.1f} {mean:8.1f}")
    print(
        f"ratio driftloop/peer: p50 {percentile(ours, 0.5) / percentile(peer, 0.5):.2f}x, "
        f"p99 {percentile(ours, 0.99) / percentile(peer, 0.99):.2f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
