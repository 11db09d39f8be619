"""docs/quickstart.md, run as written on the embedded cluster.

Every shell block marked ``<!-- quickstart-test -->`` runs, in order, in one bash
(``set -euo pipefail``) from the repository's root: ``helm install`` of the chart with the
documented values (two operator replicas, leader election, the operator image in a pod
under the chart's RBAC), ``kubectl driftloop upload``, the examples applied and waited
for, a prediction through the Service's address, ``kubectl driftloop status``.

The machine's prerequisites the doc lists first (``make venv cluster-up images``,
Prometheus) are not run: the suite's fixtures and ``make`` provide them, and rebuilding
the shared images from a test would replace them under other sessions.

Three rewrites let the steps share a cluster with other tests, nothing else changes:

* the namespace ``driftloop-system`` becomes a throw-away one, and the release
  ``driftloop`` gets a unique name (its ClusterRoles are cluster-wide);
* ``--set watchNamespaces={<namespace>}``: a cluster-wide operator would reconcile the
  other tests' objects;
* ``--set crds.enabled=false`` when the CRDs exist and are not Helm's (another suite
  applied ``crds/``): Helm refuses to adopt them (docs/operations.md). On a cluster
  without them the chart installs them, as the doc says.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftloop_testkit.cluster import EMBEDDED_KUBECONFIG, REPO, Kubectl
from driftloop_testkit.docs import QUICKSTART, marked_steps, rewrite
from driftloop_testkit.driftloop import delete_crs
from driftloop_testkit.helm import helm

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.helm]


class Install:
    def __init__(self, kubectl: Kubectl, kubeconfig: str) -> None:
        suffix = uuid.uuid4().hex[:6]
        self.namespace = f"dl-quickstart-{suffix}"
        self.release = f"qs-{suffix}"
        self.kubectl = kubectl
        self.kubeconfig = kubeconfig

    def foreign_crds(self) -> bool:
        """Our CRDs exist and no Helm release owns them."""
        out = self.kubectl("get", "crd", "datasets.driftloop.dev", "-o", "json", check=False)
        if out.returncode != 0:
            return False
        annotations = json.loads(out.stdout)["metadata"].get("annotations") or {}
        return "meta.helm.sh/release-name" not in annotations

    def logs(self) -> str:
        return self.kubectl(
            "logs",
            "-n",
            self.namespace,
            "-l",
            f"app.kubernetes.io/instance={self.release}",
            "--tail=100",
            "--prefix",
            check=False,
        ).stdout


@pytest.fixture
def install(kubectl: Kubectl, kubeconfig: str, crds: None) -> Iterator[Install]:
    # The suite's CRDs first (as every other test has them): the release then leaves
    # them alone (crds.enabled=false), whichever test runs beside this one.
    if Path(kubeconfig).resolve() != EMBEDDED_KUBECONFIG.resolve():
        pytest.skip("docs/quickstart.md's tested path is the embedded cluster's")
    inst = Install(kubectl, kubeconfig)
    yield inst
    try:
        delete_crs(kubectl, inst.namespace)  # while the operator runs
        helm(
            "uninstall",
            inst.release,
            "--namespace",
            inst.namespace,
            "--wait",
            "--ignore-not-found",
            "--kubeconfig",
            kubeconfig,
        )
    finally:
        kubectl("delete", "namespace", inst.namespace, "--wait=false", check=False)


def test_the_quickstart_as_written(install: Install, kubectl: Kubectl) -> None:
    helm_args = f"--set watchNamespaces={{{install.namespace}}}"
    if install.foreign_crds():
        helm_args += " --set crds.enabled=false"
    steps = [
        rewrite(
            step,
            {
                "helm install driftloop charts/driftloop": (
                    f"helm install {install.release} charts/driftloop {helm_args}"
                ),
                "driftloop-system": install.namespace,
            }
            if "helm install" in step
            else {"driftloop-system": install.namespace},
        )
        for step in marked_steps(QUICKSTART.read_text())
    ]
    script = "".join(f"echo '### step {i}' >&2\n{step}" for i, step in enumerate(steps, 1))
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    report = f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-6000:]}\noperator:\n{install.logs()}"
    assert proc.returncode == 0, report

    # The prediction through the Service.
    answer = next(
        json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{"model_name"')
    )
    print(proc.stdout)  # the whole run, for the record (pytest -s)
    assert answer["outputs"][0]["data"] == ["setosa"], report
    # The lineage.
    out = proc.stdout
    assert "Dataset iris  Ready  version sha256:" in out, report
    assert "150 rows x 5 columns  source /artifacts/data/iris.csv" in out, report
    assert "TrainingRun iris-rf-1  Succeeded" in out, report
    assert "ModelVersion iris-v1  v1  approved (GatesPassed)" in out, report
    assert "Deployment iris  Ready  serving v1 (iris-v1)" in out, report
    # The chart's claim was provisioned by the default StorageClass: no hand-made volume.
    pvc = kubectl.json("get", "pvc", "driftloop-artifacts", "-n", install.namespace)
    assert pvc["status"]["phase"] == "Bound"
    assert pvc["spec"]["storageClassName"] == "local-path"
    pv = kubectl.json("get", "pv", pvc["spec"]["volumeName"])
    assert (
        pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == "rancher.io/local-path"
    )
