#!/usr/bin/env python3
"""`make demo`: the whole driftloop story on the embedded cluster, narrated.

data -> train -> serve -> traffic without drift -> traffic with drift -> Prometheus
sees it -> the operator retrains -> the new version passes the policy -> a canary step
(half the pods, the candidate's live error rate checked in Prometheus) -> promoted.

Run through `make demo` (it brings up the cluster, images and Prometheus first).
Set KEEP=1 to leave the demo namespace behind for poking around.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from kubernetes import client, config

from driftloop_testkit.cluster import EMBEDDED_KUBECONFIG, REPO, VERSIONS, Kubectl, wait_for
from driftloop_testkit.data import drift_loop_deployment, iris_csv
from driftloop_testkit.driftloop import (
    GROUP,
    VERSION,
    OperatorProcess,
    create_artifact_store,
    delete_artifact_store,
    delete_crs,
    get_cr,
    ready_predictor_url,
    stage_file,
)
from driftloop_testkit.helm import CHART, helm, values_file
from driftloop_testkit.scenarios import approved_version, ready_dataset, serve, trained
from driftloop_testkit.traffic import predictor_service_url, scraped, send, send_spread

NAMESPACE = os.environ.get("DEMO_NAMESPACE", "driftloop-demo")
THRESHOLD = 0.25
#: The candidate's share of failed requests while it takes half the pods (the canary's
#: analysis; ${...} are filled in by the operator).
CANDIDATE_ERROR_RATE = (
    '(sum(rate(driftloop_inference_requests_total{namespace="${namespace}",'
    'deployment="${deployment}",version="${version}",code=~"5.."}[40s])) or vector(0)) / '
    'sum(rate(driftloop_inference_requests_total{namespace="${namespace}",'
    'deployment="${deployment}",version="${version}"}[40s]))'
)
STARTED = time.monotonic()
MILESTONES: list[tuple[str, float, str]] = []


def say(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.1f}s] {message}", flush=True)


def milestone(step: str, detail: str) -> None:
    MILESTONES.append((step, time.monotonic() - STARTED, detail))
    say(f"✔ {step}: {detail}")


def status_of(custom: Any, kind: str, name: str) -> dict[str, Any]:
    return (get_cr(custom, NAMESPACE, kind, name) or {}).get("status") or {}


def wait_status(
    custom: Any, kind: str, name: str, check: Any, what: str, timeout: float = 600
) -> dict[str, Any]:
    return wait_for(
        lambda: (s := status_of(custom, kind, name)) and check(s) and s,  # type: ignore[no-any-return]
        timeout=timeout,
        interval=1,
        what=what,
    )


def main() -> int:
    kubeconfig = os.environ.get("KUBECONFIG", str(EMBEDDED_KUBECONFIG))
    prometheus = os.environ.get("DEMO_PROMETHEUS", "http://127.0.0.1:19090")
    image = VERSIONS["RUNTIME_IMAGE"]
    api = config.new_client_from_config(config_file=kubeconfig)
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    kubectl = Kubectl(kubeconfig)

    say(f"fresh namespace {NAMESPACE}")
    kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true", timeout=300)
    delete_artifact_store(api, NAMESPACE, f"{NAMESPACE}-artifacts")
    core.create_namespace(
        {
            "metadata": {
                "name": NAMESPACE,
                "labels": {"pod-security.kubernetes.io/enforce": "restricted"},
            }
        }
    )
    wait_for(lambda: core.read_namespaced_service_account("default", NAMESPACE), timeout=60)
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    pv = create_artifact_store(api, NAMESPACE)

    stop = start_operator(api, kubeconfig, kubectl, prometheus, image)
    try:
        run_story(api, custom, kubectl, image, prometheus)
    finally:
        if not os.environ.get("KEEP"):
            # While the operator runs, so it can lift its finalizers.
            delete_crs(kubectl, NAMESPACE)
            stop()
            kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)
            delete_artifact_store(api, NAMESPACE, pv)
    print_summary()
    return 0


def start_operator(
    api: Any, kubeconfig: str, kubectl: Kubectl, prometheus: str, image: str
) -> Callable[[], None]:
    """The operator in-cluster from the chart (default), or DEMO_OPERATOR=local: a subprocess."""
    if os.environ.get("DEMO_OPERATOR", "helm") == "local":
        say("starting the operator (python -m driftloop, watching the demo namespace)")
        operator = OperatorProcess(
            kubeconfig, NAMESPACE, image, REPO, log_name=".demo-operator.log"
        )
        operator.start(DRIFTLOOP_PROMETHEUS_URL=prometheus)
        return operator.stop

    # Pods reach the host's Prometheus through the node's address on the pod bridge.
    node = client.CoreV1Api(api).list_node().items[0]
    node_ip = next(a.address for a in node.status.addresses if a.type == "InternalIP")
    port = prometheus.rsplit(":", 1)[-1]
    values = {
        "crds": {"enabled": False},  # applied from crds/ above, as a GitOps repo would
        "image": {"repository": "driftloop/operator", "tag": "dev", "pullPolicy": "IfNotPresent"},
        "runtime": {"image": {"repository": "driftloop/runtime", "tag": "dev"}},
        "watchNamespaces": [NAMESPACE],
        "artifacts": {"pvc": {"create": False}},
        "prometheus": {"url": f"http://{node_ip}:{port}"},
        "logFormat": "plain",
    }
    say(
        f"helm install driftloop (operator in-cluster, watching {NAMESPACE}, "
        f"Prometheus at {values['prometheus']['url']})"
    )  # type: ignore[index]
    with tempfile.TemporaryDirectory() as tmp:
        helm(
            "upgrade",
            "--install",
            "driftloop",
            str(CHART),
            "--namespace",
            "driftloop-system",
            "--create-namespace",
            "--wait",
            "--timeout",
            "3m",
            "--kubeconfig",
            kubeconfig,
            "--values",
            str(values_file(values, Path(tmp))),
        )
    milestone("install", "operator running under the chart's ServiceAccount")

    def stop_helm() -> None:
        helm(
            "uninstall",
            "driftloop",
            "--namespace",
            "driftloop-system",
            "--wait",
            "--kubeconfig",
            kubeconfig,
        )

    return stop_helm


def run_story(api: Any, custom: Any, kubectl: Kubectl, image: str, prometheus: str) -> None:
    say("staging iris.csv (150 rows) on the artifact volume")
    stage_file(api, NAMESPACE, image, "data/iris.csv", iris_csv())
    ds = ready_dataset(custom, NAMESPACE, timeout=600)["status"]
    milestone("data", f"Dataset iris validated: {ds['rows']} rows, {ds['version'][:19]}…")

    say("TrainingRun iris-1 → batch/v1 Job running the runtime image")
    run = trained(custom, NAMESPACE)["status"]
    approved_version(custom, NAMESPACE)
    milestone(
        "train",
        f"{run.get('modelVersion')} registered, accuracy {run['metrics'].get('accuracy', 0):.3f}",
    )

    # The Prometheus address is the operator's own setting (DEMO_PROMETHEUS).
    deployment = drift_loop_deployment(
        channel="latestApproved",
        rollout_deadline="3m",
        triggers=[{"name": "drift", "threshold": THRESHOLD, "for": "6s"}],
    )
    # A new version first takes half the pods for 20 s of live traffic; its error rate
    # must stay under 5% (one replica: one candidate pod beside the serving one).
    deployment["spec"]["promotion"].update(
        strategy="canary",
        steps=[{"weight": 50, "pause": "20s"}],
        analysis={
            "metrics": [
                {
                    "name": "error-rate",
                    "query": CANDIDATE_ERROR_RATE,
                    "operator": "<",
                    "threshold": 0.05,
                }
            ],
            "interval": "5s",
        },
    )
    serve(custom, NAMESPACE, deployment, timeout=600)
    url = ready_predictor_url(kubectl, NAMESPACE, "iris", 1, timeout=180)
    milestone("serve", f"Deployment iris serving version 1 at {url}")
    # Rows served before Prometheus's first scrape of the pod are not in its counters'
    # increase(): wait for that scrape before the traffic that should be counted.
    scraped(prometheus, NAMESPACE, "iris")

    say("sending traffic that looks like the training data")
    send(url, batches=60)
    reading = wait_status(
        custom,
        "Deployment",
        "iris",
        lambda s: any(d.get("value") is not None for d in s.get("drift", [])),
        "first drift reading",
    )["drift"][0]
    milestone("no drift", f"PSI {reading['value']:.3f} < threshold {THRESHOLD}: nothing to do")

    say("the world shifts: new data lands, live inputs move by +2.5 on every feature")
    stage_file(api, NAMESPACE, image, "data/iris.csv", iris_csv(shift=2.5, seed=1))
    last_value = None
    deadline = time.monotonic() + 300
    runs: list[Any] = []
    while not runs and time.monotonic() < deadline:
        send(url, batches=10, shift=2.5)
        drift = (status_of(custom, "Deployment", "iris").get("drift") or [{}])[0]
        if drift.get("value") is not None and drift.get("value") != last_value:
            last_value = drift["value"]
            firing = (
                f", over the threshold since {drift['firingSince']}"
                if drift.get("firingSince")
                else ""
            )
            say(f"  Prometheus: max PSI = {last_value:.3f}{firing}")
        runs = custom.list_namespaced_custom_object(
            GROUP,
            VERSION,
            NAMESPACE,
            "trainingruns",
            label_selector="driftloop.dev/deployment=iris",
        )["items"]
    if not runs:
        raise SystemExit("drift never started a retraining run; see .demo-operator.log")
    name = runs[0]["metadata"]["name"]
    milestone("drift → retrain", f"TrainingRun {name} created by the operator")

    run = wait_status(
        custom,
        "TrainingRun",
        name,
        lambda s: s.get("phase") in ("Succeeded", "Failed"),
        "retraining",
    )
    milestone(
        "retrained", f"{run.get('modelVersion')} accuracy {run['metrics'].get('accuracy', 0):.3f}"
    )
    # The canary: live traffic through the Service reaches both versions' pods.
    service = predictor_service_url(kubectl, NAMESPACE, "iris")
    shown: set[str] = set()
    deadline = time.monotonic() + 600
    status = status_of(custom, "Deployment", "iris")
    while status.get("servingVersion") != 2:
        if time.monotonic() > deadline:
            raise SystemExit("version 2 was never promoted; see .demo-operator.log")
        with contextlib.suppress(requests.RequestException):  # pods come and go
            send_spread(service, batches=4, shift=2.5)
        canary = status.get("canary") or {}
        for reading in canary.get("readings", []):
            line = (
                f"canary step {canary['step'] + 1}: {canary['weight']}% of the pods run "
                f"version {canary['version']}; {reading['name']} = {reading['value']:.3f} "
                f"{reading['operator']} {reading['threshold']}"
            )
            if reading.get("passed") and "canary" not in shown:
                shown.add("canary")
                milestone("canary", line)
        time.sleep(1)
        status = status_of(custom, "Deployment", "iris")
    new_url = ready_predictor_url(kubectl, NAMESPACE, "iris", 2, timeout=180)
    answers = send(new_url, batches=3, shift=2.5)
    milestone(
        "promote",
        f"serving version {status['servingVersion']} (previous {status['previousVersion']}); "
        f"responses say model_version={answers[-1]['model_version']}",
    )


def print_summary() -> None:
    print("\n  step              at       what")
    print("  ----------------  -------  " + "-" * 60)
    for step, at, detail in MILESTONES:
        print(f"  {step:<16}  {at:6.1f}s  {detail}")
    print()


if __name__ == "__main__":
    raise SystemExit(main())
