"""docs/gitops/kustomization.yaml: what it references exists and its patches apply.

kustomize itself is not needed: the overlay only uses ``resources`` (a base directory),
``namespace``, ``labels`` and JSON 6902 ``patches``, checked here structurally. Building it
with a real kustomize (``kubectl kustomize docs/gitops``) belongs to the cluster tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[3]
GITOPS = REPO / "docs" / "gitops"


def load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict)
    return doc


def resources(directory: Path) -> list[dict[str, Any]]:
    """The objects a kustomization directory (and its bases, recursively) lists."""
    path = directory / "kustomization.yaml"
    assert path.exists(), f"{path.relative_to(REPO)} is missing: a base needs one"
    kustomization = load(path)
    out: list[dict[str, Any]] = []
    for entry in kustomization.get("resources", []):
        target = (directory / entry).resolve()
        assert target.exists(), f"{directory / 'kustomization.yaml'}: {entry} does not exist"
        if target.is_dir():
            out += resources(target)
        else:
            assert target.parent == directory.resolve() or directory.resolve() in target.parents, (
                f"{entry}: kustomize loads files only from inside {directory}; use a base"
            )
            out += [doc for doc in yaml.safe_load_all(target.read_text()) if doc]
    return out


def test_overlay_covers_every_example() -> None:
    objects = resources(GITOPS)
    examples = sorted((REPO / "docs" / "examples").glob("*.yaml"))
    expected = [
        doc
        for path in examples
        if path.name != "kustomization.yaml"
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]
    key = lambda o: (o["kind"], o["metadata"]["name"])  # noqa: E731
    assert sorted(map(key, objects)) == sorted(map(key, expected))


def test_patches_hit_existing_fields() -> None:
    kustomization = load(GITOPS / "kustomization.yaml")
    objects = resources(GITOPS)
    for patch in kustomization.get("patches", []):
        target = patch["target"]
        (obj,) = [
            o
            for o in objects
            if o["kind"] == target["kind"]
            and o["metadata"]["name"] == target["name"]
            and o["apiVersion"] == f"{target['group']}/{target['version']}"
        ]
        for op in yaml.safe_load(patch["patch"]):
            node: Any = obj
            *parents, last = op["path"].strip("/").split("/")
            for part in parents:
                node = node[part]
            if op["op"] in {"replace", "remove", "test"}:
                assert last in node, f"{op['path']} not in {target['name']}"


def test_namespace_and_labels_are_well_formed() -> None:
    kustomization = load(GITOPS / "kustomization.yaml")
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    assert kustomization["namespace"]
    for entry in kustomization.get("labels", []):
        assert entry["pairs"]
