"""Fairness gates on a real cluster: a biased model is registered and rejected with its
per-group metrics in the ModelVersion, a fair one is approved.

The data (driftloop_testkit.data.groups_csv) has a known disparity: in the biased set
group A's scores run 2 higher than group B's, so a model of the label selects A far
more often; in the fair set the groups differ by sampling noise only.
"""

from __future__ import annotations

from typing import Any

import pytest

from driftloop_testkit.cluster import Kubectl
from driftloop_testkit.data import groups_csv, groups_dataset_manifest, training_run_manifest
from driftloop_testkit.driftloop import OperatorProcess, condition, create_cr, wait_cr
from driftloop_testkit.scenarios import in_phase, is_ready

pytestmark = pytest.mark.cluster

GATES = {"fairness": {"maxDemographicParityDifference": 0.2, "minGroupSize": 30}}


def _train(custom: Any, namespace: str, name: str, dataset: str) -> dict[str, Any]:
    run = training_run_manifest(name, dataset, model=name, evaluation=GATES)
    run["spec"]["estimator"] = {"type": "LogisticRegression"}
    create_cr(custom, namespace, run)
    done = wait_cr(
        custom, namespace, "TrainingRun", name, in_phase("Succeeded", "Failed"), timeout=600
    )
    assert done["status"]["phase"] == "Succeeded", done["status"]
    return done


def _settled(obj: dict[str, Any]) -> bool:
    return (obj.get("status") or {}).get("approval") in ("approved", "rejected")


def test_a_biased_model_is_rejected_by_the_fairness_gate_and_a_fair_one_approved(
    operator: OperatorProcess, custom: Any, kubectl: Kubectl, namespace: str, stage: Any
) -> None:
    for name, gap in (("biased", 2.0), ("fair", 0.0)):
        stage(f"data/{name}.csv", groups_csv(gap, rows=4000))
        create_cr(custom, namespace, groups_dataset_manifest(name, f"/artifacts/data/{name}.csv"))
    for name in ("biased", "fair"):
        wait_cr(custom, namespace, "Dataset", name, is_ready, timeout=300)
        _train(custom, namespace, name, name)

    biased = wait_cr(custom, namespace, "ModelVersion", "biased-v1", _settled, timeout=300)
    assert biased["spec"]["gatesPassed"] is False
    assert (biased["status"]["approval"], biased["status"]["approvalReason"]) == (
        "rejected",
        "FairnessGateFailed",
    )
    message = condition(biased, "Approved")["message"]
    assert message.startswith("group: demographicParityDifference 0."), message
    assert "> max 0.2 (A 0." in message, message
    group, age = biased["spec"]["fairness"]
    assert (group["feature"], age["feature"]) == ("group", "age")
    assert {g["group"] for g in group["groups"]} == {"A", "B"}
    assert all(g["size"] >= 30 and "selectionRate" in g["metrics"] for g in group["groups"])
    assert group["disparities"]["demographicParityDifference"] > 0.4
    assert not age["failedGates"]
    # kubectl describe shows the per-group metrics and the reason.
    described = kubectl("describe", "modelversion", "biased-v1", "-n", namespace).stdout
    for text in ("Fairness", "Selection Rate", "FairnessGateFailed", "Demographic Parity"):
        assert text in described, described

    fair = wait_cr(custom, namespace, "ModelVersion", "fair-v1", _settled, timeout=300)
    assert (fair["status"]["approval"], fair["status"]["approvalReason"]) == (
        "approved",
        "GatesPassed",
    )
    assert fair["spec"]["gatesPassed"] is True
    assert fair["spec"]["fairness"][0]["disparities"]["demographicParityDifference"] < 0.2
