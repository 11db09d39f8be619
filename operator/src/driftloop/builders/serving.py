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


def selector(owner: Owner) -> dict[str, str]:
    """Stable across versions, so a new version rolls the same ReplicaSets' pods."""
    return {naming.LABEL_INSTANCE: owner.name, naming.LABEL_COMPONENT: "predictor"}


def pods_selector(owner: Owner, version: int) -> str:
    """Label selector of the predictor pods serving model version ``version``."""
    labels = {**selector(owner), naming.LABEL_MODEL_VERSION: str(version)}
    return ",".join(f"{key}={value}" for key, value in labels.items())


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
        workers=spec.workers,
        port=contract.SERVING_PORT,
        scratch_dir=contract.SCRATCH_MOUNT,
    )


def predictor_deployment(
    owner: Owner, spec: DeploymentSpec, served: ServedVersion, config: OperatorConfig
) -> Manifest:
    lbls = labels(
        "predictor",
        owner.name,
        **{
            naming.LABEL_DEPLOYMENT: owner.name,
            naming.LABEL_MODEL: served.model,
            naming.LABEL_MODEL_VERSION: str(served.version),
        },
    )
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
        ],
        "ports": [
            {
                "name": contract.SERVING_PORT_NAME,
                "containerPort": contract.SERVING_PORT,
                "protocol": "TCP",
            }
        ],
        "readinessProbe": _probe(contract.PATH_READY, period=2, failures=2),
        "livenessProbe": _probe(contract.PATH_LIVE, period=10, failures=3),
        "startupProbe": _probe(contract.PATH_LIVE, period=2, failures=60),
        "resources": resources(spec.resources),
        "securityContext": container_security_context(),
        "volumeMounts": volume_mounts(served.artifact_uri, read_only=True),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(naming.predictor(owner.name), owner, owner.namespace, lbls),
        "spec": {
            "replicas": spec.replicas,
            "selector": {"matchLabels": selector(owner)},
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


def _predictor_metadata(owner: Owner) -> Manifest:
    """Metadata of the predictor's Service and ServiceMonitor (one name, one label set)."""
    return metadata(
        naming.predictor(owner.name),
        owner,
        owner.namespace,
        labels("predictor", owner.name, **{naming.LABEL_DEPLOYMENT: owner.name}),
    )


def predictor_service(owner: Owner) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _predictor_metadata(owner),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(owner),
            "ports": [
                {
                    "name": contract.SERVING_PORT_NAME,
                    "port": contract.SERVING_PORT,
                    "targetPort": contract.SERVING_PORT_NAME,
                    "protocol": "TCP",
                }
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
