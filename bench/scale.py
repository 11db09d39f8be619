#!/usr/bin/env python3
"""Operator at scale: bursts of TrainingRuns, then idle, next to an earlier driftloop.

    .venv/bin/python bench/scale.py [--sizes 1000,5000] [--idle 300] [--peer-ref REF]
    (make bench-scale)

For each size, each operator in turn (never both at once: two cores) watches a fresh
namespace with a validated Dataset and a ResourceQuota of zero pods, so Jobs are created
but no pod ever starts (pending Jobs, as behind a queue or a quota).  We create N
TrainingRuns as fast as 8 client threads can, then measure:

* time until every run has its Job, runs/s, p50/p99 create -> Job latency (a watch on
  Jobs stamps each first sighting);
* the operator's peak and settled RSS and its CPU seconds (from /proc);
* the API requests the operator's reconcilers send per second (its own
  ``driftloop_operator_api_requests_total``) during the burst and while idle for
  ``--idle`` seconds with everything pending, and how many of those were writes;
* the settle: time until every run names the quota refusing its pods (its Job's
  first ``FailedCreate``, which the Job controller reports late at 5,000), then idle;
* ``--deployments`` driftloop Deployments with a retraining policy are created first
  (they wait for a version: their predictors cannot start), so idle includes them.

The peer is driftloop itself at ``--peer-ref`` (default: the commit before reconciles
became event-driven: its operator polls every unfinished object on a timer), run from a
git worktree with the same virtualenv.  Results go to stdout; docs/benchmarks.md
records them with the date and the machine load.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config

sys.path.insert(0, str(Path(__file__).parent))
from reconcile_latency import Watcher, percentile

from driftloop_testkit.cluster import (
    EMBEDDED_KUBECONFIG,
    REPO,
    VERSIONS,
    Kubectl,
    wait_for,
)
from driftloop_testkit.data import drift_loop_deployment, iris_csv, training_run_manifest
from driftloop_testkit.driftloop import (
    GROUP,
    VERSION,
    OperatorProcess,
    create_artifact_store,
    delete_artifact_store,
    install_crds,
    stage_file,
)
from driftloop_testkit.scenarios import has_reason, ready_dataset

#: The last commit whose operator polled every unfinished object on a kopf timer (the
#: parent of the one that made reconciles event-driven).
DEFAULT_PEER_REF = "b0348a2"
#: The runs' Jobs' activeDeadlineSeconds: longer than a benchmark of 5,000 takes.
RUN_DEADLINE = 3 * 3600
WRITE_VERBS = ("create", "patch", "update", "delete", "apply")


@dataclass
class Sample:
    label: str
    size: int
    drain_seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    rss_start_mb: float = 0.0
    rss_peak_mb: float = 0.0
    rss_settled_mb: float = 0.0
    cpu_burst_s: float = 0.0
    cpu_idle_s: float = 0.0
    burst_requests: float = 0.0
    idle_requests: float = 0.0
    idle_writes: float = 0.0
    idle_seconds: float = 0.0
    server_idle_requests: float = 0.0
    burst_server_errors: float = 0.0
    server_idle_writes: float = 0.0
    finished: bool = True
    #: Seconds from the last Job to every run naming its quota refusal (the settled,
    #: pending state idle is measured in), how many did, and the status writes meanwhile.
    settle_seconds: float = 0.0
    refusals_named: int = 0
    settle_writes: float = 0.0
    #: Runs that named their refusal during the idle window (each one status write and
    #: one Event: new information, not polling).
    named_in_idle: int = 0
    #: The operator's requests by "verb resource" (api_requests_by_call).
    burst_calls: Counter[str] = field(default_factory=Counter)
    idle_calls: Counter[str] = field(default_factory=Counter)


class ProcessProbe:
    """RSS (peak sampled every 0.2 s) and CPU seconds of one process, from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._stop = threading.Event()
        threading.Thread(target=self._sample, daemon=True).start()

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self.peak = max(self.peak, self.rss_mb())
            except OSError:
                return

    def stop(self) -> None:
        self._stop.set()


def metric_labels(line: str) -> dict[str, str]:
    """The labels of one sample line of the Prometheus text format, unquoted."""
    inner = line[line.index("{") + 1 : line.rindex("}")]
    return {k: v.strip('"') for k, v in (part.split("=", 1) for part in inner.split(","))}


def api_requests_by_call(operator: OperatorProcess) -> Counter[str]:
    """The reconcilers' requests so far by "verb resource", from the operator's
    /metrics (empty for an operator without that metric: the API server's count below
    still shows it)."""
    import requests

    text = requests.get(f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=10).text
    calls: Counter[str] = Counter()
    for line in text.splitlines():
        if line.startswith("driftloop_operator_api_requests_total{"):
            labels = metric_labels(line)
            verb, resource = labels["verb"], labels["resource"]
            calls[f"{verb} {resource}"] += float(line.rsplit(" ", 1)[1])
    return calls


def api_requests(operator: OperatorProcess) -> tuple[float, float]:
    """(all, writes) the reconcilers sent so far (api_requests_by_call)."""
    calls = api_requests_by_call(operator)
    writes = sum(n for call, n in calls.items() if call.split(" ", 1)[0] in WRITE_VERBS)
    return sum(calls.values()), writes


#: What the operators read and write, as apiserver_request_total names them.
OPERATOR_RESOURCES = {
    "datasets",
    "trainingruns",
    "modelversions",
    "deployments",
    "jobs",
    "pods",
    "events",
    "services",
    "secrets",
    "persistentvolumeclaims",
    "customresourcedefinitions",
}


def apiserver_requests(kubectl: Kubectl) -> tuple[float, float, float]:
    """(all, writes, refused with 429 or failed with 5xx) the API server counted on the
    operators' resources (from every client: the Job controller's share is the same for
    both operators)."""
    total = writes = errors = 0.0
    for line in kubectl("get", "--raw", "/metrics").stdout.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = metric_labels(line)
        if labels.get("resource") not in OPERATOR_RESOURCES or labels.get("verb") == "WATCH":
            continue
        value = float(line.rsplit(" ", 1)[1])
        total += value
        if labels.get("verb") in ("POST", "PUT", "PATCH", "DELETE", "APPLY"):
            writes += value
        code = labels.get("code", "")
        if code == "429" or code.startswith("5"):
            errors += value
    return total, writes, errors


def run_one(
    api: Any,
    label: str,
    source: Path | None,
    size: int,
    deployments: int,
    idle: float,
    settle: float = 900,
    trace_memory: bool = False,
) -> Sample:
    core, batch, custom = (
        client.CoreV1Api(api),
        client.BatchV1Api(api),
        client.CustomObjectsApi(api),
    )
    kubeconfig = os.environ.get("KUBECONFIG", str(EMBEDDED_KUBECONFIG))
    image = VERSIONS["RUNTIME_IMAGE"]
    ns = f"dl-scale-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": ns}})
    wait_for(lambda: core.read_namespaced_service_account("default", ns), timeout=60)
    pv = create_artifact_store(api, ns)
    env: dict[str, str] = {"DRIFTLOOP_PROMETHEUS_URL": "http://127.0.0.1:19090"}
    if trace_memory:  # Python's own switch; the operator dumps on SIGUSR1
        env["PYTHONTRACEMALLOC"] = "1"
    if source is not None:  # the peer's code first on the path, the same virtualenv
        env["PYTHONPATH"] = f"{source}/operator/src:{source}/contract/src"
    operator = OperatorProcess(
        kubeconfig,
        ns,
        image,
        Path(tempfile.gettempdir()),
        log_name=f"scale-{label}-{size}.log",
        settings={"DRIFTLOOP_IMAGE_PULL_POLICY": "IfNotPresent"},
    )
    operator.start(**env)
    sample = Sample(label, size)
    assert operator.process is not None
    probe = ProcessProbe(operator.process.pid)
    try:
        stage_file(api, ns, image, "data/iris.csv", iris_csv())
        ready_dataset(custom, ns)
        core.create_namespaced_resource_quota(
            ns, {"metadata": {"name": "no-pods"}, "spec": {"hard": {"pods": "0"}}}
        )
        for i in range(deployments):
            manifest = drift_loop_deployment(f"serve-{i}", interval="1m")
            custom.create_namespaced_custom_object(GROUP, VERSION, ns, "deployments", manifest)
        time.sleep(10)  # let the operator settle before the burst
        sample.rss_start_mb = probe.rss_mb()
        jobs = Watcher(
            batch.list_namespaced_job,
            ns,
            lambda job: (job.metadata.labels or {}).get("driftloop.dev/training-run"),
        )
        names = [f"r{i}" for i in range(size)]
        sent: dict[str, float] = {}
        cpu0, (req0, _) = probe.cpu_seconds(), api_requests(operator)
        calls0 = api_requests_by_call(operator)
        errors0 = apiserver_requests(Kubectl(kubeconfig))[2]
        started = time.monotonic()

        def create(name: str) -> None:
            custom.create_namespaced_custom_object(
                GROUP,
                VERSION,
                ns,
                "trainingruns",
                # Pending for the whole benchmark: no run fails at its Job's deadline.
                training_run_manifest(name, "iris", activeDeadlineSeconds=RUN_DEADLINE),
            )
            sent[name] = time.monotonic()

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(create, names))
        try:
            jobs.wait(names, timeout=max(600.0, size * 0.5))
        except TimeoutError:
            sample.finished = False
        sample.drain_seconds = max(jobs.seen.values(), default=started) - started
        sample.latencies = [jobs.seen[n] - sent[n] for n in names if n in jobs.seen]
        sample.cpu_burst_s = probe.cpu_seconds() - cpu0
        sample.burst_requests = api_requests(operator)[0] - req0
        sample.burst_calls = api_requests_by_call(operator) - calls0
        sample.burst_server_errors = apiserver_requests(Kubectl(kubeconfig))[2] - errors0
        jobs.stop()
        # Settle before idle: the Job controller (20 requests/s of its own) works through
        # the Jobs, and each run records the quota refusal once when its Job's first
        # FailedCreate arrives (392 s after the burst for all of 1,000 on 2026-12-02, the
        # controller busy retrying the refused pods of the first). Idle is measured once
        # every run names it (or --settle passes), and its status writes have stopped.
        settle_started, settle_w0 = time.monotonic(), api_requests(operator)[1]
        settle_until = settle_started + settle
        while time.monotonic() < settle_until:
            sample.refusals_named = quota_refusals_named(custom, ns)
            if sample.refusals_named == size:
                break
            time.sleep(30)
        sample.settle_seconds = time.monotonic() - settle_started
        before = api_requests(operator)[1]
        while time.monotonic() < settle_until + 60:
            time.sleep(10)
            now_writes = api_requests(operator)[1]
            if now_writes == before:
                break
            before = now_writes
        sample.settle_writes = before - settle_w0
        sample.refusals_named = quota_refusals_named(custom, ns)
        kubectl = Kubectl(kubeconfig)
        cpu1, (req1, wr1) = probe.cpu_seconds(), api_requests(operator)
        calls1 = api_requests_by_call(operator)
        srv1, srw1, _ = apiserver_requests(kubectl)
        t1 = time.monotonic()
        time.sleep(idle)
        sample.named_in_idle = quota_refusals_named(custom, ns) - sample.refusals_named
        cpu2, (req2, wr2) = probe.cpu_seconds(), api_requests(operator)
        srv2, srw2, _ = apiserver_requests(kubectl)
        sample.server_idle_requests, sample.server_idle_writes = srv2 - srv1, srw2 - srw1
        sample.idle_seconds = time.monotonic() - t1
        sample.cpu_idle_s = cpu2 - cpu1
        sample.idle_requests, sample.idle_writes = req2 - req1, wr2 - wr1
        sample.idle_calls = api_requests_by_call(operator) - calls1
        sample.rss_settled_mb = probe.rss_mb()
        sample.rss_peak_mb = probe.peak
        if trace_memory:
            operator.process.send_signal(signal.SIGUSR1)
            time.sleep(20)
            print(f"\nwhere the memory of {label} with {size} runs was allocated:")
            for line in operator.log().splitlines():
                if "tracemalloc:" in line:
                    print("  " + line.split("tracemalloc:", 1)[1].strip())
    finally:
        probe.stop()
        operator.stop()
        Kubectl(kubeconfig)("delete", "namespace", ns, "--wait=false", check=False)
        # The operator is gone: kopf's finalizers (on the peer's objects) would keep the
        # namespace Terminating; strip them.
        for plural in ("trainingruns", "deployments", "datasets"):
            for item in custom.list_namespaced_custom_object(GROUP, VERSION, ns, plural)["items"]:
                if item["metadata"].get("finalizers"):
                    custom.patch_namespaced_custom_object(
                        GROUP,
                        VERSION,
                        ns,
                        plural,
                        item["metadata"]["name"],
                        {"metadata": {"finalizers": None}},
                    )
        delete_artifact_store(api, ns, pv)
    return sample


def quota_refusals_named(custom: Any, ns: str) -> int:
    """Runs whose Ready condition names the quota refusing their pods."""
    runs = custom.list_namespaced_custom_object(GROUP, VERSION, ns, "trainingruns")["items"]
    return sum(1 for run in runs if has_reason("QuotaExceeded")(run))


def report(samples: list[Sample], goals: dict[int, float]) -> None:
    print(
        f"\n{'operator':<14} {'runs':>6} {'drain s':>8} {'runs/s':>7} {'p50 s':>7} {'p99 s':>7} "
        f"{'RSS MB start/peak/settled':>26} {'CPU burst s':>11} {'req/s burst':>11} "
        f"{'settled s':>9} {'named':>6} {'settle writes':>13} "
        f"{'idle req/s':>10} {'idle writes':>11} {'named in idle':>13} {'idle CPU %':>10} "
        f"{'server idle req/s':>17}"
    )
    for s in samples:
        lat = s.latencies or [float("nan")]
        rate = s.size / s.drain_seconds if s.drain_seconds else float("nan")
        idle_rps = s.idle_requests / s.idle_seconds if s.idle_seconds else float("nan")
        idle_cpu = 100 * s.cpu_idle_s / s.idle_seconds if s.idle_seconds else float("nan")
        drain = f"{s.drain_seconds:.1f}" + ("" if s.finished else "!")
        rss = f"{s.rss_start_mb:.0f}/{s.rss_peak_mb:.0f}/{s.rss_settled_mb:.0f}"
        burst_rps = s.burst_requests / s.drain_seconds if s.drain_seconds else float("nan")
        print(
            f"{s.label:<14} {s.size:>6} {drain:>8} {rate:>7.1f} {percentile(lat, 0.5):>7.2f} "
            f"{percentile(lat, 0.99):>7.2f} {rss:>26} {s.cpu_burst_s:>11.1f} {burst_rps:>11.1f} "
            f"{s.settle_seconds:>9.1f} {s.refusals_named:>6} {s.settle_writes:>13.0f} "
            f"{idle_rps:>10.2f} {s.idle_writes:>11.0f} {s.named_in_idle:>13} {idle_cpu:>10.1f} "
            f"{s.server_idle_requests / max(s.idle_seconds, 1e-9):>17.2f}"
        )
    print(
        "('!': not every run had its Job when the wait ended; settled s: after the last Job,"
        " until 'named' runs named their quota refusal, 'settle writes' the status writes"
        " meanwhile; 'named in idle': runs that named it during the idle window, one status"
        " write and one Event each)"
    )
    for s in samples:
        for phase, calls in (("burst", s.burst_calls), ("idle", s.idle_calls)):
            if calls:
                text = ", ".join(f"{call} {n:.0f}" for call, n in calls.most_common())
                print(f"{s.label} {s.size} runs, the operator's requests in the {phase}: {text}")
    ours = {s.size: s for s in samples if s.label == "driftloop"}
    peers = {s.size: s for s in samples if s.label != "driftloop"}
    for size, s in sorted(ours.items()):
        goal = goals.get(size)
        line = f"{size} runs: drained in {s.drain_seconds:.1f}s"
        if goal:
            line += f" (goal <= {goal:.0f}s: {goal / s.drain_seconds:.2f}x better than the goal)"
        peer = peers.get(size)
        if peer and peer.drain_seconds:
            ours_idle = s.server_idle_requests / s.idle_seconds
            peer_idle = peer.server_idle_requests / peer.idle_seconds
            line += (
                f"; peer {peer.drain_seconds:.1f}s -> {peer.drain_seconds / s.drain_seconds:.2f}x"
                f" faster; idle API requests/s (server count) {ours_idle:.2f} vs "
                f"{peer_idle:.2f} ({peer_idle / max(ours_idle, 1e-9):.1f}x fewer)"
            )
        print(line)
    print(f"machine load: {os.getloadavg()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,5000")
    parser.add_argument("--deployments", type=int, default=200)
    parser.add_argument("--idle", type=float, default=300)
    parser.add_argument(
        "--settle",
        type=float,
        default=900,
        help="at most this long for every run to name its quota refusal before idle",
    )
    parser.add_argument("--peer-ref", default=DEFAULT_PEER_REF, help="'' to skip the peer")
    parser.add_argument(
        "--peer-sizes",
        default="1000",
        help="the sizes the peer runs too (its 5,000 takes the cluster for half an hour)",
    )
    parser.add_argument(
        "--trace-memory",
        type=int,
        default=0,
        metavar="SIZE",
        help="one more run of SIZE under tracemalloc, printing allocations by file",
    )
    args = parser.parse_args()
    kubeconfig = os.environ.get("KUBECONFIG", str(EMBEDDED_KUBECONFIG))
    install_crds(Kubectl(kubeconfig))  # a fresh cluster has none
    api = config.new_client_from_config(config_file=kubeconfig)
    peer_dir: Path | None = None
    if args.peer_ref:
        peer_dir = Path(tempfile.mkdtemp(prefix="driftloop-peer-"))
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", str(peer_dir), args.peer_ref],
            check=True,
            capture_output=True,
        )
    samples: list[Sample] = []
    try:
        peer_sizes = {int(s) for s in args.peer_sizes.split(",") if s}
        for size in (int(s) for s in args.sizes.split(",")):
            samples.append(
                run_one(api, "driftloop", None, size, args.deployments, args.idle, args.settle)
            )
            report(samples, {1000: 50.0, 5000: 250.0})
            if peer_dir is not None and size in peer_sizes:
                samples.append(
                    run_one(
                        api,
                        f"peer@{args.peer_ref}",
                        peer_dir,
                        size,
                        args.deployments,
                        args.idle,
                        args.settle,
                    )
                )
                report(samples, {1000: 50.0, 5000: 250.0})
        if args.trace_memory:
            run_one(
                api,
                "driftloop",
                None,
                args.trace_memory,
                args.deployments,
                10,
                0,
                trace_memory=True,
            )
    finally:
        if peer_dir is not None:
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "remove", "--force", str(peer_dir)],
                check=False,
                capture_output=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
