"""Argo CD health checks (docs/gitops/argocd-health) on objects the operator really produced.

The cluster and e2e tests call :func:`check_health` at the moments a state is reached
(a Dataset validated, a Deployment rolled back...): the Lua health script runs on the live
object, and the Argo CD status must be the expected one. With
``DRIFTLOOP_CAPTURE_ARGOCD_FIXTURES=1`` (``make argocd-fixtures``) each checked object is
also written as the fixture ``driftloop.dev/<Kind>/testdata/<case>.yaml`` and its result
recorded in that kind's ``health_test.yaml``; the unit tests then replay those fixtures
without a cluster. So every fixture is an object the operator wrote, not a hand-made one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from driftloop_testkit.cluster import REPO

GROUP = "driftloop.dev"
HEALTH = REPO / "docs" / "gitops" / "argocd-health"
SCRIPT = HEALTH / "health.lua"
KINDS = ("Dataset", "TrainingRun", "ModelVersion", "Deployment")
CAPTURE_ENV = "DRIFTLOOP_CAPTURE_ARGOCD_FIXTURES"
#: Status keys whose values name this test run rather than the state (kept out of fixtures).
_NAMESPACE_PLACEHOLDER = "ml"


def run_health(script: str, obj: Mapping[str, Any]) -> dict[str, Any]:
    """Run a health.lua as Argo CD does: ``obj`` is a global table, the script returns hs.

    Lua 5.1, the language of gopher-lua, which Argo CD embeds.
    """
    from lupa import lua51  # the dev extra; imported here so the kit loads without it

    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(dict(obj), recursive=True)
    result = lua.execute(script)
    return dict(result.items())


def fixture(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object as a fixture: spec and status as the operator left them, minus run noise."""
    meta = obj.get("metadata") or {}
    kept: dict[str, Any] = {"name": meta["name"], "namespace": _NAMESPACE_PLACEHOLDER}
    if "generation" in meta:
        kept["generation"] = meta["generation"]
    out: dict[str, Any] = {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": kept}
    for part in ("spec", "status"):
        if part in obj:
            out[part] = obj[part]
    return out


def check_health(obj: Mapping[str, Any], case: str, expected: str) -> dict[str, Any]:
    """Assert Argo CD judges ``obj`` ``expected``; capture it as fixture ``case`` when asked."""
    kind = str(obj["kind"])
    health = run_health(SCRIPT.read_text(), obj)
    assert health["status"] == expected, f"{kind} {case}: Argo CD says {health}"
    if os.environ.get(CAPTURE_ENV) == "1":
        _capture(kind, case, fixture(obj), health)
    return health


def _capture(kind: str, case: str, obj: dict[str, Any], health: dict[str, Any]) -> None:
    directory = HEALTH / GROUP / kind
    path = Path("testdata") / f"{case}.yaml"
    (directory / path).parent.mkdir(parents=True, exist_ok=True)
    (directory / path).write_text(yaml.safe_dump(obj, sort_keys=False))
    index = directory / "health_test.yaml"
    tests = (yaml.safe_load(index.read_text()) if index.exists() else None) or {"tests": []}
    cases = [c for c in tests["tests"] if c["inputPath"] != str(path)]
    cases.append({"healthStatus": health, "inputPath": str(path)})
    cases.sort(key=lambda c: str(c["inputPath"]))
    index.write_text(yaml.safe_dump({"tests": cases}, sort_keys=False))
