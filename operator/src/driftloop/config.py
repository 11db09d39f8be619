"""Operator-wide settings, read once from the environment (Helm values set them).

``driftloop.__main__`` builds the one :class:`OperatorConfig` at start; nothing
reads the environment at import.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import driftloop_contract as contract

#: S3 bucket naming rules (3-63 lowercase letters, digits, dots, hyphens).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]")


@dataclass(frozen=True)
class OperatorConfig:
    runtime_image: str = "driftloop/runtime:dev"
    image_pull_policy: str = "IfNotPresent"
    artifact_pvc: str = "driftloop-artifacts"
    prometheus_url: str | None = None
    #: How often unfinished objects are re-checked (seconds).
    poll_interval: float = 5.0
    watch_namespaces: tuple[str, ...] = field(default=())
    #: Port of the operator's own /metrics; 0 turns it off.
    metrics_port: int = 9090
    #: kopf's log format: plain, json or full.
    log_format: str = "plain"
    #: kopf's health endpoint (the chart's probes); None turns it off.
    liveness_endpoint: str | None = "http://0.0.0.0:8080/healthz"
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
            poll_interval=float(env.get("DRIFTLOOP_POLL_INTERVAL", cls.poll_interval)),
            watch_namespaces=namespaces,
            metrics_port=int(env.get("DRIFTLOOP_METRICS_PORT", cls.metrics_port)),
            log_format=env.get("DRIFTLOOP_LOG_FORMAT", cls.log_format),
            model_service_monitors=env.get("DRIFTLOOP_MODEL_SERVICEMONITORS", "true").lower()
            not in ("false", "0", "no"),
            artifact_s3_bucket=env.get("DRIFTLOOP_ARTIFACT_S3_BUCKET") or None,
            artifact_s3_endpoint=env.get("DRIFTLOOP_ARTIFACT_S3_ENDPOINT") or None,
            artifact_s3_secret=env.get("DRIFTLOOP_ARTIFACT_S3_SECRET") or None,
        )
