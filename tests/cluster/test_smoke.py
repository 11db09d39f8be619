"""Smoke tests of the real cluster the project's tests and demo run on.

They prove the parts the operator relies on: CRDs with CEL validation, Jobs with
termination messages, Deployments with readiness probes under Pod Security
"restricted", pod and Service networking (kube-proxy), the in-cluster `kubernetes`
Service, and garbage collection by owner references.

Run: ``make cluster-smoke`` (starts the embedded cluster) or, against any cluster,
``KUBECONFIG=... DRIFTLOOP_TEST_IMAGE=<image with python3> pytest tests/cluster/test_smoke.py``.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from driftloop_testkit.cluster import REPO, VERSIONS, restricted_security_context, wait_for

pytestmark = pytest.mark.cluster

CRD_DIR = REPO / "crds"

# Invalid examples for the project's own kinds. Each is valid against the OpenAPI schema
# but breaks one CEL rule; the expected message is read from the CRD file itself (the rule
# whose text contains the given fragment), so rewording a message keeps the test green and
# a kind or rule that is not (yet) in crds/ is skipped. "update" examples create the object
# first and then change its spec (transition rules such as `self == oldSelf`).
CEL_EXAMPLES: dict[str, dict[str, Any]] = {
    "Dataset": {
        "spec": {"source": "/data/d.csv", "features": [{"name": "a"}], "target": "a"},
        "rule": "f.name == self.target",
    },
    "Deployment": {
        "spec": {"model": {"name": "m", "version": 1, "channel": "latest"}},
        "rule": "has(self.channel)",
    },
    "TrainingRun": {
        "spec": {
            "datasetRef": {"name": "d"},
            "estimator": {"type": "LogisticRegression"},
            "model": "m",
            "evaluation": {"minScores": {"not_a_metric": 0.5}},
        },
        "rule": "self.minScores.all",
    },
    "ModelVersion": {
        "spec": {
            "model": "m",
            "version": 1,
            "task": "classification",
            "artifact": {"uri": "file:///artifacts/m/1/model.skops", "sha256": "a" * 64},
        },
        "update": {"version": 2},
        "rule": "self == oldSelf",
    },
}


def _cel_message(node: Any, fragment: str) -> str | None:
    """The message of the first x-kubernetes-validations rule containing ``fragment``."""
    if isinstance(node, dict):
        for rule in node.get("x-kubernetes-validations", []):
            if fragment in rule.get("rule", ""):
                return str(rule.get("message") or rule["rule"])
        for value in node.values():
            found = _cel_message(value, fragment)
            if found:
                return found
    elif isinstance(node, list):
        for value in node:
            found = _cel_message(value, fragment)
            if found:
                return found
    return None


def _load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    import yaml

    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _project_crds() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(CRD_DIR.glob("*.yaml")) + sorted(CRD_DIR.glob("*.yml")):
        docs += [d for d in _load_yaml_docs(path) if d.get("kind") == "CustomResourceDefinition"]
    return docs


def _storage_version(crd: dict[str, Any]) -> str:
    return next(v["name"] for v in crd["spec"]["versions"] if v.get("storage"))


def _pod_spec(image: str, command: list[str], **extra: Any) -> dict[str, Any]:
    container = {
        "name": "main",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "securityContext": restricted_security_context(),
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
    }
    container.update(extra.pop("container", {}))
    return {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "terminationGracePeriodSeconds": 2,
        "containers": [container],
        **extra,
    }


def _apply(kubectl, obj: dict[str, Any] | list[dict[str, Any]], *args: str):
    items = obj if isinstance(obj, list) else [obj]
    body = json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
    return kubectl("apply", "-f", "-", *args, input=body)


def _http_get(url: str) -> tuple[int, bytes]:
    # The host reaches pod IPs and ClusterIPs directly: both are routed into the
    # cluster bridge on this machine. Never use a proxy for them.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=5) as resp:
        return resp.status, resp.read()


# ---------------------------------------------------------------------------
def test_cluster_version_matches_pin(kube_api, kubectl):
    from kubernetes import client

    version = client.VersionApi(kube_api).get_code()
    assert version.git_version == f"v{VERSIONS['K8S_VERSION']}"
    client_version = json.loads(kubectl("version", "--client", "-o", "json").stdout)
    assert client_version["clientVersion"]["gitVersion"] == f"v{VERSIONS['K8S_VERSION']}"
    nodes = client.CoreV1Api(kube_api).list_node().items
    assert nodes
    assert all(
        any(c.type == "Ready" and c.status == "True" for c in n.status.conditions) for n in nodes
    )


@pytest.fixture(scope="module")
def project_crds(kubectl) -> list[dict[str, Any]]:
    crds = _project_crds()
    if not crds:
        pytest.skip("crds/ holds no CustomResourceDefinition yet")
    for path in sorted(CRD_DIR.glob("*.y*ml")):
        # Server-side dry run first: the API server validates schema and compiles CEL.
        kubectl("apply", "--dry-run=server", "--server-side", "--force-conflicts", "-f", str(path))
        kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
    for crd in crds:
        kubectl(
            "wait", "--for=condition=Established", f"crd/{crd['metadata']['name']}", "--timeout=60s"
        )
    return crds


def test_project_crds_established(project_crds, kubectl):
    for crd in project_crds:
        got = kubectl.json("get", "crd", crd["metadata"]["name"])
        conditions = {c["type"]: c["status"] for c in got["status"]["conditions"]}
        assert conditions.get("Established") == "True", conditions
        assert conditions.get("NamesAccepted") == "True", conditions
        # Served and discoverable, so `kubectl get <plural>` works.
        kubectl("get", crd["spec"]["names"]["plural"] + "." + crd["spec"]["group"], "-A")


@pytest.mark.parametrize("kind", sorted(CEL_EXAMPLES))
def test_project_cel_rule_rejects_with_its_message(kind, project_crds, kubectl, namespace):
    crd = next((c for c in project_crds if c["spec"]["names"]["kind"] == kind), None)
    if crd is None:
        pytest.skip(f"no {kind} CRD in crds/")
    example = CEL_EXAMPLES[kind]
    version = _storage_version(crd)
    schema = next(v for v in crd["spec"]["versions"] if v["name"] == version)["schema"]
    expected = _cel_message(schema, example["rule"])
    if expected is None:
        pytest.skip(f"{kind} has no CEL rule containing {example['rule']!r}")
    obj = {
        "apiVersion": f"{crd['spec']['group']}/{version}",
        "kind": kind,
        "metadata": {"name": "cel-example", "namespace": namespace},
        "spec": example["spec"],
    }
    if "update" in example:
        # Valid on create; the transition rule must refuse the change.
        kubectl("create", "-f", "-", input=json.dumps(obj))
        obj["spec"] = {**example["spec"], **example["update"]}
        proc = kubectl("replace", "-f", "-", input=json.dumps(obj), check=False)
    else:
        proc = kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(obj), check=False)
    assert proc.returncode != 0, f"{kind} breaking {example['rule']!r} was accepted"
    assert expected in proc.stderr, proc.stderr


def test_cel_rule_rejects_with_its_message(kubectl, namespace):
    """The API server's CEL machinery, independent of the project's CRDs."""
    group = "smoke.driftloop.dev"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {
                                        "min": {"type": "integer"},
                                        "max": {"type": "integer"},
                                    },
                                    "x-kubernetes-validations": [
                                        {
                                            "rule": "self.min <= self.max",
                                            "message": "min must not exceed max",
                                        }
                                    ],
                                }
                            },
                        }
                    },
                }
            ],
        },
    }
    _apply(kubectl, crd, "--server-side")
    kubectl("wait", "--for=condition=Established", f"crd/widgets.{group}", "--timeout=60s")
    try:
        good = {
            "apiVersion": f"{group}/v1",
            "kind": "Widget",
            "metadata": {"name": "ok", "namespace": namespace},
            "spec": {"min": 1, "max": 2},
        }
        wait_for(
            lambda: kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(good)),
            timeout=30,
            what="Widget served",
        )
        bad = {
            **good,
            "metadata": {"name": "bad", "namespace": namespace},
            "spec": {"min": 3, "max": 2},
        }
        proc = kubectl("create", "-f", "-", input=json.dumps(bad), check=False)
        assert proc.returncode != 0
        assert "min must not exceed max" in proc.stderr, proc.stderr
    finally:
        kubectl("delete", "crd", f"widgets.{group}", "--wait=false", check=False)


def test_job_completes_with_termination_message(kubectl, namespace, test_image):
    result = {"ok": True, "metric": 0.93}
    script = (
        "import json,os,sys;"
        f"open('/dev/termination-log','w').write(json.dumps({result!r}));"
        "print('uid', os.getuid())"
    )
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "hello", "namespace": namespace},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": 120,
            "template": {
                "spec": _pod_spec(test_image, ["python3", "-c", script], restartPolicy="Never")
            },
        },
    }
    _apply(kubectl, job)
    kubectl("wait", "--for=condition=Complete", "job/hello", "-n", namespace, "--timeout=120s")
    pods = kubectl.json("get", "pods", "-n", namespace, "-l", "job-name=hello")["items"]
    assert len(pods) == 1
    terminated = pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 0
    assert json.loads(terminated["message"]) == result
    assert "uid 65532" in kubectl("logs", "-n", namespace, pods[0]["metadata"]["name"]).stdout


def _http_deployment(namespace: str, image: str, name: str = "web") -> list[dict[str, Any]]:
    labels = {"app": name}
    container = {
        "ports": [{"containerPort": 8080, "name": "http"}],
        "workingDir": "/usr/share",  # read-only root filesystem: serve an existing directory
        "readinessProbe": {
            "httpGet": {"path": "/", "port": "http"},
            "periodSeconds": 1,
            "failureThreshold": 30,
        },
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": _pod_spec(
                    image,
                    ["python3", "-m", "http.server", "8080", "--bind", "0.0.0.0"],
                    container=container,
                ),
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": "http"}]},
    }
    return [deployment, service]


def test_deployment_available_and_reachable(kubectl, namespace, test_image):
    _apply(kubectl, _http_deployment(namespace, test_image))
    kubectl(
        "wait", "--for=condition=Available", "deployment/web", "-n", namespace, "--timeout=120s"
    )

    pod = kubectl.json("get", "pods", "-n", namespace, "-l", "app=web")["items"][0]
    pod_ip = pod["status"]["podIP"]
    status, body = _http_get(f"http://{pod_ip}:8080/")
    assert status == 200
    assert b"Directory listing" in body

    # ClusterIP through kube-proxy's rules (they follow the EndpointSlice asynchronously).
    cluster_ip = kubectl.json("get", "service", "web", "-n", namespace)["spec"]["clusterIP"]
    status, _ = wait_for(
        lambda: _http_get(f"http://{cluster_ip}:80/"), timeout=60, what="ClusterIP answers"
    )
    assert status == 200


def test_pod_reaches_api_server_via_kubernetes_service(kubectl, namespace, test_image):
    """What an in-cluster operator does: KUBERNETES_SERVICE_HOST + SA token + CA (no DNS needed)."""
    script = r"""
import json, os, ssl, urllib.request
sa = '/var/run/secrets/kubernetes.io/serviceaccount/'
host, port = os.environ['KUBERNETES_SERVICE_HOST'], os.environ['KUBERNETES_SERVICE_PORT']
url = 'https://%s:%s/version' % (host, port)
ctx = ssl.create_default_context(cafile=sa + 'ca.crt')
req = urllib.request.Request(url, headers={'Authorization': 'Bearer ' + open(sa + 'token').read()})
with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
    v = json.load(r)
result = {'host': host, 'gitVersion': v['gitVersion']}
open('/dev/termination-log', 'w').write(json.dumps(result))
"""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "incluster", "namespace": namespace},
        "spec": _pod_spec(test_image, ["python3", "-c", script], restartPolicy="Never"),
    }
    _apply(kubectl, pod)
    phase = wait_for(
        lambda: (
            kubectl.json("get", "pod", "incluster", "-n", namespace)["status"].get("phase")
            in ("Succeeded", "Failed")
            and kubectl.json("get", "pod", "incluster", "-n", namespace)
        ),
        timeout=120,
        what="pod finished",
    )
    terminated = phase["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 0, kubectl(
        "logs", "-n", namespace, "incluster", check=False
    ).stdout
    got = json.loads(terminated["message"])
    assert got["gitVersion"] == f"v{VERSIONS['K8S_VERSION']}"
    kubernetes_svc = kubectl.json("get", "service", "kubernetes", "-n", "default")
    assert got["host"] == kubernetes_svc["spec"]["clusterIP"]


def test_garbage_collection_by_owner_reference(kube_api, namespace):
    from kubernetes import client

    core = client.CoreV1Api(kube_api)
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"), data={"a": "1"})
    )
    ref = client.V1OwnerReference(
        api_version="v1",
        kind="ConfigMap",
        name="owner",
        uid=owner.metadata.uid,
        block_owner_deletion=True,
    )
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="child", owner_references=[ref])),
    )
    core.delete_namespaced_config_map("owner", namespace, propagation_policy="Background")

    def child_gone() -> bool:
        try:
            core.read_namespaced_config_map("child", namespace)
            return False
        except client.ApiException as exc:
            return exc.status == 404

    wait_for(child_gone, timeout=60, what="child ConfigMap garbage-collected")


def test_deleting_deployment_collects_replicasets_and_pods(
    kube_api, kubectl, namespace, test_image
):
    from kubernetes import client

    _apply(kubectl, _http_deployment(namespace, test_image, name="gc")[0])
    apps = client.AppsV1Api(kube_api)
    core = client.CoreV1Api(kube_api)
    wait_for(
        lambda: apps.list_namespaced_replica_set(namespace, label_selector="app=gc").items,
        timeout=60,
        what="ReplicaSet created",
    )
    wait_for(
        lambda: core.list_namespaced_pod(namespace, label_selector="app=gc").items,
        timeout=60,
        what="pod created",
    )
    apps.delete_namespaced_deployment("gc", namespace, propagation_policy="Background")
    wait_for(
        lambda: not apps.list_namespaced_replica_set(namespace, label_selector="app=gc").items,
        timeout=60,
        what="ReplicaSet collected",
    )
    wait_for(
        lambda: not core.list_namespaced_pod(namespace, label_selector="app=gc").items,
        timeout=90,
        what="pods collected",
    )
