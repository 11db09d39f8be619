"""After a spec change, every condition a reconcile leaves describes the new generation.

Found by the fault suite (tests/faults/test_operator_kills.py): once a lifecycle stopped
retraining (spec.retraining.enabled: false), the Deployment kept DriftMonitoring and
Retraining of the earlier generation for good ("cooldown: 37s left"), and a spec change
without a new version (replicas) left Promoted at the old generation. kstatus readers
take a condition whose observedGeneration is behind as not yet reconciled.
"""

from __future__ import annotations

from typing import Any

from driftloop.fake import FakeKube

from .deploy_harness import PREDICTOR, conditions_of, deployment_status, edit_spec, run, serve
from .harness import Prometheus, deployment, model_version, roll_out, seeded

Obj = dict[str, Any]

RETRAINING = {
    "prometheus": {"address": "http://prometheus.monitoring:9090"},
    "template": {"datasetRef": {"name": "iris"}, "estimator": {"type": "RandomForestClassifier"}},
}


def _stale(status: Obj, generation: int) -> dict[str, int]:
    return {
        c["type"]: c.get("observedGeneration")
        for c in status.get("conditions") or []
        if c.get("observedGeneration") != generation
    }


def _serving() -> FakeKube:
    kube = seeded(deployment(), model_version(1))
    serve(kube)
    return kube


def test_turning_retraining_off_leaves_no_drift_conditions_of_an_earlier_generation() -> None:
    kube = _serving()
    edit_spec(retraining=RETRAINING)(kube)
    run(kube, prometheus=Prometheus(0.0))
    assert "DriftMonitoring" in conditions_of(deployment_status(kube))

    edit_spec(retraining={**RETRAINING, "enabled": False})(kube)
    run(kube, prometheus=Prometheus(0.0))

    status = deployment_status(kube)
    assert status["observedGeneration"] == 3
    assert _stale(status, 3) == {}
    found = conditions_of(status)
    assert "DriftMonitoring" not in found
    assert "Retraining" not in found


def test_removing_retraining_drops_its_conditions() -> None:
    kube = _serving()
    edit_spec(retraining=RETRAINING)(kube)
    run(kube, prometheus=Prometheus(0.0))
    edit_spec(retraining=None)(kube)
    run(kube)
    status = deployment_status(kube)
    assert _stale(status, 3) == {}
    assert "DriftMonitoring" not in conditions_of(status)


def test_a_spec_change_without_a_new_version_restamps_every_condition() -> None:
    kube = _serving()
    edit_spec(replicas=2)(kube)
    run(kube)
    roll_out(kube, PREDICTOR, 2)
    run(kube)
    status = deployment_status(kube)
    assert conditions_of(status)["Ready"] == ("True", "Serving")
    assert conditions_of(status)["Promoted"] == ("True", "RolledOut")
    assert _stale(status, 2) == {}
