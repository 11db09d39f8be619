"""`helm install` with the operator in-cluster, under the chart's ServiceAccount.

The operator pod runs the operator image with exactly the RBAC the chart grants,
so a missing rule fails the example flow here.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftloop_runtime import store
from driftloop_testkit.cluster import REPO, VERSIONS, Kubectl, wait_for
from driftloop_testkit.data import dataset_manifest, iris_csv
from driftloop_testkit.driftloop import (
    GROUP,
    PLURALS,
    VERSION,
    condition,
    delete_crs,
    profile_jobs,
    ready_predictor_url,
    wait_cr,
)
from driftloop_testkit.helm import CHART, helm, values_file
from driftloop_testkit.s3 import S3Server
from driftloop_testkit.scenarios import create_and_serve, iris_flow
from driftloop_testkit.traffic import infer

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.helm]


def _image(name: str) -> dict[str, str]:
    # $DRIFTLOOP_RUNTIME_IMAGE / $DRIFTLOOP_OPERATOR_IMAGE override, as for the runtime_image
    # fixture: test images built from a branch without replacing the shared :dev tags.
    repository, tag = os.environ.get(f"DRIFTLOOP_{name}", VERSIONS[name]).rsplit(":", 1)
    return {"repository": repository, "tag": tag}


class Release:
    def __init__(self, kubectl: Kubectl, kubeconfig: str, namespace: str) -> None:
        self.name = f"dl-{uuid.uuid4().hex[:6]}"
        self.namespace = namespace
        self.kubectl = kubectl
        self.kubeconfig = kubeconfig

    def helm(self, *args: str) -> str:
        return helm(*args, "--kubeconfig", self.kubeconfig)

    def install(self, values: dict[str, Any], verb: str = "install") -> None:
        with tempfile.TemporaryDirectory(prefix="driftloop-helm-") as tmp:
            self.helm(
                verb,
                self.name,
                str(CHART),
                "--namespace",
                self.namespace,
                "--create-namespace",
                "--wait",
                "--timeout",
                "3m",
                "--values",
                str(values_file(values, Path(tmp))),
            )

    def service_account(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.name}-driftloop"

    def can(self, verb: str, resource: str, namespace: str) -> bool:
        result = self.kubectl(
            "auth",
            "can-i",
            verb,
            resource,
            "-n",
            namespace,
            f"--as={self.service_account()}",
            check=False,
        )
        return result.stdout.strip() == "yes"

    def operator_log(self) -> str:
        return self.kubectl(
            "logs",
            "-n",
            self.namespace,
            "-l",
            f"app.kubernetes.io/instance={self.name}",
            "--tail=200",
            check=False,
        ).stdout


def _values(watch: list[str]) -> dict[str, Any]:
    return {
        "crds": {"enabled": False},  # the suite applies crds/ itself (see tests/cluster)
        "image": {**_image("OPERATOR_IMAGE"), "pullPolicy": "IfNotPresent"},
        "runtime": {"image": {**_image("RUNTIME_IMAGE"), "pullPolicy": "IfNotPresent"}},
        "artifacts": {"pvc": {"create": False}},  # the test's artifact_store makes the claim
        "watchNamespaces": watch,
        "logFormat": "plain",
    }


def _predicts_setosa(kubectl: Kubectl, namespace: str) -> None:
    """The served iris model answers one row of setosa."""
    answer = infer(ready_predictor_url(kubectl, namespace, "iris", 1), [[5.1, 3.5, 1.4, 0.2]])
    assert answer.json()["outputs"][0]["data"] == ["setosa"]


@pytest.fixture
def release(kubectl: Kubectl, kubeconfig: str, crds: None) -> Iterator[Release]:
    rel = Release(kubectl, kubeconfig, f"dl-system-{uuid.uuid4().hex[:6]}")
    yield rel
    try:
        print(rel.operator_log()[-5000:])
        rel.helm(
            "uninstall", rel.name, "--namespace", rel.namespace, "--wait", "--ignore-not-found"
        )
    finally:
        kubectl("delete", "namespace", rel.namespace, "--wait=false", check=False)


def test_helm_install_runs_the_example_flow(
    release: Release, custom: Any, kubectl: Kubectl, namespace: str, stage: Any
) -> None:
    release.install(_values([]))
    stage("data/iris.csv", iris_csv())
    served = create_and_serve(custom, namespace, iris_flow(refresh_interval="20s"))
    assert served["status"]["servingModelVersion"] == "iris-v1"
    _predicts_setosa(kubectl, namespace)

    # A refresh re-profiles the data, and the operator may delete the superseded Job.
    wait_for(
        lambda: "iris-profile-g1" not in profile_jobs(kubectl, namespace, "iris"),
        timeout=180,
        what="the first profile Job deleted by the operator",
    )

    # An upgrade keeps it working; an uninstall leaves nothing of the release behind.
    release.install({**_values([]), "logFormat": "json"}, verb="upgrade")
    wait_for(
        lambda: (
            kubectl.json(
                "get",
                "deployment",
                "-n",
                release.namespace,
                "-l",
                f"app.kubernetes.io/instance={release.name}",
            )["items"][0]["status"].get("readyReplicas")
            == 2
        ),
        timeout=180,
        what="upgraded operator ready",
    )

    # Two replicas, one leader: the Lease names one of the current pods (the old leader
    # released it on SIGTERM during the rolling update; the chart's Role allows this).
    def leader_is_a_current_pod() -> bool:
        pods = kubectl.json(
            "get",
            "pods",
            "-n",
            release.namespace,
            "-l",
            f"app.kubernetes.io/instance={release.name}",
        )["items"]
        names = {p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp")}
        lease = kubectl.json("get", "lease", "-n", release.namespace, f"{release.name}-driftloop")
        holder = str(lease["spec"].get("holderIdentity") or "")
        return holder.rsplit("_", 1)[0] in names

    wait_for(leader_is_a_current_pod, timeout=120, what="a current pod holding the Lease")
    # Users' objects go first, while the operator can still lift its finalizers.
    delete_crs(kubectl, namespace)
    release.helm("uninstall", release.name, "--namespace", release.namespace, "--wait")

    def leftovers() -> str:
        return kubectl(
            "get",
            "all,serviceaccounts,roles,rolebindings,clusterroles,clusterrolebindings,configmaps",
            "-A",
            "-l",
            f"app.kubernetes.io/instance={release.name}",
            "-o",
            "name",
        ).stdout.strip()

    wait_for(lambda: leftovers() == "", timeout=90, what="no objects of the release left")
    # CRDs are kept (crds.keep) and so is everything the users made.
    assert kubectl("get", "crd", f"modelversions.{GROUP}", check=False).returncode == 0


def test_namespaced_install_cannot_touch_other_namespaces(
    release: Release, custom: Any, kubectl: Kubectl, namespace: str, artifact_store: str
) -> None:
    other = f"dl-other-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", other)
    try:
        release.install(_values([namespace]))
        assert release.can("create", "jobs.batch", namespace)
        assert release.can("patch", f"deployments.{GROUP}", namespace)
        for verb, resource in [
            ("create", "jobs.batch"),
            ("list", f"datasets.{GROUP}"),
            ("get", "secrets"),
            ("create", "deployments.apps"),
        ]:
            assert not release.can(verb, resource, other), f"{verb} {resource} in {other}"
        # The watched namespace is reconciled; the other is not.
        for ns in (namespace, other):
            custom.create_namespaced_custom_object(
                GROUP, VERSION, ns, "datasets", dataset_manifest("d", "/artifacts/data/missing.csv")
            )
        wait_cr(custom, namespace, "Dataset", "d", lambda o: bool(condition(o)), timeout=180)
        untouched = custom.get_namespaced_custom_object(GROUP, VERSION, other, "datasets", "d")
        assert "status" not in untouched
        assert not untouched["metadata"].get("finalizers")
        # Serving exact namespaces needs no cluster-wide namespace list (not granted here).
        assert "Not enough permissions" not in release.operator_log()
    finally:
        kubectl("delete", "namespace", other, "--wait=false", check=False)


def test_chart_takes_over_existing_crds_and_keeps_them(release: Release, kubectl: Kubectl) -> None:
    """crds.enabled=true on a cluster whose CRDs were applied with kubectl (as here).

    Helm adopts objects that carry its ownership metadata; the chart then owns CRDs
    identical to crds/, and `helm uninstall` keeps them (crds.keep).
    """
    crds = [f"{plural}.{GROUP}" for plural in PLURALS.values()]
    ownership = [
        f"meta.helm.sh/release-name={release.name}",
        f"meta.helm.sh/release-namespace={release.namespace}",
    ]
    try:
        for crd in crds:
            kubectl("label", "crd", crd, "app.kubernetes.io/managed-by=Helm", "--overwrite")
            kubectl("annotate", "crd", crd, *ownership, "--overwrite")
        release.install({**_values([]), "crds": {"enabled": True, "keep": True}})
        for crd in crds:
            installed = kubectl.json("get", "crd", crd)
            assert installed["metadata"]["labels"]["app.kubernetes.io/instance"] == release.name
            assert installed["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
            expected = yaml.safe_load((REPO / "crds" / f"{crd}.yaml").read_text())
            assert [v["schema"] for v in installed["spec"]["versions"]] == [
                v["schema"] for v in expected["spec"]["versions"]
            ]
        release.helm("uninstall", release.name, "--namespace", release.namespace, "--wait")
        for crd in crds:
            assert kubectl("get", "crd", crd, check=False).returncode == 0, f"{crd} was deleted"
    finally:  # hand the CRDs back to kubectl, as the rest of the suite expects
        for crd in crds:
            kubectl("label", "crd", crd, "app.kubernetes.io/managed-by-", check=False)
            kubectl(
                "annotate",
                "crd",
                crd,
                "meta.helm.sh/release-name-",
                "meta.helm.sh/release-namespace-",
                "helm.sh/resource-policy-",
                check=False,
            )


@pytest.mark.s3
def test_helm_install_in_s3_mode(
    release: Release,
    custom: Any,
    kubectl: Kubectl,
    namespace: str,
    s3_env: S3Server,
    s3_secret: str,
    tmp_path: Path,
) -> None:
    """artifacts.s3.* reach the operator, and its chart RBAC suffices in S3 mode (the
    Secret check); no PVC exists in the namespace."""
    values = _values([namespace])
    values["artifacts"] = {
        "pvc": {"create": False},
        "s3": {"endpoint": s3_env.pod_endpoint, "bucket": s3_env.bucket, "secretName": s3_secret},
    }
    release.install(values)
    local = tmp_path / "iris.csv"
    local.write_text(iris_csv())
    source = f"s3://{s3_env.bucket}/{namespace}/data/iris.csv"
    store.put_file(local, source)
    served = create_and_serve(custom, namespace, iris_flow(source))
    mv = custom.get_namespaced_custom_object(
        GROUP, VERSION, namespace, "modelversions", served["status"]["servingModelVersion"]
    )
    assert mv["spec"]["artifact"]["uri"].startswith(f"s3://{s3_env.bucket}/models/iris/")
    assert store.read_manifest(mv["spec"]["artifact"]["uri"]) is not None
    _predicts_setosa(kubectl, namespace)
    delete_crs(kubectl, namespace)
