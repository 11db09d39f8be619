"""Operator-wide settings, read once from the environment (Helm values set them)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass(frozen=True)
class OperatorConfig:
    runtime_image: str = "driftloop/runtime:dev"
    image_pull_policy: str = "IfNotPresent"
    artifact_pvc: str = "driftloop-artifacts"
    prometheus_url: str | None = None
    #: How often unfinished objects are re-checked (seconds).
    poll_interval: float = 5.0
    watch_namespaces: tuple[str, ...] = field(default=())
    metrics_port: int = 9090
    #: Create a ServiceMonitor per served model when the Prometheus Operator's CRD exists.
    model_service_monitors: bool = True

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
            model_service_monitors=env.get("DRIFTLOOP_MODEL_SERVICEMONITORS", "true").lower()
            not in ("false", "0", "no"),
        )
