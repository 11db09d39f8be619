"""apps/v1 Deployment + Service (+ ServiceMonitor) serving one model version."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import driftloop_contract as contract
from driftloop import naming
from driftloop.api import DeploymentSpec
from driftloop.config import OperatorConfig

from .common import (
    Manifest,
    Owner,
    container_security_context,
    env,
    labels,
    metadata,
    pod_security_context,
    resources,
    store_env,
    volume_mounts,
    volumes,
)


@dataclass(frozen=True)
class ServedVersion:
    """The concrete ModelVersion a Deployment serves."""

    name: str
    model: str
    version: int
    artifact_uri: str
    sha256: str

    @classmethod
    def of(cls, model_version: Mapping[str, Any]) -> ServedVersion:
        """The served view of a ModelVersion object."""
        spec = model_version["spec"]
        return cls(
            name=model_version["metadata"]["name"],
            model=spec["model"],
            version=int(spec["version"]),
            artifact_uri=spec["artifact"]["uri"],
            sha256=spec["artifact"]["sha256"],
        )


#: The component label of the serving pods, and of a candidate's shadowing live traffic.
PREDICTOR, SHADOW = "predictor", "shadow"


def selector(owner: Owner, component: str = PREDICTOR) -> dict[str, str]:
    """Stable across versions, so a new version rolls the same ReplicaSets' pods."""
    return {naming.LABEL_INSTANCE: owner.name, naming.LABEL_COMPONENT: component}


def _name(owner: Owner, component: str) -> str:
    return naming.shadow(owner.name) if component == SHADOW else naming.predictor(owner.name)


def pods_selector(owner: Owner, version: int) -> str:
    """Label selector of the predictor pods serving model version ``version``."""
    labels = {**selector(owner), naming.LABEL_MODEL_VERSION: str(version)}
    return ",".join(f"{key}={value}" for key, value in labels.items())


#: How long a terminating predictor pod keeps serving before it stops (endpoint removal
#: reaches every node's kube-proxy within a few seconds).
PRE_STOP_SECONDS = 5


def _probe(path: str, period: int, failures: int) -> Manifest:
    return {
        "httpGet": {"path": path, "port": contract.SERVING_PORT_NAME},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def server_config(
    owner: Owner, spec: DeploymentSpec, served: ServedVersion
) -> contract.ServerConfig:
    """The model server's configuration (its env) for one served version."""
    return contract.ServerConfig(
        model_name=served.model,
        model_version=str(served.version),
        artifact_uri=served.artifact_uri,
        artifact_sha256=served.sha256,
        deployment=owner.name,
        drift_method=contract.DriftMethod(spec.monitoring.method),
        drift_window=spec.monitoring.window,
        drift_max_rows_per_second=(
            spec.monitoring.max_rows_per_second or contract.DEFAULT_DRIFT_MAX_ROWS_PER_SECOND
        ),
        drift_false_alarm_rate=(
            spec.monitoring.false_alarm_rate or contract.DEFAULT_FALSE_ALARM_RATE
        ),
        workers=spec.workers,
        port=contract.SERVING_PORT,
        scratch_dir=contract.SCRATCH_MOUNT,
    )


def peers_seed(service: Manifest | None) -> str | None:
    """host:port through which the replicas find each other: the Service's ClusterIP
    (no cluster DNS needed), or None while it has none (or is headless)."""
    ip = ((service or {}).get("spec") or {}).get("clusterIP")
    if not ip or ip == "None":
        return None
    return f"[{ip}]:{contract.SERVING_PORT}" if ":" in ip else f"{ip}:{contract.SERVING_PORT}"


def predictor_deployment(
    owner: Owner,
    spec: DeploymentSpec,
    served: ServedVersion,
    config: OperatorConfig,
    peers_seed: str | None = None,
    *,
    replicas: int | None = None,
    canary: bool = False,
    shadow_target: str | None = None,
    component: str = PREDICTOR,
) -> Manifest:
    """The predictor; ``peers_seed`` (see :func:`peers_seed`) lets a feedback call reach
    the replica that made the prediction, whichever replica takes it.  ``shadow_target``
    (host:port of the shadow Service): mirror live requests there.

    ``replicas`` overrides ``spec.replicas`` (a canary step's split).  ``canary``: the
    candidate's own predictor, ``<name>-canary``.  Its pods carry the same instance and
    component labels, so the one Service sends them their share of the connections;
    the track label keeps its selector apart from the serving predictor's ReplicaSets.
    ``component`` ``shadow``: the same server for a candidate shadowing live traffic, one
    replica, beside the predictor (not behind its Service).
    """

    extra = {naming.LABEL_TRACK: naming.TRACK_CANARY} if canary else {}
    lbls = labels(
        component,
        owner.name,
        **{
            naming.LABEL_DEPLOYMENT: owner.name,
            naming.LABEL_MODEL: served.model,
            naming.LABEL_MODEL_VERSION: str(served.version),
            **extra,
        },
    )
    count = spec.replicas if replicas is None else replicas
    name = naming.canary_predictor(owner.name) if canary else _name(owner, component)
    container: Manifest = {
        "name": "server",
        "image": spec.image or config.runtime_image,
        "imagePullPolicy": config.image_pull_policy,
        "args": [contract.COMMAND_SERVE],
        "env": [
            *env(server_config(owner, spec, served).to_env()),
            # The artifact of the version served decides: a ModelVersion registered
            # before a switch to S3 still serves from the PVC.
            *store_env(config, served.artifact_uri),
            # where the other replicas reach this one (feedback forwarding)
            {
                "name": contract.ENV_POD_IP,
                "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
            },
            *env({contract.ENV_PEERS_SEED: peers_seed} if peers_seed else {}),
            *env(_shadow_env(spec, shadow_target)),
        ],
        "ports": [
            {
                "name": contract.SERVING_PORT_NAME,
                "containerPort": contract.SERVING_PORT,
                "protocol": "TCP",
            },
            {
                "name": contract.GRPC_PORT_NAME,
                "containerPort": contract.GRPC_PORT,
                "protocol": "TCP",
            },
        ],
        "readinessProbe": _probe(contract.PATH_READY, period=2, failures=2),
        "livenessProbe": _probe(contract.PATH_LIVE, period=10, failures=3),
        "startupProbe": _probe(contract.PATH_LIVE, period=2, failures=60),
        # A pod going away (a scale-down, a canary step, a rollout) keeps serving until
        # kube-proxy has taken it out of the Service: connections made meanwhile are
        # answered, not reset.  SIGTERM (graceful stop) only follows the sleep.
        "lifecycle": {"preStop": {"sleep": {"seconds": PRE_STOP_SECONDS}}},
        "resources": resources(spec.resources),
        "securityContext": container_security_context(),
        "volumeMounts": volume_mounts(served.artifact_uri, read_only=True),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(name, owner, owner.namespace, lbls),
        "spec": {
            # With autoscaling the HPA owns the count: not applied, so the two never fight.
            **_replicas(spec, component, count),
            "selector": {"matchLabels": {**selector(owner, component), **extra}},
            # Zero downtime: a new version's pod must be ready before an old one goes.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "revisionHistoryLimit": 5,
            "template": {
                "metadata": {
                    "labels": dict(lbls),
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(contract.SERVING_PORT),
                        "prometheus.io/path": contract.PATH_METRICS,
                    },
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": pod_security_context(),
                    "containers": [container],
                    "volumes": volumes(config, served.artifact_uri, read_only=True),
                },
            },
        },
    }


def _replicas(spec: DeploymentSpec, component: str, count: int) -> Manifest:
    if component == SHADOW:
        return {"replicas": 1}  # it answers copies only: one pod judges the version
    return {} if spec.autoscaling else {"replicas": count}


def _shadow_env(spec: DeploymentSpec, target: str | None) -> dict[str, str]:
    if not target:
        return {}
    tolerance = spec.promotion.shadow_analysis.tolerance
    return {contract.ENV_SHADOW_TARGET: target, contract.ENV_SHADOW_TOLERANCE: f"{tolerance:g}"}


def _predictor_metadata(owner: Owner, component: str = PREDICTOR) -> Manifest:
    """Metadata of the predictor's Service and ServiceMonitor (one name, one label set)."""
    return metadata(
        _name(owner, component),
        owner,
        owner.namespace,
        labels(component, owner.name, **{naming.LABEL_DEPLOYMENT: owner.name}),
    )


#: The Pods metric targetRequestsPerSecond scales on (served by a custom metrics adapter).
RPS_METRIC = "driftloop_inference_requests_per_second"
DEFAULT_CPU_UTILIZATION = 80


def predictor_hpa(owner: Owner, spec: DeploymentSpec) -> Manifest | None:
    """The autoscaling/v2 HorizontalPodAutoscaler of the predictor, or None without
    ``spec.autoscaling``."""
    scaling = spec.autoscaling
    if scaling is None:
        return None
    if scaling.target_requests_per_second is not None:
        metric: Manifest = {
            "type": "Pods",
            "pods": {
                "metric": {"name": RPS_METRIC},
                "target": {
                    "type": "AverageValue",
                    "averageValue": f"{round(scaling.target_requests_per_second * 1000)}m",
                },
            },
        }
    else:
        metric = {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {
                    "type": "Utilization",
                    "averageUtilization": scaling.target_cpu_utilization or DEFAULT_CPU_UTILIZATION,
                },
            },
        }
    hpa_spec: Manifest = {
        "scaleTargetRef": {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": naming.predictor(owner.name),
        },
        "minReplicas": scaling.min_replicas,
        "maxReplicas": scaling.max_replicas,
        "metrics": [metric],
    }
    if scaling.scale_down_stabilization_seconds is not None:
        hpa_spec["behavior"] = {
            "scaleDown": {"stabilizationWindowSeconds": scaling.scale_down_stabilization_seconds}
        }
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _predictor_metadata(owner),
        "spec": hpa_spec,
    }


def predictor_service(owner: Owner, component: str = PREDICTOR) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _predictor_metadata(owner, component),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(owner, component),
            "ports": [
                {
                    "name": contract.SERVING_PORT_NAME,
                    "port": contract.SERVING_PORT,
                    "targetPort": contract.SERVING_PORT_NAME,
                    "protocol": "TCP",
                },
                {
                    "name": contract.GRPC_PORT_NAME,
                    "port": contract.GRPC_PORT,
                    "targetPort": contract.GRPC_PORT_NAME,
                    "protocol": "TCP",
                    "appProtocol": "kubernetes.io/h2c",
                },
            ],
        },
    }


def service_monitor(owner: Owner, interval: str = "15s") -> Manifest:
    """For clusters running the Prometheus Operator."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": _predictor_metadata(owner),
        "spec": {
            "selector": {"matchLabels": {naming.LABEL_DEPLOYMENT: owner.name}},
            "endpoints": [
                {
                    "port": contract.SERVING_PORT_NAME,
                    "path": contract.PATH_METRICS,
                    "interval": interval,
                }
            ],
        },
    }


def service_url(owner: Owner, model: str) -> str:
    host = f"{naming.predictor(owner.name)}.{owner.namespace}.svc"
    return f"http://{host}:{contract.SERVING_PORT}/v2/models/{model}"
