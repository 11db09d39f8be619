"""Canary promotion with live analysis, post-promotion rollback and the serving history.

Real pods, a real Prometheus scraping them.  Traffic goes through the predictor's
Service (a new connection per request, so kube-proxy spreads it over the ready pods of
both predictors), and every prediction gets its ground truth back through
``/feedback``: the analysis reads the candidate's error rate, p99 latency and live
accuracy from Prometheus.
"""

from __future__ import annotations

import collections
import time
from typing import Any

import numpy as np
import pytest
import requests

from driftloop_testkit.cluster import Kubectl, wait_for
from driftloop_testkit.data import drift_loop_deployment, infer_request, iris_csv
from driftloop_testkit.driftloop import (
    OperatorProcess,
    condition,
    get_cr,
    wait_cr,
)
from driftloop_testkit.scenarios import (
    approved_version,
    first_version,
    ready_dataset,
    serve,
    trained,
)
from driftloop_testkit.traffic import predictor_service_url

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]

#: The iris classes as iris_csv() labels them.
SPECIES = ["setosa", "versicolor", "virginica"]
SEL = 'namespace="${namespace}",deployment="${deployment}",version="${version}"'
RANGE = "40s"
CHECKS = [
    {
        "name": "error-rate",
        "query": (
            f'(sum(rate(driftloop_inference_requests_total{{{SEL},code=~"5.."}}[{RANGE}]))'
            " or vector(0))"
            f" / sum(rate(driftloop_inference_requests_total{{{SEL}}}[{RANGE}]))"
        ),
        "operator": "<",
        "threshold": 0.05,
    },
    {
        "name": "p99-latency",
        "query": (
            "histogram_quantile(0.99, sum by (le) "
            f"(rate(driftloop_inference_request_duration_seconds_bucket{{{SEL}}}[{RANGE}])))"
        ),
        "operator": "<",
        "threshold": 1.0,
    },
    {
        "name": "live-accuracy",
        "query": (
            f"sum(increase(driftloop_live_correct_rows_total{{{SEL}}}[{RANGE}]))"
            f" / sum(increase(driftloop_live_labeled_rows_total{{{SEL}}}[{RANGE}]))"
        ),
        "operator": ">=",
        "threshold": 0.8,
    },
]


def canary_deployment(
    prometheus: str, replicas: int, weights: list[int], **promotion: Any
) -> dict[str, Any]:
    manifest = drift_loop_deployment(prometheus=prometheus, enabled=False)
    manifest["spec"]["replicas"] = replicas
    manifest["spec"]["promotion"].update(
        strategy="canary",
        steps=[{"weight": w, "pause": "20s"} for w in weights],
        analysis={
            "metrics": CHECKS,
            "noDataGrace": "60s",
            "interval": "5s",
            "prometheus": {"address": prometheus},
        },
        **promotion,
    )
    return manifest


_IRIS: Any = None


def labelled(n: int, seed: int) -> tuple[list[list[float]], list[str]]:
    """``n`` iris rows (plus a little noise) and their true species."""
    global _IRIS
    if _IRIS is None:
        from sklearn.datasets import load_iris

        _IRIS = load_iris()
    rng = np.random.default_rng(seed)
    index = rng.integers(0, len(_IRIS.data), size=n)
    rows = _IRIS.data[index] + rng.normal(0, 0.05, size=(n, 4))
    return [[round(float(v), 3) for v in row] for row in rows], [
        SPECIES[int(t)] for t in _IRIS.target[index]
    ]


def predict_and_label(
    url: str, requests_: int, seed: int, *, wrong: bool = False
) -> collections.Counter[str]:
    """``requests_`` predictions of 8 rows, each followed by its ground truth (all of it
    wrong with ``wrong``), each call on a new connection; answers counted by version."""
    versions: collections.Counter[str] = collections.Counter()
    for i in range(requests_):
        rows, truth = labelled(8, seed + i)
        answer = requests.post(
            url, json=infer_request(rows), timeout=10, headers={"Connection": "close"}
        )
        answer.raise_for_status()
        body = answer.json()
        versions[str(body["model_version"])] += 1
        labels = [SPECIES[(SPECIES.index(t) + 1) % 3] for t in truth] if wrong else truth
        requests.post(
            url.removesuffix("/infer") + "/feedback",
            json={"id": body["id"], "labels": labels},
            timeout=10,
            headers={"Connection": "close"},
        )
    return versions


def rotated_iris_csv() -> str:
    """Iris with every label moved to the next species: a model that learns it well
    (its own test split agrees) is wrong about every real flower."""
    text = iris_csv()
    for i, name in enumerate(SPECIES):
        text = text.replace(f",{name}\n", f",#{i}\n")
    for i in range(3):
        text = text.replace(f",#{i}\n", f",{SPECIES[(i + 1) % 3]}\n")
    return text


def status_of(custom: Any, namespace: str) -> dict[str, Any]:
    obj = get_cr(custom, namespace, "Deployment", "iris")
    assert obj is not None
    return dict(obj.get("status") or {})


def test_a_good_canary_walks_every_step_and_is_promoted(
    operator: OperatorProcess,
    prometheus: str,
    custom: Any,
    kubectl: Kubectl,
    namespace: str,
    stage: Any,
) -> None:
    weights = [25, 50]
    manifest = canary_deployment(prometheus, 4, weights, mode="manual")
    _good_canary(custom, kubectl, namespace, stage, manifest, weights)


def _good_canary(
    custom: Any,
    kubectl: Kubectl,
    namespace: str,
    stage: Any,
    manifest: dict[str, Any],
    weights: list[int],
) -> None:
    stage("data/iris.csv", iris_csv())
    first_version(custom, namespace)
    serve(custom, namespace, manifest)
    url = predictor_service_url(kubectl, namespace, "iris")

    # Version 2, trained on the same data, waits for a person (manual mode).
    trained(custom, namespace, name="iris-2")
    approved_version(custom, namespace, "iris-v2")
    wait_cr(
        custom,
        namespace,
        "Deployment",
        "iris",
        lambda o: condition(o, "Promoted").get("reason") == "AwaitingApproval",
        timeout=120,
    )
    kubectl(
        "annotate", "-n", namespace, "modelversion", "iris-v2", "driftloop.dev/approval=approved"
    )
    approval = wait_cr(
        custom,
        namespace,
        "ModelVersion",
        "iris-v2",
        lambda o: (o.get("status") or {}).get("approvalReason") == "SetByUser",
        timeout=60,
    )
    assert approval["status"]["approvalHistory"][0]["reason"] == "SetByUser"
    events = kubectl.json(
        "get", "events", "-n", namespace, "--field-selector", "involvedObject.name=iris-v2"
    )
    assert any(e["reason"] == "ApprovalChanged" for e in events["items"]), events

    # Each step: traffic and ground truth through the Service; the split is measured
    # while the step's pods are all ready.
    served: dict[int, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    seed = 0
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        before = status_of(custom, namespace)
        if before.get("servingVersion") == 2:
            break
        canary = before.get("canary") or {}
        answers = predict_and_label(url, 20, seed)
        seed += 20
        after = status_of(custom, namespace).get("canary") or {}
        if (
            canary.get("stepReady")
            and not canary.get("promoting")
            and (after.get("step"), after.get("stepReady")) == (canary["step"], canary["stepReady"])
        ):
            served[int(canary["step"])] += answers
    else:
        pytest.fail(f"not promoted: {status_of(custom, namespace)}")

    split = {step: counts["2"] / sum(counts.values()) for step, counts in sorted(served.items())}
    print(f"\ncanary traffic share per step (weights {weights}): {split} from {dict(served)}")
    assert sorted(served) == [0, 1], served  # every step was measured
    for step, weight in enumerate(weights):
        assert sum(served[step].values()) >= 40, served
        assert abs(split[step] - weight / 100) <= 0.15, (step, split)

    promoted = status_of(custom, namespace)
    assert promoted["history"][0]["reason"] == "ManualApproval"
    assert (promoted["history"][0]["version"], promoted["history"][0]["from"]) == (2, 1)
    wait_for(
        lambda: (
            kubectl("get", "deployment", "-n", namespace, "iris-canary", check=False).returncode
            != 0
        ),
        timeout=60,
        what="the canary's predictor deleted",
    )

    # `kubectl get` shows the last change (a printer column)
    table = kubectl("get", "dld", "-n", namespace, "iris").stdout
    assert "LAST CHANGE" in table, table
    assert "ManualApproval" in table, table
    # Every answer from version 2 once the old pods have left the Service (a pod going
    # away keeps answering through its preStop pause).
    wait_for(
        lambda: set(predict_and_label(url, 20, seed)) == {"2"},
        timeout=60,
        what="every answer from version 2",
    )


def test_a_promoted_version_that_degrades_on_a_live_metric_rolls_back(
    operator: OperatorProcess,
    prometheus: str,
    custom: Any,
    kubectl: Kubectl,
    namespace: str,
    stage: Any,
) -> None:
    manifest = canary_deployment(prometheus, 1, [50], postPromotion={"window": "3m"})
    # A plain rolling update; the post-promotion window checks the live accuracy only.
    manifest["spec"]["promotion"].update(strategy="rolling")
    manifest["spec"]["promotion"].pop("steps")
    manifest["spec"]["promotion"]["analysis"]["metrics"] = CHECKS[2:]
    _rollback(custom, kubectl, namespace, stage, manifest)


def _rollback(
    custom: Any, kubectl: Kubectl, namespace: str, stage: Any, manifest: dict[str, Any]
) -> None:
    stage("data/iris.csv", iris_csv())
    first_version(custom, namespace)
    serve(custom, namespace, manifest)
    url = predictor_service_url(kubectl, namespace, "iris")
    trained(custom, namespace, name="iris-2")
    promoted = wait_cr(
        custom,
        namespace,
        "Deployment",
        "iris",
        lambda o: (o.get("status") or {}).get("servingVersion") == 2,
        timeout=300,
    )
    assert promoted["status"]["history"][0]["reason"] == "Promoted"
    assert promoted["status"]["postPromotion"]["previousVersion"] == 1

    # The world changes after the promotion: the ground truth disagrees with version 2.
    seed = 0
    deadline = time.monotonic() + 300
    while status_of(custom, namespace).get("servingVersion") == 2:
        assert time.monotonic() < deadline, status_of(custom, namespace)
        predict_and_label(url, 10, seed, wrong=True)
        seed += 10
    back = get_cr(custom, namespace, "Deployment", "iris")
    assert back is not None
    verified = condition(back, "Verified")
    assert verified["status"] == "False", verified
    assert verified["reason"] == "AnalysisFailed", verified
    assert "check live-accuracy" in verified["message"], verified
    history = back["status"]["history"]
    assert [h["reason"] for h in history[:3]] == ["RolledBack", "Promoted", "FirstVersion"]
    assert (history[0]["version"], history[0]["from"]) == (1, 2)
    assert back["status"]["rejectedVersions"][0]["reason"] == "PostPromotionAnalysis"
    events = kubectl.json(
        "get", "events", "-n", namespace, "--field-selector", "involvedObject.name=iris"
    )
    assert any(e["reason"] == "RolledBack" for e in events["items"]), events
    # `kubectl get` shows the last change (a printer column)
    table = kubectl("get", "dld", "-n", namespace, "iris").stdout
    assert "LAST CHANGE" in table, table
    assert "RolledBack" in table, table
    wait_for(
        lambda: set(predict_and_label(url, 10, 5000)) == {"1"},
        timeout=120,
        what="every answer from version 1",
    )


def test_a_bad_canary_is_aborted_at_the_first_step_and_traffic_returns(
    operator: OperatorProcess,
    prometheus: str,
    custom: Any,
    kubectl: Kubectl,
    namespace: str,
    stage: Any,
) -> None:
    manifest = canary_deployment(prometheus, 2, [50, 100])
    _bad_canary(custom, kubectl, namespace, stage, manifest)


def _bad_canary(
    custom: Any, kubectl: Kubectl, namespace: str, stage: Any, manifest: dict[str, Any]
) -> None:
    stage("data/iris.csv", iris_csv())
    stage("data/iris-rotated.csv", rotated_iris_csv())
    first_version(custom, namespace)
    serve(custom, namespace, manifest)
    url = predictor_service_url(kubectl, namespace, "iris")

    # Version 2 learnt rotated labels: its own evaluation is fine, the world disagrees.
    ready_dataset(custom, namespace, "/artifacts/data/iris-rotated.csv", name="iris-rotated")
    trained(custom, namespace, name="iris-2", dataset="iris-rotated")
    wait_cr(
        custom,
        namespace,
        "Deployment",
        "iris",
        lambda o: (o.get("status") or {}).get("canary") is not None,
        timeout=300,
        what="the canary of version 2",
    )
    seed = 0
    deadline = time.monotonic() + 300
    while (
        condition(get_cr(custom, namespace, "Deployment", "iris") or {}, "Promoted").get("reason")
        != "CanaryAborted"
    ):
        assert time.monotonic() < deadline, status_of(custom, namespace)
        predict_and_label(url, 10, seed)
        seed += 10
    aborted = get_cr(custom, namespace, "Deployment", "iris")
    assert aborted is not None
    promoted = condition(aborted, "Promoted")
    assert promoted["message"].startswith(
        "AnalysisFailed: canary iris-v2 step 1/2: 50% (1 of 2 pods): check live-accuracy: value "
    ), promoted
    assert "is not >= 0.8" in promoted["message"], promoted
    assert aborted["status"]["servingVersion"] == 1
    assert aborted["status"]["history"][0]["reason"] == "CanaryAborted"
    events = kubectl.json(
        "get", "events", "-n", namespace, "--field-selector", "involvedObject.name=iris"
    )
    assert any(e["reason"] == "CanaryAborted" for e in events["items"]), events
    v2 = wait_cr(
        custom,
        namespace,
        "ModelVersion",
        "iris-v2",
        lambda o: (o.get("status") or {}).get("approvalReason") == "CanaryAnalysis",
    )
    assert v2["status"]["approval"] == "rejected"

    # All traffic back on version 1 once the canary's pods are gone.
    wait_for(
        lambda: set(predict_and_label(url, 10, 5000)) == {"1"},
        timeout=120,
        what="every answer from version 1",
    )
