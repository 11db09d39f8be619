"""Several serving replicas behind their Service: drift and feedback for the whole Deployment.

Traffic goes through the predictor's Service (its ClusterIP, a new connection per
request, so kube-proxy spreads it over the pods).  The default trigger's query pools
the per-bin row counters of every pod (docs/drift.md, "Several replicas").
"""

from __future__ import annotations

import contextlib
import threading
import time
from datetime import datetime
from typing import Any

import pytest
import requests

import driftloop_contract as contract
from driftloop import retraining
from driftloop_testkit.cluster import Kubectl, wait_for
from driftloop_testkit.data import (
    deployment_manifest,
    drift_loop_deployment,
    infer_request,
    iris_csv,
)
from driftloop_testkit.driftloop import GROUP, VERSION, OperatorProcess, get_cr, wait_cr
from driftloop_testkit.scenarios import first_version, runs_of, serve
from driftloop_testkit.traffic import (
    predictor_service_url,
    prometheus_query,
    rows,
    scraped,
    send_spread,
)

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]

THRESHOLD = 0.25
#: The iris classes as iris_csv() labels them.
SPECIES = ["setosa", "versicolor", "virginica"]


def replicated(name: str, replicas: int, prometheus: str, **retraining: Any) -> dict[str, Any]:
    manifest = drift_loop_deployment(
        name,
        prometheus=prometheus,
        **{"triggers": [{"name": "drift", "threshold": THRESHOLD, "for": "6s"}], **retraining},
    )
    manifest["spec"]["replicas"] = replicas
    return manifest


def all_ready(replicas: int) -> Any:
    return lambda o: (o.get("status") or {}).get("readyReplicas") == replicas


def grpc_answers_like_rest(url: str) -> None:
    """The Service's gRPC port answers a stock client (tritonclient) as REST does."""
    import numpy as np
    import tritonclient.grpc as grpcclient

    batch = rows(8, seed=5)
    rest = requests.post(url, json=infer_request(batch), timeout=10).json()
    host = url.split("//")[1].split(":")[0]
    for _ in range(3):  # a new channel each: kube-proxy may pick another pod
        client = grpcclient.InferenceServerClient(f"{host}:{contract.GRPC_PORT}")
        assert client.is_model_ready("iris")
        tensor = grpcclient.InferInput("input-0", [8, 4], "FP64")
        tensor.set_data_from_numpy(np.asarray(batch, dtype=np.float64))
        answer = client.infer("iris", [tensor]).as_numpy("predict")
        assert [v.decode() for v in answer] == rest["outputs"][0]["data"]
        client.close()


def _time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_drift_is_pooled_over_three_replicas(
    operator: OperatorProcess,
    prometheus: str,
    custom: Any,
    kubectl: Kubectl,
    namespace: str,
    stage: Any,
) -> None:
    stage("data/iris.csv", iris_csv())
    first_version(custom, namespace)
    # the Deployment under test, and a one-replica peer fed the same stream
    serve(custom, namespace, replicated("iris", 3, prometheus))
    serve(custom, namespace, replicated("solo", 1, prometheus))
    wait_cr(custom, namespace, "Deployment", "iris", all_ready(3), timeout=300)
    wait_cr(custom, namespace, "Deployment", "solo", all_ready(1), timeout=300)
    urls = {name: predictor_service_url(kubectl, namespace, name) for name in ("iris", "solo")}
    scraped(prometheus, namespace, "iris", 3)
    scraped(prometheus, namespace, "solo", 1)

    # Traffic like the training data: low pooled drift, nothing retrains.
    for i in range(45):
        for url in urls.values():
            send_spread(url, batches=1, seed=i)
    pods = f'namespace="{namespace}",deployment="iris",version="1"'

    def counted() -> list[dict[str, Any]] | None:
        found = prometheus_query(prometheus, f"driftloop_drift_rows_total{{{pods}}} > 0")
        total = sum(float(r["value"][1]) for r in found)
        return found if len(found) == 3 and total == 45 * 16 else None

    # every row counted once, on three different pods: the Service spread the traffic
    per_pod = wait_for(counted, timeout=60, what="the three pods' row counters in Prometheus")
    assert len({r["metric"]["pod"] for r in per_pod}) == 3, per_pod
    grpc_answers_like_rest(urls["iris"])  # (after the count: its rows are traffic too)
    for name in urls:
        calm = wait_cr(
            custom,
            namespace,
            "Deployment",
            name,
            lambda o: any(d.get("value") is not None for d in o["status"].get("drift", [])),
            timeout=120,
            what=f"a drift reading of {name}",
        )
        reading = calm["status"]["drift"][0]
        assert reading["value"] < THRESHOLD, (name, reading)
    time.sleep(8)  # longer than `for`: a low reading must not fire
    assert runs_of(custom, namespace, "iris") == []

    # The inputs shift: the pooled score of the three pods crosses the threshold.
    shifted_at = time.time()
    started: dict[str, list[str]] = {}
    deadline = time.monotonic() + 240
    batch = 0
    while len(started) < 2 and time.monotonic() < deadline:
        for name, url in urls.items():
            send_spread(url, batches=1, shift=2.5, seed=1000 + batch)
            runs = runs_of(custom, namespace, name)
            if runs and name not in started:
                started[name] = runs
        batch += 1
    assert set(started) == {"iris", "solo"}, f"drift started no retraining run: {started}"
    crossed = {}
    for name in urls:
        listed = custom.list_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            "trainingruns",
            label_selector=f"driftloop.dev/deployment={name}",
        )
        (run,) = listed["items"]
        # the default trigger started it (<deployment>-<trigger>-<cooldown window>)
        assert run["metadata"]["name"].startswith(f"{name}-drift-"), run["metadata"]["name"]
        crossed[name] = _time(run["metadata"]["creationTimestamp"]) - shifted_at
    print(
        f"\nfirst drifted request -> retraining run: 3 replicas {crossed['iris']:.1f} s, "
        f"1 replica {crossed['solo']:.1f} s (same traffic, sent alternately; "
        f"{batch} drifted batches of 16 rows each)"
    )


def known_peers(base: str) -> int:
    """How many replicas the pod at ``base`` knows (itself included)."""
    r = requests.post(
        base + contract.PATH_PEERS, json={}, timeout=5, headers={"Connection": "close"}
    )
    r.raise_for_status()
    return len(r.json()["peers"])


def every_pod_knows(kubectl: Kubectl, namespace: str, deployment: str, replicas: int) -> bool:
    """Each predictor pod, asked directly, knows all ``replicas`` (gossip converged)."""
    pods = kubectl.json(
        "get",
        "pods",
        "-n",
        namespace,
        "-l",
        f"app.kubernetes.io/component=predictor,app.kubernetes.io/instance={deployment}",
    )["items"]
    ips = [p["status"].get("podIP") for p in pods if not p["metadata"].get("deletionTimestamp")]
    return len(ips) == replicas and all(
        ip and known_peers(f"http://{ip}:8080") == replicas for ip in ips
    )


def test_feedback_on_any_replica_drives_live_accuracy_and_retraining(
    operator: OperatorProcess,
    prometheus: str,
    custom: Any,
    kubectl: Kubectl,
    namespace: str,
    stage: Any,
) -> None:
    stage("data/iris.csv", iris_csv())
    first_version(custom, namespace)
    accuracy = retraining.live_score_query(namespace, "iris", "accuracy", "5m")
    serve(
        custom,
        namespace,
        replicated(
            "iris",
            3,
            prometheus,
            triggers=[
                {
                    "name": "accuracy",
                    "query": accuracy,
                    "operator": "<",
                    "threshold": 0.8,
                    "for": "6s",
                }
            ],
        ),
    )
    wait_cr(custom, namespace, "Deployment", "iris", all_ready(3), timeout=300)
    url = predictor_service_url(kubectl, namespace, "iris")
    scraped(prometheus, namespace, "iris", 3)
    # the replicas found each other through their Service (any pod answers: ask a few)
    wait_for(
        lambda: every_pod_knows(kubectl, namespace, "iris", 3),
        timeout=120,
        what="every replica knowing the three",
    )

    def predict_and_label(n: int, wrong: bool, offset: int) -> int:
        """n predictions, then their ground truth, each call on a new connection (any pod)."""
        ids = []
        for i in range(n):
            answer = send_spread(url, batches=1, batch_size=4, seed=offset + i)[0]
            ids.append((answer["id"], answer["outputs"][0]["data"]))
        for rid, preds in ids:
            labels = [SPECIES[(SPECIES.index(p) + 1) % 3] for p in preds] if wrong else preds
            r = requests.post(
                url.removesuffix("/infer") + "/feedback",
                json={"id": rid, "labels": labels},
                timeout=10,
                headers={"Connection": "close"},
            )
            assert r.status_code == 200, r.text  # never "unknown id" on another replica
        return 4 * n

    labelled = predict_and_label(30, wrong=False, offset=0)
    sel = f'namespace="{namespace}",deployment="iris"'

    def labelled_rows() -> list[dict[str, Any]] | None:
        found = prometheus_query(prometheus, f"driftloop_live_labeled_rows_total{{{sel}}}")
        return found if sum(float(r["value"][1]) for r in found) == labelled else None

    per_pod = wait_for(labelled_rows, timeout=60, what="the labelled rows in Prometheus")
    owners = [r for r in per_pod if float(r["value"][1]) > 0]
    assert len(owners) >= 2, per_pod  # predictions (and their labels) on several pods
    forwarded = prometheus_query(
        prometheus, f'sum(driftloop_feedback_total{{{sel},outcome="forwarded"}})'
    )
    assert forwarded, "no feedback_total series"
    assert float(forwarded[0]["value"][1]) > 0  # some calls went to another pod than the owner
    good = wait_cr(
        custom,
        namespace,
        "Deployment",
        "iris",
        lambda o: any(d.get("value") is not None for d in o["status"].get("drift", [])),
        timeout=120,
        what="a live accuracy reading",
    )
    assert good["status"]["drift"][0]["value"] == 1.0
    time.sleep(8)  # longer than `for`
    assert runs_of(custom, namespace, "iris") == []

    # The model goes wrong: the ground truth disagrees, accuracy falls, retraining starts.
    deadline = time.monotonic() + 240
    batch = 0
    while not runs_of(custom, namespace, "iris") and time.monotonic() < deadline:
        predict_and_label(10, wrong=True, offset=1000 + 10 * batch)
        batch += 1
    runs = runs_of(custom, namespace, "iris")
    assert runs, "low live accuracy started no retraining run"
    # started by the accuracy trigger (<deployment>-<trigger>-<cooldown window>)
    assert [r.split("-")[1] for r in runs] == ["accuracy"], runs
    reading = get_cr(custom, namespace, "Deployment", "iris")["status"]["drift"][0]  # type: ignore[index]
    assert reading["trigger"] == "accuracy"
    assert reading["value"] < 0.8, reading


def test_cpu_autoscaling_adds_pods_under_load_and_removes_them_after(
    operator: OperatorProcess,
    custom: Any,
    kubectl: Kubectl,
    namespace: str,
    stage: Any,
) -> None:
    """spec.autoscaling on the real HPA controller and metrics-server (hack/metrics-server.sh):
    load through the Service adds pods, the operator leaves the count to the HPA, and
    they go again when the load stops."""

    stage("data/iris.csv", iris_csv())
    first_version(custom, namespace)
    manifest = deployment_manifest(
        "iris",
        # An idle server uses ~15m (its flush and gossip loops): with 100m requested, idle
        # pods sit well under the target, so the HPA can come back to one.
        resources={"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m"}},
        autoscaling={
            "minReplicas": 1,
            "maxReplicas": 3,
            "targetCPUUtilization": 50,
            "scaleDownStabilizationSeconds": 0,
        },
    )
    serve(custom, namespace, manifest)
    wait_cr(custom, namespace, "Deployment", "iris", all_ready(1), timeout=300)
    url = predictor_service_url(kubectl, namespace, "iris")

    def hpa() -> dict[str, Any]:
        return kubectl.json("get", "hpa", "-n", namespace, "iris-predictor")  # type: ignore[no-any-return]

    # metrics-server's numbers reach the HPA (the aggregated metrics.k8s.io API works)
    wait_for(lambda: hpa()["status"].get("currentMetrics"), timeout=120, what="the HPA reading CPU")

    stop = threading.Event()

    def load(seed: int) -> None:
        i = 0
        while not stop.is_set():
            # a pod starting or going may refuse one: the load goes on
            with contextlib.suppress(requests.RequestException):
                send_spread(url, batches=1, batch_size=32, seed=seed * 100_000 + i)
            i += 1

    workers = [threading.Thread(target=load, args=(n,), daemon=True) for n in range(4)]
    for worker in workers:
        worker.start()
    try:
        scaled = wait_cr(
            custom,
            namespace,
            "Deployment",
            "iris",
            lambda o: (o.get("status") or {}).get("readyReplicas", 0) >= 2,
            timeout=240,
            what="the HPA adding serving pods under load",
        )
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=30)
    print(f"\nunder load: {scaled['status']['readyReplicas']} ready pods, HPA {hpa()['status']}")
    # the operator left the count to the HPA: the predictor has what the HPA asked for
    assert hpa()["status"]["desiredReplicas"] >= 2
    wait_cr(
        custom,
        namespace,
        "Deployment",
        "iris",
        lambda o: (o.get("status") or {}).get("replicas") == 1,
        timeout=240,
        what="the HPA removing the extra pods once the load stopped",
    )
