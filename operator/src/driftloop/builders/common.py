"""Pieces every child object shares: owner references, labels, hardened pods."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import driftloop_contract as contract
from driftloop import naming
from driftloop.api import API_VERSION, MANAGED_BY, ResourceRequirements
from driftloop.config import OperatorConfig

Manifest = dict[str, Any]

RUN_AS = 65532
ARTIFACTS_VOLUME = "artifacts"
SCRATCH_VOLUME = "scratch"
DEFAULT_RESOURCES: Manifest = {
    "requests": {"cpu": "100m", "memory": "256Mi"},
    "limits": {"memory": "2Gi"},
}


@dataclass(frozen=True)
class Owner:
    """The custom resource a child belongs to."""

    kind: str
    name: str
    namespace: str
    uid: str

    def reference(self) -> Manifest:
        return {
            "apiVersion": API_VERSION,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


def labels(component: str, instance: str, **extra: str) -> dict[str, str]:
    return {
        naming.LABEL_NAME: "driftloop",
        naming.LABEL_INSTANCE: instance,
        naming.LABEL_COMPONENT: component,
        naming.LABEL_PART_OF: "driftloop",
        naming.LABEL_MANAGED_BY: MANAGED_BY,
        **extra,
    }


def metadata(name: str, owner: Owner | None, namespace: str, lbls: dict[str, str]) -> Manifest:
    meta: Manifest = {"name": name, "namespace": namespace, "labels": dict(lbls)}
    if owner is not None:
        meta["ownerReferences"] = [owner.reference()]
    return meta


def pod_security_context() -> Manifest:
    """Pod Security Standard "restricted", at pod level."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> Manifest:
    """Pod Security Standard "restricted", at container level; root fs read-only."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def in_object_store(location: str) -> bool:
    """An artifact location (dir, URI or root) in an S3-compatible store, not on the PVC."""
    return location.startswith(contract.S3_SCHEME)


def volumes(config: OperatorConfig, location: str, *, read_only: bool) -> list[Manifest]:
    """The artifact PVC when ``location`` is on it, and always the /tmp scratch emptyDir.

    In S3 mode no volume holds artifacts: the runtime stages them in /tmp.
    """
    out: list[Manifest] = []
    if not in_object_store(location):
        out.append(
            {
                "name": ARTIFACTS_VOLUME,
                "persistentVolumeClaim": {"claimName": config.artifact_pvc, "readOnly": read_only},
            }
        )
    out.append({"name": SCRATCH_VOLUME, "emptyDir": {"sizeLimit": "1Gi"}})
    return out


def volume_mounts(location: str, *, read_only: bool) -> list[Manifest]:
    out: list[Manifest] = []
    if not in_object_store(location):
        out.append(
            {"name": ARTIFACTS_VOLUME, "mountPath": contract.ARTIFACT_MOUNT, "readOnly": read_only}
        )
    out.append({"name": SCRATCH_VOLUME, "mountPath": contract.SCRATCH_MOUNT})
    return out


def store_env(config: OperatorConfig, location: str) -> list[Manifest]:
    """Endpoint and credentials for an ``s3://`` location; nothing for the PVC.

    The keys come from the Secret by reference, so they never appear in a manifest,
    and a rotated Secret reaches the next pod without the operator re-rendering it.
    """
    if not in_object_store(location):
        return []
    out: list[Manifest] = []
    if config.artifact_s3_endpoint:
        out.append({"name": contract.ENV_S3_ENDPOINT, "value": config.artifact_s3_endpoint})
    if config.artifact_s3_secret:
        out.extend(
            {
                "name": key,
                "valueFrom": {"secretKeyRef": {"name": config.artifact_s3_secret, "key": key}},
            }
            for key in contract.S3_SECRET_KEYS
        )
    return out


def resources(spec: ResourceRequirements | None) -> Manifest:
    if spec is None or not (spec.requests or spec.limits):
        return json.loads(json.dumps(DEFAULT_RESOURCES))  # type: ignore[no-any-return]
    out: Manifest = {}
    if spec.requests:
        out["requests"] = {k: str(v) for k, v in spec.requests.items()}
    if spec.limits:
        out["limits"] = {k: str(v) for k, v in spec.limits.items()}
    return out


def env(values: dict[str, str]) -> list[Manifest]:
    return [{"name": k, "value": v} for k, v in values.items()]


def spec_hash(manifest: Manifest) -> str:
    """Stable digest of a manifest, stored as an annotation to skip no-op updates."""
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:16]
