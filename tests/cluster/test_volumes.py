"""Dynamic volumes on the embedded cluster: the local-path provisioner of hack/local-path.sh.

A claim of the default StorageClass binds at once, in any access mode; a pod under Pod
Security "restricted" (uid 65532) writes to it; deleting the claim removes the volume and
its directory on the node.  The provisioner acts as its own ServiceAccount, not as an
administrator.  Skipped on other clusters (their provisioner is theirs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from driftloop_testkit.cluster import (
    EMBEDDED_KUBECONFIG,
    STATE,
    Kubectl,
    restricted_security_context,
    wait_for,
)

pytestmark = pytest.mark.cluster

SA = "system:serviceaccount:local-path-storage:local-path-provisioner"


@pytest.fixture
def embedded(kubeconfig: str) -> None:
    if Path(kubeconfig).resolve() != EMBEDDED_KUBECONFIG.resolve():
        pytest.skip("the local-path provisioner is the embedded cluster's")


def test_local_path_is_the_default_storage_class(embedded: None, kubectl: Kubectl) -> None:
    classes = kubectl.json("get", "storageclass")["items"]
    default = [
        sc["metadata"]["name"]
        for sc in classes
        if (sc["metadata"].get("annotations") or {}).get(
            "storageclass.kubernetes.io/is-default-class"
        )
        == "true"
    ]
    assert default == ["local-path"]
    sc = next(c for c in classes if c["metadata"]["name"] == "local-path")
    assert sc["provisioner"] == "rancher.io/local-path"
    assert sc["volumeBindingMode"] == "Immediate"


def test_a_claim_binds_is_written_and_goes_away(
    embedded: None, kube_api: Any, kubectl: Kubectl, namespace: str, test_image: str
) -> None:
    from kubernetes import client

    core: Any = client.CoreV1Api(kube_api)  # Any: it takes plain dict bodies
    core.create_namespaced_persistent_volume_claim(
        namespace,
        {
            "metadata": {"name": "shared"},
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "resources": {"requests": {"storage": "10Mi"}},
            },
        },
    )

    def bound() -> Any:
        claim = core.read_namespaced_persistent_volume_claim("shared", namespace)
        return claim if claim.status.phase == "Bound" else None

    # Bound before any pod uses it (Immediate), in ReadWriteMany.
    claim = wait_for(bound, timeout=90, what="the claim bound")
    assert claim.spec.storage_class_name == "local-path"
    pv = kubectl.json("get", "pv", claim.spec.volume_name)
    assert pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == (
        "rancher.io/local-path"
    )
    host_dir = Path(pv["spec"]["hostPath"]["path"])
    assert host_dir.parent == STATE / "volumes" / "local-path"
    assert host_dir.is_dir()

    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "writer"},
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "w",
                        "image": test_image,
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["python3", "-c", "open('/v/hello','w').write('hi')"],
                        "securityContext": restricted_security_context(),
                        "volumeMounts": [{"name": "v", "mountPath": "/v"}],
                    }
                ],
                "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "shared"}}],
            },
        },
    )

    def finished() -> str | None:
        phase = core.read_namespaced_pod("writer", namespace).status.phase
        return phase if phase in ("Succeeded", "Failed") else None

    assert wait_for(finished, timeout=120, what="the writer pod") == "Succeeded"
    assert (host_dir / "hello").read_text() == "hi"

    core.delete_namespaced_pod("writer", namespace, grace_period_seconds=0)
    core.delete_namespaced_persistent_volume_claim("shared", namespace)
    # reclaimPolicy Delete: the volume and its directory (files of uid 65532 included) go.
    wait_for(
        lambda: kubectl("get", "pv", claim.spec.volume_name, check=False).returncode != 0,
        timeout=120,
        what="the volume deleted",
    )
    assert not host_dir.exists()


@pytest.mark.parametrize(
    ("verb", "resource", "namespace", "allowed"),
    [
        ("create", "persistentvolumes", "", "yes"),
        ("create", "pods", "local-path-storage", "yes"),
        ("create", "pods", "default", "no"),
        ("get", "secrets", "default", "no"),
        ("delete", "nodes", "", "no"),
    ],
)
def test_the_provisioner_has_its_own_identity(
    embedded: None, kubectl: Kubectl, verb: str, resource: str, namespace: str, allowed: str
) -> None:
    args = ["auth", "can-i", verb, resource, f"--as={SA}"]
    if namespace:
        args += ["-n", namespace]
    assert kubectl(*args, check=False).stdout.strip() == allowed
