"""The Argo CD health checks in docs/gitops, run on sample objects with a real Lua (lupa).

Each kind's directory follows Argo CD's resource_customizations layout
(``driftloop.dev/<Kind>/health.lua`` + ``health_test.yaml`` + ``testdata/``), so the same
cases would pass upstream. All four ``health.lua`` files are copies of
``docs/gitops/argocd-health/health.lua``, and ``docs/gitops/argocd-cm.yaml`` embeds it;
``make generate`` (:mod:`driftloop.codegen.argocd`) writes both after an edit, and
``make verify`` fails while they are stale. ``health_test.yaml`` and ``testdata/`` are data,
not generated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
GITOPS = REPO / "docs" / "gitops"
HEALTH = GITOPS / "argocd-health"
SCRIPT = HEALTH / "health.lua"
ARGOCD_CM = GITOPS / "argocd-cm.yaml"
GROUP = "driftloop.dev"
KINDS = ("Dataset", "TrainingRun", "ModelVersion", "Deployment")
ARGO_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}


# --------------------------------------------------------------------------- running Lua


def run_health(script: str, obj: dict[str, Any]) -> dict[str, Any]:
    """Run a health.lua as Argo CD does: ``obj`` is a global table, the script returns hs.

    Lua 5.1, the language of gopher-lua, which Argo CD embeds.
    """
    lua51 = pytest.importorskip("lupa.lua51", reason="lupa is in the dev extras")
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(script)
    return dict(result.items())


def cases() -> list[Any]:
    out = []
    for kind in KINDS:
        spec = yaml.safe_load((HEALTH / GROUP / kind / "health_test.yaml").read_text())
        for case in spec["tests"]:
            out.append(pytest.param(kind, case, id=f"{kind}-{Path(case['inputPath']).stem}"))
    return out


@pytest.mark.parametrize(("kind", "case"), cases())
def test_health(kind: str, case: dict[str, Any]) -> None:
    directory = HEALTH / GROUP / kind
    obj = yaml.safe_load((directory / case["inputPath"]).read_text())
    assert obj["kind"] == kind
    assert obj["apiVersion"] == f"{GROUP}/v1alpha1"
    hs = run_health((directory / "health.lua").read_text(), obj)
    assert hs["status"] in ARGO_STATUSES
    assert hs == case["healthStatus"]


@pytest.mark.parametrize("kind", KINDS)
def test_every_outcome_is_covered(kind: str) -> None:
    spec = yaml.safe_load((HEALTH / GROUP / kind / "health_test.yaml").read_text())
    statuses = {case["healthStatus"]["status"] for case in spec["tests"]}
    assert {"Healthy", "Progressing", "Degraded"} <= statuses


@pytest.mark.parametrize("kind", KINDS)
def test_kind_scripts_are_copies(kind: str) -> None:
    copy = HEALTH / GROUP / kind / "health.lua"
    assert copy.read_text() == SCRIPT.read_text(), "run `make generate`"


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
