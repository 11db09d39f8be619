"""Operator-wide settings, read once from the environment (Helm values set them).

``driftloop.__main__`` builds the one :class:`OperatorConfig` at start; nothing
reads the environment at import.
"""

from __future__ import annotations

import os
import re
import socket
import uuid
from dataclasses import dataclass, field

import driftloop_contract as contract

#: S3 bucket naming rules (3-63 lowercase letters, digits, dots, hyphens).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]")


def _flag(value: str | None, default: bool) -> bool:
    if value is None or not value.strip():
        return default
    return value.strip().lower() not in ("false", "0", "no", "off")


def _identity(pod_name: str | None) -> str:
    """Unique per process, as client-go's ``hostname_uuid``: a restarted container must
    not mistake its predecessor's record for its own."""
    return f"{pod_name or socket.gethostname()}_{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class OperatorConfig:
    runtime_image: str = "driftloop/runtime:dev"
    image_pull_policy: str = "IfNotPresent"
    artifact_pvc: str = "driftloop-artifacts"
    prometheus_url: str | None = None
    #: Every object is reconciled again at least this often (seconds): a safety net
    #: under the watch events that drive reconciles.
    resync_interval: float = 600.0
    #: Reconcile workers: at most this many reconciles run at once.
    workers: int = 4
    #: Client-side rate limit of the reconcilers' API requests (token bucket; Flux's
    #: controllers use the same 50 / 100, controller-runtime's bare default is 20 / 30).
    api_qps: float = 50.0
    api_burst: int = 100
    #: A finished TrainingRun's Job (and its pods) is deleted this long after it ended.
    finished_job_retention: float = 3600.0
    watch_namespaces: tuple[str, ...] = field(default=())
    #: Port of the operator's own /metrics; 0 turns it off.
    metrics_port: int = 9090
    #: kopf's log format: plain, json or full.
    log_format: str = "plain"
    #: The operator's /healthz (the chart's probes); None turns it off.
    liveness_endpoint: str | None = "http://0.0.0.0:8080/healthz"
    #: Run only while holding a Lease (driftloop.leadership): several replicas, one acts.
    leader_election: bool = False
    #: The Lease: ``lease_namespace/lease_name`` (namespace default: the pod's own).
    lease_name: str = "driftloop-operator"
    lease_namespace: str = "default"
    #: This process in the Lease's holderIdentity (default: pod name + a random suffix).
    identity: str = ""
    verbose: bool = False
    #: Create a ServiceMonitor per served model when the Prometheus Operator's CRD exists.
    model_service_monitors: bool = True
    #: S3 artifact mode (set by the bucket): artifacts live under s3://<bucket>/ instead
    #: of on the PVC; pods get the endpoint and the credentials of ``artifact_s3_secret``.
    artifact_s3_bucket: str | None = None
    #: Endpoint of an S3-compatible server; None means AWS S3 itself.
    artifact_s3_endpoint: str | None = None
    #: Secret (in each namespace running models) with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY.
    artifact_s3_secret: str | None = None

    def __post_init__(self) -> None:
        # Fail at start, not in every pod: half an S3 configuration is a mistake.
        if self.artifact_s3_bucket and not self.artifact_s3_secret:
            raise ValueError(
                "DRIFTLOOP_ARTIFACT_S3_BUCKET is set but DRIFTLOOP_ARTIFACT_S3_SECRET is not: "
                "name the Secret holding AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            )
        if (self.artifact_s3_endpoint or self.artifact_s3_secret) and not self.artifact_s3_bucket:
            raise ValueError(
                "DRIFTLOOP_ARTIFACT_S3_ENDPOINT/_SECRET are set but DRIFTLOOP_ARTIFACT_S3_BUCKET "
                "is not"
            )
        if self.artifact_s3_bucket and not _BUCKET.fullmatch(self.artifact_s3_bucket):
            raise ValueError(
                f"DRIFTLOOP_ARTIFACT_S3_BUCKET {self.artifact_s3_bucket!r} is not a bucket name"
            )

    @property
    def s3(self) -> bool:
        """Artifacts live in an S3-compatible store (else on the PVC)."""
        return bool(self.artifact_s3_bucket)

    @property
    def artifact_root(self) -> str:
        """Root of every artifact location the operator hands to the runtime."""
        if self.artifact_s3_bucket:
            return contract.S3_SCHEME + self.artifact_s3_bucket
        return contract.ARTIFACT_MOUNT

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> OperatorConfig:
        env = dict(os.environ) if env is None else env
        namespaces = tuple(
            ns.strip() for ns in env.get("DRIFTLOOP_WATCH_NAMESPACES", "").split(",") if ns.strip()
        )
        return cls(
            runtime_image=env.get("DRIFTLOOP_RUNTIME_IMAGE", cls.runtime_image),
            image_pull_policy=env.get("DRIFTLOOP_IMAGE_PULL_POLICY", cls.image_pull_policy),
            artifact_pvc=env.get("DRIFTLOOP_ARTIFACT_PVC", cls.artifact_pvc),
            prometheus_url=env.get("DRIFTLOOP_PROMETHEUS_URL") or None,
            resync_interval=float(env.get("DRIFTLOOP_RESYNC_INTERVAL", cls.resync_interval)),
            workers=int(env.get("DRIFTLOOP_WORKERS", cls.workers)),
            api_qps=float(env.get("DRIFTLOOP_API_QPS", cls.api_qps)),
            api_burst=int(env.get("DRIFTLOOP_API_BURST", cls.api_burst)),
            finished_job_retention=float(
                env.get("DRIFTLOOP_FINISHED_JOB_RETENTION", cls.finished_job_retention)
            ),
            watch_namespaces=namespaces,
            metrics_port=int(env.get("DRIFTLOOP_METRICS_PORT", cls.metrics_port)),
            log_format=env.get("DRIFTLOOP_LOG_FORMAT", cls.log_format),
            leader_election=_flag(env.get("DRIFTLOOP_LEADER_ELECTION"), cls.leader_election),
            lease_name=env.get("DRIFTLOOP_LEASE_NAME", cls.lease_name),
            lease_namespace=env.get("POD_NAMESPACE") or cls.lease_namespace,
            identity=env.get("DRIFTLOOP_IDENTITY") or _identity(env.get("POD_NAME")),
            model_service_monitors=_flag(env.get("DRIFTLOOP_MODEL_SERVICEMONITORS"), True),
            artifact_s3_bucket=env.get("DRIFTLOOP_ARTIFACT_S3_BUCKET") or None,
            artifact_s3_endpoint=env.get("DRIFTLOOP_ARTIFACT_S3_ENDPOINT") or None,
            artifact_s3_secret=env.get("DRIFTLOOP_ARTIFACT_S3_SECRET") or None,
        )
