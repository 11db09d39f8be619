"""Every YAML example in docs/ is accepted by the API server, and the operator never
changes what users apply (server-side apply twice: no drift, no new generation)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from driftloop import api
from driftloop_testkit.cluster import REPO, Kubectl
from driftloop_testkit.driftloop import GROUP, OperatorProcess, condition, wait_cr

pytestmark = pytest.mark.cluster
DOCS = REPO / "docs"
#: Inputs of the Argo CD health-check tests: objects with status, not manifests.
EXCLUDED = ("gitops/argocd-health",)


def _docs_manifests() -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(DOCS.rglob("*")):
        rel = str(path.relative_to(DOCS))
        if rel.startswith(EXCLUDED) or not path.is_file():
            continue
        if path.suffix in (".yaml", ".yml"):
            texts = [path.read_text()]
        elif path.suffix == ".md":
            texts = re.findall(r"```yaml\n(.*?)```", path.read_text(), flags=re.S)
        else:
            continue
        for text in texts:
            for doc in yaml.safe_load_all(text):
                if isinstance(doc, dict) and str(doc.get("apiVersion", "")).startswith(f"{GROUP}/"):
                    found.append((f"{rel}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return found


MANIFESTS = _docs_manifests()


def test_docs_have_examples_of_every_kind() -> None:
    assert {doc["kind"] for _, doc in MANIFESTS} >= {"Dataset", "TrainingRun", "Deployment"}


@pytest.mark.parametrize(("where", "doc"), MANIFESTS, ids=[w for w, _ in MANIFESTS])
def test_docs_example_is_accepted(
    where: str, doc: dict[str, Any], kubectl: Kubectl, namespace: str, crds: None
) -> None:
    result = kubectl(
        "apply",
        "--server-side",
        "--dry-run=server",
        "-n",
        namespace,
        "-f",
        "-",
        input=yaml.safe_dump(doc),
        check=False,
    )
    assert result.returncode == 0, f"{where}: {result.stderr}"


def test_reapplying_user_manifests_shows_no_drift(
    operator: OperatorProcess, kubectl: Kubectl, custom: Any, namespace: str
) -> None:
    examples = sorted((DOCS / "examples").glob("0*.yaml"))
    apply = ("apply", "--server-side", "--field-manager=gitops", "-n", namespace)
    for path in examples:
        kubectl(*apply, "-f", str(path))
    # Let the operator reconcile: status, finalizers and its annotations get written.
    wait_cr(custom, namespace, "Dataset", "iris", lambda o: bool(condition(o)))
    wait_cr(custom, namespace, "Deployment", "iris", lambda o: bool(condition(o)))
    before = {p.name: kubectl.json("get", "-n", namespace, "-f", str(p)) for p in examples}
    for path in examples:
        diff = kubectl(
            "diff",
            "--server-side",
            "--field-manager=gitops",
            "-n",
            namespace,
            "-f",
            str(path),
            check=False,
        )
        assert diff.returncode == 0, f"{path.name} drifted:\n{diff.stdout}"
        kubectl(*apply, "-f", str(path))
    for path in examples:
        after = kubectl.json("get", "--show-managed-fields", "-n", namespace, "-f", str(path))
        assert after["spec"] == before[path.name]["spec"]
        assert after["metadata"]["generation"] == before[path.name]["metadata"]["generation"] == 1
        managers = {
            m["manager"]
            for m in after["metadata"]["managedFields"]
            if m.get("subresource") != "status" and "f:spec" in m.get("fieldsV1", {})
        }
        assert managers == {"gitops"}, f"{path.name}: spec also managed by {managers - {'gitops'}}"


def test_kubectl_ux(kubectl: Kubectl, namespace: str, crds: None) -> None:
    """`kubectl get driftloop` lists all four kinds; `kubectl explain` shows field docs."""
    for path in sorted((DOCS / "examples").glob("0*.yaml")):
        kubectl("apply", "-n", namespace, "-f", str(path))
    listed = kubectl("get", "driftloop", "-n", namespace).stdout
    for kind in (
        "dataset.driftloop.dev/iris",
        "trainingrun.driftloop.dev/iris-rf-1",
        "deployment.driftloop.dev/iris",
    ):
        assert kind in listed, listed
    assert "READY" in listed
    explained = kubectl(
        "explain", "deployment.spec.retraining.cooldown", "--api-version=driftloop.dev/v1alpha1"
    ).stdout
    # The CRD's description is the API model's: kubectl explain shows that one text.
    description = api.Retraining.model_fields["cooldown"].description or ""
    assert description.split(".")[0] in " ".join(explained.split())
