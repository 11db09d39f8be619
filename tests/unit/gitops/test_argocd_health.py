"""The Argo CD health checks in docs/gitops, run with a real Lua (lupa) on captured objects.

Each kind's directory follows Argo CD's resource_customizations layout
(``driftloop.dev/<Kind>/health.lua`` + ``health_test.yaml`` + ``testdata/``), so the same
cases would pass upstream. All four ``health.lua`` files are copies of
``docs/gitops/argocd-health/health.lua``, and ``docs/gitops/argocd-cm.yaml`` embeds it;
``make generate`` (:mod:`driftloop.codegen.argocd`) writes both after an edit, and
``make verify`` fails while they are stale.

``testdata/`` holds objects the operator produced on a real cluster, captured by the
cluster and e2e tests (:mod:`driftloop_testkit.argocd`, ``make argocd-fixtures``), with
the health Argo CD gave each in ``health_test.yaml``; these tests replay them.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftloop import api
from driftloop.reconcilers._outcome import STALLED_REASONS
from driftloop_testkit.argocd import GROUP, HEALTH, KINDS, SCRIPT, run_health

ARGOCD_CM = HEALTH.parent / "argocd-cm.yaml"
ARGO_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}
STATUS_MODELS = {
    "Dataset": api.DatasetStatus,
    "TrainingRun": api.TrainingRunStatus,
    "ModelVersion": api.ModelVersionStatus,
    "Deployment": api.DeploymentStatus,
}
#: What real objects of each kind can be: a ModelVersion is Ready once it is registered.
OUTCOMES = {
    "Dataset": {"Healthy", "Progressing", "Degraded"},
    "TrainingRun": {"Healthy", "Progressing", "Degraded"},
    "ModelVersion": {"Healthy", "Progressing"},
    "Deployment": {"Healthy", "Progressing", "Degraded"},
}


def _index(kind: str) -> list[dict[str, Any]]:
    tests: list[dict[str, Any]] = yaml.safe_load(
        (HEALTH / GROUP / kind / "health_test.yaml").read_text()
    )["tests"]
    return tests


def _fixture(kind: str, case: dict[str, Any]) -> dict[str, Any]:
    obj: dict[str, Any] = yaml.safe_load((HEALTH / GROUP / kind / case["inputPath"]).read_text())
    return obj


def cases(*, with_status: bool = False) -> list[Any]:
    return [
        pytest.param(kind, case, id=f"{kind}-{Path(case['inputPath']).stem}")
        for kind in KINDS
        for case in _index(kind)
        if not with_status or "observedGeneration" in (_fixture(kind, case).get("status") or {})
    ]


@pytest.mark.parametrize(("kind", "case"), cases())
def test_health(kind: str, case: dict[str, Any]) -> None:
    obj = _fixture(kind, case)
    assert obj["kind"] == kind
    assert obj["apiVersion"] == f"{GROUP}/v1alpha1"
    hs = run_health((HEALTH / GROUP / kind / "health.lua").read_text(), obj)
    assert hs["status"] in ARGO_STATUSES
    assert hs == case["healthStatus"]


@pytest.mark.parametrize(("kind", "case"), cases())
def test_fixtures_are_valid_objects_of_the_kind(kind: str, case: dict[str, Any]) -> None:
    """Every captured status fits the CRD: no field or shape the operator cannot write."""
    obj = _fixture(kind, case)
    if "status" in obj:
        STATUS_MODELS[kind].model_validate(obj["status"])
    assert set(obj["metadata"]) <= {"name", "namespace", "generation"}


@pytest.mark.parametrize(("kind", "case"), cases(with_status=True))
def test_a_newer_generation_waits_for_the_operator(kind: str, case: dict[str, Any]) -> None:
    """The same object after a spec change the operator has not seen yet (kstatus InProgress)."""
    obj = copy.deepcopy(_fixture(kind, case))
    obj["metadata"]["generation"] = obj["status"]["observedGeneration"] + 1
    hs = run_health(SCRIPT.read_text(), obj)
    generation = obj["metadata"]["generation"]
    assert hs == {
        "status": "Progressing",
        "message": f"Waiting for the operator to observe generation {generation}",
    }


@pytest.mark.parametrize("kind", KINDS)
def test_every_outcome_is_covered(kind: str) -> None:
    assert {case["healthStatus"]["status"] for case in _index(kind)} == OUTCOMES[kind]


def test_terminal_reasons_are_the_operators() -> None:
    """The script's fallback list is the operator's STALLED_REASONS (plus the Failed suffix)."""
    table = re.search(r"local terminal = \{(.*?)\}", SCRIPT.read_text(), re.S)
    assert table is not None
    assert set(re.findall(r"(\w+) = true", table.group(1))) == set(STALLED_REASONS)


@pytest.mark.parametrize("kind", KINDS)
def test_kind_scripts_are_copies(kind: str) -> None:
    copy_ = HEALTH / GROUP / kind / "health.lua"
    assert copy_.read_text() == SCRIPT.read_text(), "run `make generate`"


def test_argocd_cm_embeds_the_script() -> None:
    data = yaml.safe_load(ARGOCD_CM.read_text())["data"]
    assert set(data) == {f"resource.customizations.health.{GROUP}_{kind}" for kind in KINDS}
    for script in data.values():
        assert script == SCRIPT.read_text()


def test_argocd_cm_scripts_run() -> None:
    """The embedded scripts are the real thing: the YAML block scalar kept them intact."""
    data = yaml.safe_load(ARGOCD_CM.read_text())["data"]
    obj = {"kind": "Dataset", "metadata": {"generation": 1}, "status": {"phase": "Failed"}}
    for script in data.values():
        assert run_health(script, obj)["status"] == "Degraded"


def _stuck(reason: str, mirror: str) -> dict[str, Any]:
    """A TrainingRun whose pod cannot run, as the operator reports it (no fixture yet)."""
    conditions = [
        {"type": "Ready", "status": "False", "reason": reason, "message": "pod x: ..."},
        {"type": mirror, "status": "True", "reason": reason, "message": "pod x: ..."},
    ]
    return {
        "kind": "TrainingRun",
        "metadata": {"generation": 1},
        "status": {"observedGeneration": 1, "phase": "Running", "conditions": conditions},
    }


@pytest.mark.parametrize(
    ("reason", "mirror", "health"),
    [
        ("ImagePullFailed", "Reconciling", "Progressing"),
        ("PodCreationFailed", "Reconciling", "Progressing"),
        ("PodUnschedulable", "Reconciling", "Progressing"),
        ("InvalidImage", "Stalled", "Degraded"),
    ],
)
def test_a_pod_that_cannot_run_yet_is_progressing(reason: str, mirror: str, health: str) -> None:
    """A waiting reason ending in "Failed" is not terminal: the operator mirrors it in
    Reconciling; only a malformed image reference needs a spec change."""
    hs = run_health(SCRIPT.read_text(), _stuck(reason, mirror))
    assert hs == {"status": health, "message": f"{reason}: pod x: ..."}
