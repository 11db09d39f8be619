"""The generated CRDs are structural, complete and committed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftloop import api
from driftloop.codegen import crds as crdgen

ROOT = Path(__file__).parents[3]
CRDS = {k.kind: crdgen.crd_for(k) for k in api.ALL_KINDS}
#: Keywords a structural schema must not use (apiextensions validation).
FORBIDDEN = {
    "$ref",
    "$defs",
    "definitions",
    "oneOf",
    "allOf",
    "not",
    "const",
    "title",
    "additionalItems",
    "patternProperties",
    "dependencies",
    "$schema",
    "id",
}
#: Short names of built-in resources ours must not shadow.
BUILTIN_SHORT_NAMES = {
    "ds",
    "deploy",
    "po",
    "svc",
    "cm",
    "ns",
    "no",
    "pv",
    "pvc",
    "rs",
    "sts",
    "sa",
    "ep",
    "ev",
    "hpa",
    "ing",
    "netpol",
    "pdb",
    "pc",
    "sc",
    "cs",
    "csr",
    "crd",
    "crds",
    "limits",
    "quota",
    "rc",
    "mwc",
    "vwc",
    "cj",
}


def _nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from _nodes(sub, f"{path}.{name}")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _nodes(schema["additionalProperties"], f"{path}{{}}")
    if "items" in schema:
        yield from _nodes(schema["items"], f"{path}[]")


def _root(crd: dict[str, Any]) -> dict[str, Any]:
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("kind", CRDS)
def test_schema_is_structural(kind: str) -> None:
    for path, node in _nodes(_root(CRDS[kind])):
        where = f"{kind}{path}"
        assert not FORBIDDEN & node.keys(), f"{where}: forbidden {FORBIDDEN & node.keys()}"
        escaped = node.get("x-kubernetes-int-or-string") or node.get(
            "x-kubernetes-preserve-unknown-fields"
        )
        assert "type" in node or escaped, f"{where}: no type"
        if "anyOf" in node:
            assert node.get("x-kubernetes-int-or-string"), f"{where}: anyOf outside int-or-string"
        if node.get("additionalProperties") is not None:
            assert "properties" not in node, f"{where}: properties and additionalProperties"
        assert node.get("additionalProperties") is not False, where
        if isinstance(node.get("exclusiveMinimum"), (int, float)) and not isinstance(
            node.get("exclusiveMinimum"), bool
        ):
            pytest.fail(f"{where}: numeric exclusiveMinimum")


@pytest.mark.parametrize("kind", CRDS)
def test_crd_metadata(kind: str) -> None:
    crd = CRDS[kind]
    names = crd["spec"]["names"]
    version = crd["spec"]["versions"][0]
    assert crd["spec"]["group"] == "driftloop.dev"
    assert version["name"] == "v1alpha1"
    assert version["subresources"] == {"status": {}}
    assert names["categories"] == ["driftloop"]
    assert not set(names["shortNames"]) & BUILTIN_SHORT_NAMES
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Ready"] == '.status.conditions[?(@.type=="Ready")].status'
    status = _root(crd)["properties"]["status"]["properties"]
    assert status["observedGeneration"]["type"] == "integer"
    conditions = status["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert set(conditions["items"]["required"]) >= {
        "type",
        "status",
        "reason",
        "lastTransitionTime",
    }


def test_every_field_is_described() -> None:
    for kind, crd in CRDS.items():
        spec = _root(crd)["properties"]["spec"]
        for path, node in _nodes(spec, ".spec"):
            if path.endswith("{}") or path.endswith("[]"):
                continue
            assert node.get("description"), f"{kind}{path} has no description (kubectl explain)"


def _rules(kind: str) -> dict[str, str]:
    return {
        rule["message"]: rule["rule"]
        for _, node in _nodes(_root(CRDS[kind]))
        for rule in node.get("x-kubernetes-validations", [])
    }


@pytest.mark.parametrize(
    ("kind", "message", "rule"),
    [
        (
            "ModelVersion",
            "spec is immutable: ModelVersions are registry entries",
            "self == oldSelf",
        ),
        ("TrainingRun", "spec is immutable: create a new TrainingRun instead", "self == oldSelf"),
        (
            "Deployment",
            "spec.model: set either version or channel, not both",
            "!(has(self.version) && has(self.channel))",
        ),
    ],
)
def test_cel_rules_present(kind: str, message: str, rule: str) -> None:
    assert _rules(kind)[message] == rule


def test_estimator_enum_comes_from_the_contract() -> None:
    import driftloop_contract as contract

    spec = _root(CRDS["TrainingRun"])["properties"]["spec"]
    assert spec["properties"]["estimator"]["properties"]["type"]["enum"] == list(
        contract.ESTIMATORS
    )


def test_quantities_are_int_or_string() -> None:
    spec = _root(CRDS["TrainingRun"])["properties"]["spec"]
    cpu = spec["properties"]["resources"]["properties"]["limits"]["additionalProperties"]
    assert cpu["x-kubernetes-int-or-string"] is True


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (
            {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None},
            {"type": "integer", "nullable": True},
        ),
        ({"const": "x", "type": "string"}, {"type": "string", "enum": ["x"]}),
        (
            {"type": "number", "exclusiveMinimum": 0},
            {"type": "number", "minimum": 0, "exclusiveMinimum": True},
        ),
        (
            {"type": "object", "title": "T", "additionalProperties": False, "properties": {}},
            {"type": "object", "properties": {}},
        ),
        (
            {
                "type": "object",
                "additionalProperties": {"anyOf": [{"type": "boolean"}, {"type": "string"}]},
            },
            {
                "type": "object",
                "additionalProperties": {
                    "x-kubernetes-preserve-unknown-fields": True,
                    "maxProperties": 0,
                    "maxItems": 0,
                },
            },
        ),
        (
            {
                "$ref": "#/$defs/A",
                "description": "outer",
                "$defs": {"A": {"type": "string", "description": "inner"}},
            },
            {"type": "string", "description": "outer"},
        ),
    ],
)
def test_structural_conversion(given: dict[str, Any], expected: dict[str, Any]) -> None:
    assert crdgen.structural(given) == expected


def test_union_of_objects_is_refused() -> None:
    with pytest.raises(crdgen.SchemaError):
        crdgen.structural({"anyOf": [{"type": "object"}, {"type": "string"}]})


def test_committed_crds_parse_as_four_kinds() -> None:
    docs = [yaml.safe_load(p.read_text()) for p in sorted((ROOT / "crds").glob("*.yaml"))]
    assert sorted(d["spec"]["names"]["kind"] for d in docs) == sorted(CRDS)
