"""Shadow promotion on the real cluster with a real Prometheus.

Version 1 serves with ``strategy: shadow``; a requested retraining registers version 2,
which runs as ``iris-shadow`` and receives a mirrored copy of the live requests.  The
callers' answers are those version 1 gave before any shadow existed; the candidate
answers the same requests (its own request counter); the serving pods export the
agreement, Prometheus sums it, and the operator promotes version 2 on it.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import pytest
import requests

import driftloop_contract as contract
from driftloop import shadowing
from driftloop_testkit.cluster import Kubectl, wait_for
from driftloop_testkit.data import drift_loop_deployment, iris_csv
from driftloop_testkit.driftloop import (
    OperatorProcess,
    condition,
    get_cr,
    ready_predictor_url,
    wait_cr,
)
from driftloop_testkit.scenarios import first_version, is_serving, serve
from driftloop_testkit.traffic import prometheus_query, send

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]

BATCHES = 40
#: drift_loop_deployment's promotion (accuracy within 0.15) with the shadow strategy.
PROMOTION = {
    "metric": "accuracy",
    "tolerance": 0.15,
    "rolloutDeadline": "3m",
    "strategy": "shadow",
    "shadow": {"window": "45s", "minRows": 100, "minAgreement": 0.9},
}


def _counter(url: str, name: str, **labels: str) -> float:
    """Sum of a counter's samples with ``labels`` on one pod's /metrics."""
    text = requests.get(url, timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _metrics_url(infer_url: str) -> str:
    return infer_url.split("/v2/")[0] + contract.PATH_METRICS


def test_shadow_sees_live_traffic_and_is_promoted_on_agreement(
    operator: OperatorProcess,
    prometheus: str,
    custom: Any,
    kubectl: Kubectl,
    namespace: str,
    stage: Any,
) -> None:
    stage("data/iris.csv", iris_csv())
    first_version(custom, namespace)
    manifest = drift_loop_deployment(prometheus=prometheus, enabled=False)
    manifest["spec"]["promotion"] = PROMOTION
    serve(custom, namespace, manifest)
    url = ready_predictor_url(kubectl, namespace, "iris", 1)
    before = send(url, batches=5)  # answers before any shadow exists

    # Version 2: a retraining the user asks for (same data, passes the policy).
    kubectl(
        "annotate",
        "deployments.driftloop.dev",
        "iris",
        "-n",
        namespace,
        "driftloop.dev/retrain-request=shadow-e2e",
    )
    shadowing_v2 = wait_cr(
        custom,
        namespace,
        "Deployment",
        "iris",
        lambda d: (d["status"].get("shadow") or {}).get("version") == 2,
        timeout=420,
        what="version 2 shadowing",
    )
    assert shadowing_v2["status"]["servingVersion"] == 1
    shadow_url = ready_predictor_url(kubectl, namespace, "iris", 2)
    # The serving pods reach the shadow through its Service: wait until a copy lands.
    wait_for(
        lambda: (
            send(url, batches=1)
            and _counter(_metrics_url(shadow_url), contract.METRIC_REQUESTS, code="200") > 0
        ),
        timeout=60,
        what="a first mirrored request at the shadow",
    )
    seen_before = _counter(_metrics_url(shadow_url), contract.METRIC_REQUESTS, code="200")
    outcomes_before = {
        outcome: _counter(_metrics_url(url), contract.METRIC_SHADOW_REQUESTS, outcome=outcome)
        for outcome in ("mirrored", "dropped", "failed")
    }

    # Live traffic: answered by version 1 exactly as before the shadow existed.
    answers = send(url, batches=BATCHES)
    assert {a["model_version"] for a in answers} == {"1"}
    for old, new in zip(before, answers[: len(before)], strict=True):
        assert old["outputs"][0]["data"] == new["outputs"][0]["data"]

    # The candidate answered the same requests: every copy the serving pod sent.
    def copies() -> dict[str, float]:
        counted = {
            outcome: _counter(_metrics_url(url), contract.METRIC_SHADOW_REQUESTS, outcome=outcome)
            - before_outcome
            for outcome, before_outcome in outcomes_before.items()
        }
        seen = _counter(_metrics_url(shadow_url), contract.METRIC_REQUESTS, code="200")
        return {**counted, "seen": seen - seen_before}

    # Each request's copy ends mirrored, dropped or failed: wait until all are accounted.
    wait_for(
        lambda: sum(v for k, v in copies().items() if k != "seen") >= BATCHES,
        timeout=60,
        what="every copy sent",
    )
    counted = copies()
    assert counted["mirrored"] == counted["seen"], counted
    # A copy fails only on a timeout or an unreachable shadow; the queue never fills here.
    assert counted["dropped"] == 0, counted
    assert counted["failed"] <= BATCHES / 4, counted

    # Agreement is exported and summed by Prometheus.
    query = shadowing.agreement_query(namespace, "iris", 2, "5m")
    result = wait_for(
        lambda: prometheus_query(prometheus, query), timeout=60, what="agreement in Prometheus"
    )
    assert float(result[0]["value"][1]) >= 0.9

    # ... and on it the operator promotes version 2.  Live traffic goes on meanwhile, as
    # a real one would (on a shared cluster the window may restart when another branch's
    # CRD briefly hid status.shadow: a burst sent once could fall out of it).
    stop = threading.Event()

    def live() -> None:
        while not stop.wait(0.5):
            with contextlib.suppress(Exception):
                send(url, batches=1)

    threading.Thread(target=live, daemon=True).start()
    try:
        promoted = wait_cr(custom, namespace, "Deployment", "iris", is_serving(2), timeout=480)
    finally:
        stop.set()
    assert promoted["status"]["previousVersion"] == 1
    assert "shadow" not in promoted["status"]
    assert condition(promoted, "Promoted")["reason"] == "RolledOut"
    wait_for(
        lambda: (
            kubectl("get", "deployment", "iris-shadow", "-n", namespace, check=False).returncode
            != 0
        ),
        timeout=60,
        what="the shadow Deployment deleted",
    )
    events = kubectl.json(
        "get", "events", "-n", namespace, "--field-selector", "involvedObject.name=iris"
    )
    reasons = {e["reason"] for e in events["items"]}
    assert shadowing.SHADOW_AGREES in reasons, reasons
    assert get_cr(custom, namespace, "ModelVersion", "iris-v2") is not None
