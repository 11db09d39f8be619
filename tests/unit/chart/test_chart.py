"""The Helm chart: lint, render, schema, CRDs, RBAC, Pod Security, namespaced mode, names."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftloop_testkit.helm import (
    CHART,
    NAMESPACE,
    RELEASE,
    REPO,
    VALUE_SETS,
    HelmError,
    lint,
    render,
)

pytestmark = [pytest.mark.helm, pytest.mark.usefixtures("helm_bin")]

VALUE_IDS = sorted(VALUE_SETS)
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

#: The contract with the operator: (apiGroup, resource, verb) it may use on namespaced
#: resources. Anything more is a least-privilege regression; anything less breaks it.
NAMESPACED_GRANTS = {
    *(
        ("driftloop.dev", kind, verb)
        for kind in ("datasets", "trainingruns", "modelversions", "deployments")
        for verb in ("get", "list", "watch", "patch")
    ),
    *(
        ("driftloop.dev", f"{kind}/status", verb)
        for kind in ("datasets", "trainingruns", "modelversions", "deployments")
        for verb in ("get", "patch", "update")
    ),
    ("driftloop.dev", "trainingruns", "create"),
    ("driftloop.dev", "modelversions", "create"),
    *(("batch", "jobs", v) for v in ("get", "list", "watch", "create", "delete")),
    *(("", "pods", v) for v in ("get", "list", "watch")),
    # delete: a shadow candidate's Deployment and Service (promotion strategy shadow)
    *(("apps", "deployments", v) for v in ("get", "list", "watch", "create", "patch", "delete")),
    *(("", "services", v) for v in ("get", "create", "delete")),
    *(("autoscaling", "horizontalpodautoscalers", v) for v in ("get", "create", "patch", "delete")),
    *((g, "events", v) for g in ("", "events.k8s.io") for v in ("create", "patch")),
    ("", "events", "list"),
    ("", "events", "watch"),
    ("", "secrets", "get"),
    ("", "persistentvolumeclaims", "get"),
    *(("monitoring.coreos.com", "servicemonitors", v) for v in ("get", "create")),
}
LEASE_ROLE = f"{RELEASE}-leader-election"
CRD_GRANTS = {
    ("apiextensions.k8s.io", "customresourcedefinitions", v) for v in ("get", "list", "watch")
}
NAMESPACE_GRANTS = {("", "namespaces", v) for v in ("get", "list", "watch")}


@pytest.fixture(scope="module", params=VALUE_IDS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render(VALUE_SETS[request.param])


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def operator_deployment(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = of_kind(objects, "Deployment")
    return deployment


def grants(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def env_of(objects: list[dict[str, Any]]) -> dict[str, Any]:
    container = operator_deployment(objects)["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value") for e in container["env"]}


# --------------------------------------------------------------------------- lint, render


@pytest.mark.parametrize("name", VALUE_IDS)
def test_lint(name: str) -> None:
    out = lint(VALUE_SETS[name])
    assert "0 chart(s) failed" in out


def test_every_object_is_well_formed(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    assert objects
    seen = set()
    for obj in objects:
        assert {"apiVersion", "kind", "metadata"} <= obj.keys(), obj
        meta = obj["metadata"]
        key = (obj["kind"], meta.get("namespace"), meta["name"])
        assert key not in seen, f"duplicate object {key}"
        seen.add(key)
        if obj["kind"] != "CustomResourceDefinition":
            assert len(meta["name"]) <= 63, meta["name"]
            assert DNS_LABEL.match(meta["name"]), meta["name"]
        for value in (meta.get("labels") or {}).values():
            assert isinstance(value, str)
            assert len(value) <= 63
            assert LABEL_VALUE.match(value), value
        assert meta["labels"]["app.kubernetes.io/part-of"] == "driftloop"


def test_defaults_render_the_expected_objects() -> None:
    kinds = sorted(o["kind"] for o in render())
    assert kinds == sorted(
        ["ServiceAccount", "PersistentVolumeClaim", "ClusterRole", "ClusterRoleBinding"]
        + ["Service", "Deployment", "PodDisruptionBudget", "Role", "RoleBinding"]
        + ["CustomResourceDefinition"] * 4
    )


def test_replicas_elect_a_leader_on_their_own_lease_only() -> None:
    objects = render({"watchNamespaces": ["team-a"]})
    (role,) = [r for r in of_kind(objects, "Role") if r["metadata"]["namespace"] == NAMESPACE]
    assert role["metadata"]["name"] == LEASE_ROLE
    assert grants(role) == {
        ("coordination.k8s.io", "leases", verb) for verb in ("create", "get", "update")
    }
    named = [rule for rule in role["rules"] if "get" in rule["verbs"]]
    assert [rule.get("resourceNames") for rule in named] == [[RELEASE]]
    env = env_of(objects)
    assert env["DRIFTLOOP_LEADER_ELECTION"] == "true"
    assert env["DRIFTLOOP_LEASE_NAME"] == RELEASE
    spec = operator_deployment(objects)["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    anti = spec["template"]["spec"]["affinity"]["podAntiAffinity"]
    (term,) = anti["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    (pdb,) = of_kind(objects, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"] == spec["selector"]


def test_one_replica_without_election_is_recreated_and_has_no_lease() -> None:
    objects = render({"replicaCount": 1, "leaderElection": {"enabled": False}})
    assert not of_kind(objects, "PodDisruptionBudget")
    assert not [r for r in of_kind(objects, "Role") if "leader" in r["metadata"]["name"]]
    spec = operator_deployment(objects)["spec"]
    assert (spec["replicas"], spec["strategy"]) == (1, {"type": "Recreate"})
    assert "affinity" not in spec["template"]["spec"]
    assert env_of(objects)["DRIFTLOOP_LEADER_ELECTION"] == "false"


def test_replicas_without_leader_election_are_refused() -> None:
    with pytest.raises(HelmError, match=re.escape("replicaCount > 1 needs leaderElection.enabled")):
        render({"replicaCount": 3, "leaderElection": {"enabled": False}})


# --------------------------------------------------------------------------- values schema


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"bogus": 1}, "additional properties 'bogus' not allowed"),
        ({"image": {"tagg": "x"}}, "additional properties 'tagg' not allowed"),
        ({"artifacts": {"pvc": {"sise": "1Gi"}}}, "additional properties 'sise' not allowed"),
        ({"networkPolicy": {"enable": True}}, "additional properties 'enable' not allowed"),
        ({"logFormat": "xml"}, "logFormat"),
        ({"watchNamespaces": ["Not_A_Namespace"]}, "watchNamespaces"),
        ({"artifacts": {"s3": {"endpoint": "http://minio:9000"}}}, "bucket"),
    ],
)
def test_schema_rejects_bad_values(values: dict[str, Any], message: str) -> None:
    with pytest.raises(HelmError, match=re.escape(message)):
        render(values)


def test_schema_forbids_unknown_keys_everywhere() -> None:
    schema = yaml.safe_load((CHART / "values.schema.json").read_text())

    def walk(node: dict[str, Any], path: str) -> None:
        if node.get("type") == "object" and "properties" in node:
            assert node.get("additionalProperties") is False, path
            for key, child in node["properties"].items():
                walk(child, f"{path}.{key}")

    walk(schema, "values")


def test_values_yaml_matches_schema_keys() -> None:
    """Every key in values.yaml is declared (the schema would reject it) and vice versa."""
    schema = yaml.safe_load((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def keys(node: dict[str, Any], prefix: str = "") -> set[str]:
        out = set()
        for key, child in node.items():
            out.add(prefix + key)
            if isinstance(child, dict) and child and key not in PASSTHROUGH:
                out |= keys(child, f"{prefix}{key}.")
        return out

    def schema_keys(node: dict[str, Any], prefix: str = "") -> set[str]:
        out = set()
        for key, child in node.get("properties", {}).items():
            out.add(prefix + key)
            if child.get("additionalProperties") is False:
                out |= schema_keys(child, f"{prefix}{key}.")
        return out

    assert keys(values) == schema_keys(schema)


#: values.yaml maps whose keys are free-form (Kubernetes types, labels, annotations).
PASSTHROUGH = {
    *("annotations", "labels", "podAnnotations", "podLabels", "nodeSelector", "affinity"),
    *("requests", "limits"),
}


# --------------------------------------------------------------------------- CRDs


def test_rendered_crds_equal_crds_dir() -> None:
    rendered = {o["metadata"]["name"]: o for o in of_kind(render(), "CustomResourceDefinition")}
    sources = {
        (doc := yaml.safe_load(path.read_text()))["metadata"]["name"]: doc
        for path in sorted((REPO / "crds").glob("*.yaml"))
    }
    assert rendered.keys() == sources.keys()
    for name, source in sources.items():
        crd = rendered[name]
        assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
        assert source["metadata"]["labels"].items() <= crd["metadata"]["labels"].items()
        assert crd["spec"] == source["spec"], f"{name}: run `make generate`"


def test_crds_disabled_and_not_kept() -> None:
    assert not of_kind(render(VALUE_SETS["crds-disabled"]), "CustomResourceDefinition")
    crds = of_kind(render(VALUE_SETS["crds-not-kept"]), "CustomResourceDefinition")
    assert len(crds) == 4
    assert all("annotations" not in crd["metadata"] for crd in crds)


# --------------------------------------------------------------------------- RBAC


def test_rbac_has_no_wildcards(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    _, objects = rendered
    for role in of_kind(objects, "ClusterRole") + of_kind(objects, "Role"):
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], (role["metadata"]["name"], rule)
            assert "nonResourceURLs" not in rule
            assert rule["verbs"], rule


def test_cluster_wide_rbac_is_exactly_the_contract() -> None:
    objects = render()
    (role,) = of_kind(objects, "ClusterRole")
    assert grants(role) == NAMESPACED_GRANTS | CRD_GRANTS | NAMESPACE_GRANTS
    (binding,) = of_kind(objects, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    (account,) = of_kind(objects, "ServiceAccount")
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": account["metadata"]["name"],
            "namespace": account["metadata"]["namespace"],
        }
    ]
    # The one Role: the leader-election Lease (test_replicas_elect_a_leader_on_their_own_lease_only)
    assert [r["metadata"]["name"] for r in of_kind(objects, "Role")] == [LEASE_ROLE]


def test_optional_rules_follow_values() -> None:
    (role,) = of_kind(render(VALUE_SETS["minimal-rbac"]), "ClusterRole")
    resources = {resource for _, resource, _ in grants(role)}
    assert "servicemonitors" not in resources
    assert env_of(render(VALUE_SETS["minimal-rbac"]))["DRIFTLOOP_MODEL_SERVICEMONITORS"] == "false"


def test_every_rbac_rule_has_a_comment() -> None:
    """One comment per rule, in the templates (rendered YAML keeps them too)."""
    templates = CHART / "templates"
    for path in (
        templates / "_helpers.tpl",
        templates / "rbac.yaml",
        templates / "leaderelection.yaml",
    ):
        lines = [
            line.strip()
            for line in path.read_text().splitlines()
            if line.strip() and not line.strip().startswith("{{")
        ]
        for i, line in enumerate(lines):
            if line.startswith("- apiGroups:"):
                assert lines[i - 1].startswith("#"), f"{path.name}: rule without a comment: {line}"


def test_namespaced_mode_uses_roles_per_namespace() -> None:
    objects = render(VALUE_SETS["namespaced"])
    namespaces = {"team-a", "team-b"}
    roles = [r for r in of_kind(objects, "Role") if r["metadata"]["name"] != LEASE_ROLE]
    assert {r["metadata"]["namespace"] for r in roles} == namespaces
    for role in roles:
        assert grants(role) == NAMESPACED_GRANTS
    bindings = [b for b in of_kind(objects, "RoleBinding") if b["metadata"]["name"] != LEASE_ROLE]
    assert {b["metadata"]["namespace"] for b in bindings} == namespaces
    for binding in bindings:
        assert binding["roleRef"]["kind"] == "Role"
    # Only reading CRDs stays cluster-wide.
    (cluster_role,) = of_kind(objects, "ClusterRole")
    assert grants(cluster_role) == CRD_GRANTS
    (cluster_binding,) = of_kind(objects, "ClusterRoleBinding")
    assert cluster_binding["roleRef"]["name"] == cluster_role["metadata"]["name"]
    # The operator is told what to watch, and every watched namespace gets the artifact PVC.
    args = operator_deployment(objects)["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args == [
        "--namespace=team-a",
        "--namespace=team-b",
    ]
    pvcs = of_kind(objects, "PersistentVolumeClaim")
    assert {p["metadata"]["namespace"] for p in pvcs} == namespaces


# --------------------------------------------------------------------------- the operator pod


def test_operator_pod_meets_pod_security_restricted(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    """The fields Pod Security "restricted" checks (and a read-only root filesystem)."""
    _, objects = rendered
    pod = operator_deployment(objects)["spec"]["template"]["spec"]
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(field, False), field
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    for volume in pod["volumes"]:
        assert set(volume) - {"name"} <= {"emptyDir", "configMap", "secret", "projected"}
    for container in pod["containers"] + pod.get("initContainers", []):
        sc = container["securityContext"]
        assert sc["runAsNonRoot"] is True
        assert sc["runAsUser"] == 65532
        assert sc["allowPrivilegeEscalation"] is False
        assert sc.get("privileged", False) is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert not sc["capabilities"].get("add")
        assert sc["seccompProfile"]["type"] == "RuntimeDefault"
        assert sc["readOnlyRootFilesystem"] is True
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
        assert "hostPort" not in str(container.get("ports"))


def test_operator_deployment_shape() -> None:
    objects = render()
    deployment = operator_deployment(objects)
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "driftloop/operator:dev"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert "args" not in container  # driftloop-operator always runs kopf standalone
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"health": 8080, "http-metrics": 9090}
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]
    assert pod["serviceAccountName"] == of_kind(objects, "ServiceAccount")[0]["metadata"]["name"]
    env = env_of(objects)
    assert env["DRIFTLOOP_RUNTIME_IMAGE"] == "driftloop/runtime:dev"
    assert env["DRIFTLOOP_IMAGE_PULL_POLICY"] == "IfNotPresent"
    assert env["DRIFTLOOP_ARTIFACT_PVC"] == "driftloop-artifacts"
    assert env["DRIFTLOOP_LOG_FORMAT"] == "json"
    assert "DRIFTLOOP_PROMETHEUS_URL" not in env
    assert "DRIFTLOOP_ARTIFACT_S3_ENDPOINT" not in env
    (service,) = of_kind(objects, "Service")
    assert service["spec"]["ports"][0]["targetPort"] == "http-metrics"
    assert service["spec"]["selector"] == spec["selector"]["matchLabels"]
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()


def test_s3_and_prometheus_values_reach_the_operator() -> None:
    objects = render(VALUE_SETS["s3-artifacts"])
    env = env_of(objects)
    assert env["DRIFTLOOP_PROMETHEUS_URL"] == "http://prometheus.monitoring:9090"
    assert env["DRIFTLOOP_ARTIFACT_S3_ENDPOINT"] == "http://minio.storage:9000"
    assert env["DRIFTLOOP_ARTIFACT_S3_BUCKET"] == "models"
    assert env["DRIFTLOOP_ARTIFACT_S3_SECRET"] == "driftloop-s3"
    assert env["DRIFTLOOP_ARTIFACT_PVC"] == "models"
    assert not of_kind(objects, "PersistentVolumeClaim")


def test_servicemonitor_and_networkpolicy() -> None:
    objects = render(VALUE_SETS["observability"])
    (monitor,) = of_kind(objects, "ServiceMonitor")
    (service,) = of_kind(objects, "Service")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    (policy,) = of_kind(objects, "NetworkPolicy")
    selector = operator_deployment(objects)["spec"]["selector"]["matchLabels"]
    assert policy["spec"]["podSelector"]["matchLabels"] == selector
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    egress_ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert {53, 443, 6443, 9090} <= egress_ports
    assert (
        policy["spec"]["ingress"][0]["from"]
        == VALUE_SETS["observability"]["networkPolicy"]["metricsFrom"]
    )


# --------------------------------------------------------------------------- names


def test_release_names_longer_than_helm_allows_are_refused() -> None:
    with pytest.raises(HelmError, match="must not be longer than 53"):
        render(release="r" * 70)


@pytest.mark.parametrize(
    "values",
    [
        {"nameOverride": "n" * 63},
        {"fullnameOverride": "f" * 63},
        {"nameOverride": "a" * 30 + "-" + "b" * 32, "watchNamespaces": ["team-a"]},
    ],
    ids=["long-name", "long-fullname", "trailing-dash"],
)
def test_names_and_labels_are_truncated(values: dict[str, Any]) -> None:
    """A 53-character release (Helm's maximum) plus long overrides: every name <= 63."""
    release = ("r" * 52) + "x"
    for obj in render(values, release=release):
        meta = obj["metadata"]
        if obj["kind"] != "CustomResourceDefinition":
            assert len(meta["name"]) <= 63, meta["name"]
            assert DNS_LABEL.match(meta["name"]), meta["name"]
        for value in meta["labels"].values():
            assert len(value) <= 63, value
            assert LABEL_VALUE.match(value), value


def test_label_helpers_truncate_70_characters() -> None:
    """70-character names (through the overrides, as Helm refuses such a release name)."""
    full = "a" * 62 + "-" + "b" * 7  # truncation at 63 leaves a trailing "-"
    objects = render({"fullnameOverride": full, "nameOverride": "n" * 70})
    deployment = operator_deployment(objects)
    assert deployment["metadata"]["name"] == "a" * 62
    assert deployment["metadata"]["labels"]["app.kubernetes.io/name"] == "n" * 63
    (service,) = of_kind(objects, "Service")
    assert service["metadata"]["name"] == "a" * 55 + "-metrics"


def test_notes_render(tmp_path: Path) -> None:
    """NOTES.txt renders for the main value sets (via a copy of the chart that exposes it
    as a ConfigMap: `helm install --dry-run` would need a reachable cluster)."""
    chart = tmp_path / "driftloop"
    shutil.copytree(CHART, chart)
    shutil.copy(chart / "templates" / "NOTES.txt", chart / "notes.txt")
    (chart / "templates" / "zz-notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\n"
        'data: {notes: {{ tpl (.Files.Get "notes.txt") . | toJson }}}\n'
    )
    for name in ("default", "namespaced", "crds-disabled", "s3-artifacts"):
        (notes,) = [o for o in render(VALUE_SETS[name], chart=chart) if o["kind"] == "ConfigMap"]
        text = notes["data"]["notes"]
        assert "kubectl get driftloop" in text
        assert ("team-a, team-b" in text) == (name == "namespaced")
        assert ("crds.enabled=false" in text) == (name == "crds-disabled")
        # The upload command for the artifact store in use.
        if name == "s3-artifacts":
            assert "kubectl driftloop upload iris.csv --to s3://models/data/iris.csv" in text
            assert "--secret driftloop-s3" in text
        else:
            assert "kubectl driftloop upload iris.csv --to data/iris.csv" in text
