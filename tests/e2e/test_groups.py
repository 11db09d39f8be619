"""Per-group monitoring on the cluster: a model trained on groups data counts live
predictions and feedback per group in the real Prometheus, and a trigger on one
group's live accuracy starts a retraining run while the overall accuracy stays high.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

import driftloop_contract as contract
from driftloop_testkit.cluster import Kubectl, wait_for
from driftloop_testkit.data import drift_loop_deployment, groups_csv, groups_dataset_manifest
from driftloop_testkit.driftloop import (
    OperatorProcess,
    create_cr,
    ready_predictor_url,
    wait_cr,
)
from driftloop_testkit.scenarios import approved_version, is_ready, runs_of, serve, trained
from driftloop_testkit.traffic import prometheus_query, scraped

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]


def _rows(url: str, group: str, n: int, right: bool) -> int:
    """n one-row predictions of ``group``, then their ground truth (right or wrong)."""
    flipped = {"yes": "no", "no": "yes"}
    for i in range(n):
        body = {
            "inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [[i / n, 5.0]]}],
            "parameters": {contract.PARAMETER_GROUPS: {"group": group, "age": 40}},
        }
        response = requests.post(url, json=body, timeout=10)
        assert response.status_code == 200, response.text
        answer = response.json()
        pred = answer["outputs"][0]["data"]
        labels = pred if right else [flipped[p] for p in pred]
        r = requests.post(
            url.removesuffix("/infer") + "/feedback",
            json={"id": answer["id"], "labels": labels},
            timeout=10,
        )
        assert r.status_code == 200, r.text
    return n


def test_a_trigger_on_one_groups_live_accuracy_starts_a_run(
    operator: OperatorProcess,
    prometheus: str,
    custom: Any,
    kubectl: Kubectl,
    namespace: str,
    stage: Any,
) -> None:
    stage("data/loans.csv", groups_csv(2.0, rows=2000))
    create_cr(custom, namespace, groups_dataset_manifest("loans", "/artifacts/data/loans.csv"))
    wait_cr(custom, namespace, "Dataset", "loans", is_ready, timeout=300)
    trained(custom, namespace, "loans-1", "loans", model="loans")
    approved_version(custom, namespace, "loans-v1")
    sel = f'namespace="{namespace}",deployment="loans"'
    b = f'{sel},feature="group",group="B"'
    group_b = (
        f"sum(increase({contract.METRIC_GROUP_CORRECT_ROWS}{{{b}}}[5m]))"
        f" / sum(increase({contract.METRIC_GROUP_LABELED_ROWS}{{{b}}}[5m]))"
    )
    trigger = {"name": "groupb", "query": group_b, "operator": "<", "threshold": 0.8, "for": "6s"}
    serve(
        custom,
        namespace,
        drift_loop_deployment(
            "loans", model="loans", dataset="loans", prometheus=prometheus, triggers=[trigger]
        ),
    )
    url = ready_predictor_url(kubectl, namespace, "loans", 1)
    scraped(prometheus, namespace, "loans")

    # A is always right and B always wrong: overall 40 / 48 = 0.83, B's accuracy 0.
    labelled = {"A": _rows(url, "A", 40, right=True), "B": _rows(url, "B", 8, right=False)}

    def per_group() -> dict[str, float] | None:
        found = prometheus_query(
            prometheus,
            f'sum by (group) ({contract.METRIC_GROUP_LABELED_ROWS}{{{sel},feature="group"}})',
        )
        counts = {r["metric"]["group"]: float(r["value"][1]) for r in found}
        return counts if all(counts.get(g) == n for g, n in labelled.items()) else None

    counts = wait_for(per_group, timeout=60, what="the per-group labelled rows in Prometheus")
    assert counts[contract.OTHER_GROUP] == counts[contract.MISSING_GROUP] == 0
    predicted = prometheus_query(
        prometheus,
        f'sum({contract.METRIC_GROUP_PREDICTIONS}{{{sel},feature="age",group="[30, 50)"}})',
    )
    assert float(predicted[0]["value"][1]) == 48  # the binned attribute, every row

    t0 = time.monotonic()
    runs = wait_for(
        lambda: runs_of(custom, namespace, "loans"),
        timeout=240,
        what="a run started by the group B trigger",
    )
    print(f"group B trigger started {runs} after {time.monotonic() - t0:.0f}s")
    # <deployment>-<trigger>-<cooldown window>
    assert [r.split("-")[1] for r in runs] == ["groupb"], runs
