"""The model server: its port, its OIP v2 paths and its configuration.

``driftloop-runtime serve`` takes its whole configuration from the environment;
:class:`ServerConfig` is that environment, typed.  The operator renders it with
:meth:`ServerConfig.to_env`, the runtime reads it back with
:meth:`ServerConfig.from_env`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .drift import (
    DEFAULT_DRIFT_MAX_ROWS_PER_SECOND,
    DEFAULT_DRIFT_METHOD,
    DEFAULT_DRIFT_WINDOW,
    DEFAULT_FALSE_ALARM_RATE,
    DriftMethod,
)
from .layout import ENV_SCRATCH_DIR, S3_SCHEME, SCRATCH_MOUNT

#: ``driftloop-runtime serve``.
COMMAND_SERVE: Final = "serve"

#: HTTP port of the model server (OIP v2 REST + /metrics).
SERVING_PORT: Final = 8080
SERVING_PORT_NAME: Final = "http"
#: gRPC port of the model server (the Open Inference Protocol's gRPC service).
GRPC_PORT: Final = 8081
GRPC_PORT_NAME: Final = "grpc"

# OIP v2 REST paths.
PATH_LIVE: Final = "/v2/health/live"
PATH_READY: Final = "/v2/health/ready"
PATH_METRICS: Final = "/metrics"
#: Runtime extension to OIP v2: POST ground-truth labels for a past request id:
#:   {"id": "<response id>", "labels": [...]}  (one label per row, in order).
PATH_FEEDBACK_SUFFIX: Final = "/feedback"
#: Runtime extension: replicas exchange their peer tables here (see the runtime's peers).
PATH_PEERS: Final = "/v2/driftloop/peers"
#: Set on a feedback call one replica forwards to the others: never forwarded again.
HEADER_FORWARDED: Final = "x-driftloop-forwarded"

# The environment of ``serve`` (fields of ServerConfig).
ENV_MODEL_NAME: Final = "DRIFTLOOP_MODEL_NAME"
ENV_MODEL_VERSION: Final = "DRIFTLOOP_MODEL_VERSION"
ENV_ARTIFACT_URI: Final = "DRIFTLOOP_ARTIFACT_URI"
ENV_ARTIFACT_SHA256: Final = "DRIFTLOOP_ARTIFACT_SHA256"
ENV_DEPLOYMENT: Final = "DRIFTLOOP_DEPLOYMENT"
ENV_DRIFT_METHOD: Final = "DRIFTLOOP_DRIFT_METHOD"
ENV_DRIFT_WINDOW: Final = "DRIFTLOOP_DRIFT_WINDOW"
#: Live rows a second the pod counts into drift; a uniform sample of requests above it.
ENV_DRIFT_MAX_ROWS_PER_SECOND: Final = "DRIFTLOOP_DRIFT_MAX_ROWS_PER_SECOND"
#: Target false alarms per evaluation of the calibrated thresholds (all features).
ENV_DRIFT_FALSE_ALARM_RATE: Final = "DRIFTLOOP_DRIFT_FALSE_ALARM_RATE"
ENV_WORKERS: Final = "DRIFTLOOP_WORKERS"
ENV_PORT: Final = "DRIFTLOOP_PORT"
#: "false"/"0"/"no"/"off" disables drift tracking (benchmarks); default on.
ENV_DRIFT_ENABLED: Final = "DRIFTLOOP_DRIFT_ENABLED"
#: Largest accepted inference request body in bytes (413 above it).
ENV_MAX_REQUEST_BYTES: Final = "DRIFTLOOP_MAX_REQUEST_BYTES"
#: Address to listen on (tests bind 127.0.0.1).
ENV_HOST: Final = "DRIFTLOOP_HOST"
#: Port of the gRPC service (0 = any free port, logged).
ENV_GRPC_PORT: Final = "DRIFTLOOP_GRPC_PORT"
#: "false"/"0"/"no"/"off" turns the gRPC service off; default on.
ENV_GRPC_ENABLED: Final = "DRIFTLOOP_GRPC_ENABLED"
#: Requests one worker holds (running or waiting) before it answers 503 + Retry-After
#: (backpressure); 0 = unbounded.
ENV_MAX_QUEUE: Final = "DRIFTLOOP_MAX_QUEUE"
#: This pod's IP (the downward API's status.podIP): the address its peers reach it at.
ENV_POD_IP: Final = "DRIFTLOOP_POD_IP"
#: host:port through which replicas find each other (the predictor Service's ClusterIP).
ENV_PEERS_SEED: Final = "DRIFTLOOP_PEERS_SEED"
#: host:port of a shadow server (the candidate of a shadow promotion): a copy of each
#: inference request goes to it off the caller's path, its answer is compared and dropped.
ENV_SHADOW_TARGET: Final = "DRIFTLOOP_SHADOW_TARGET"
#: Copies one worker holds for the shadow; a copy offered to a full queue is dropped
#: (and counted), never waited for.
ENV_SHADOW_QUEUE: Final = "DRIFTLOOP_SHADOW_QUEUE"
#: Regressors: two predictions agree within this relative tolerance (|a - b| <= t *
#: max(1, |a|)); classifiers: the same class.
ENV_SHADOW_TOLERANCE: Final = "DRIFTLOOP_SHADOW_TOLERANCE"

DEFAULT_WORKERS: Final = 1
DEFAULT_MAX_REQUEST_BYTES: Final = 8 * 1024 * 1024
DEFAULT_HOST: Final = "0.0.0.0"
DEFAULT_MAX_QUEUE: Final = 64
DEFAULT_SHADOW_QUEUE: Final = 256
DEFAULT_SHADOW_TOLERANCE: Final = 0.05
#: Set on a request a serving pod mirrors to the shadow (tells copies from callers' requests).
HEADER_SHADOW: Final = "x-driftloop-shadow"
#: Seconds a shed request is told to wait (Retry-After), and a worker reports itself
#: not ready after it last shed one.
RETRY_AFTER_S: Final = 1

#: host:port or [ipv6]:port.
_HOST_PORT = r"^([^\s/:\[\]]+|\[[0-9a-fA-F:.]+\]):[0-9]{1,5}$"
_FALSE = frozenset({"0", "false", "no", "off"})


class ServerConfig(BaseModel):
    """The configuration of ``serve``; each field is one env var (its alias)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    model_name: str = Field(alias=ENV_MODEL_NAME, min_length=1)
    model_version: str = Field(default="1", alias=ENV_MODEL_VERSION)
    #: The artifact directory: an absolute path, file:///... or s3://bucket/prefix.
    artifact_uri: str = Field(alias=ENV_ARTIFACT_URI)
    #: Expected sha256 (hex) of the model file; unset: the manifest alone is checked.
    artifact_sha256: str | None = Field(default=None, alias=ENV_ARTIFACT_SHA256)
    #: The Deployment label of the metrics; defaults to the model name.
    deployment: str = Field(default="", alias=ENV_DEPLOYMENT)
    drift_method: DriftMethod = Field(default=DEFAULT_DRIFT_METHOD, alias=ENV_DRIFT_METHOD)
    drift_window: int = Field(default=DEFAULT_DRIFT_WINDOW, alias=ENV_DRIFT_WINDOW, ge=1)
    #: Shared by the workers: each counts up to this divided by ``workers``.
    drift_max_rows_per_second: int = Field(
        default=DEFAULT_DRIFT_MAX_ROWS_PER_SECOND, alias=ENV_DRIFT_MAX_ROWS_PER_SECOND, ge=1
    )
    drift_false_alarm_rate: float = Field(
        default=DEFAULT_FALSE_ALARM_RATE, alias=ENV_DRIFT_FALSE_ALARM_RATE, gt=0.0, lt=1.0
    )
    #: Server processes.
    workers: int = Field(default=DEFAULT_WORKERS, alias=ENV_WORKERS, ge=1)
    #: 0 picks a free port (tests).
    port: int = Field(default=SERVING_PORT, alias=ENV_PORT, ge=0, le=65535)
    scratch_dir: str = Field(default=SCRATCH_MOUNT, alias=ENV_SCRATCH_DIR, min_length=1)
    drift_enabled: bool = Field(default=True, alias=ENV_DRIFT_ENABLED)
    max_request_bytes: int = Field(
        default=DEFAULT_MAX_REQUEST_BYTES, alias=ENV_MAX_REQUEST_BYTES, ge=1
    )
    host: str = Field(default=DEFAULT_HOST, alias=ENV_HOST)
    grpc_port: int = Field(default=GRPC_PORT, alias=ENV_GRPC_PORT, ge=0, le=65535)
    grpc_enabled: bool = Field(default=True, alias=ENV_GRPC_ENABLED)
    max_queue: int = Field(default=DEFAULT_MAX_QUEUE, alias=ENV_MAX_QUEUE, ge=0)
    pod_ip: str | None = Field(default=None, alias=ENV_POD_IP)
    peers_seed: str | None = Field(
        default=None,
        alias=ENV_PEERS_SEED,
        pattern=r"^[^\s/:]+:[0-9]{1,5}$|^\[[0-9a-fA-F:.]+\]:[0-9]{1,5}$",
    )
    shadow_target: str | None = Field(
        default=None,
        alias=ENV_SHADOW_TARGET,
        pattern=r"^[^\s/:]+:[0-9]{1,5}$|^\[[0-9a-fA-F:.]+\]:[0-9]{1,5}$",
    )
    shadow_queue: int = Field(default=DEFAULT_SHADOW_QUEUE, alias=ENV_SHADOW_QUEUE, ge=1)
    shadow_tolerance: float = Field(
        default=DEFAULT_SHADOW_TOLERANCE, alias=ENV_SHADOW_TOLERANCE, ge=0.0, le=1e6
    )

    @model_validator(mode="before")
    @classmethod
    def _deployment_defaults_to_model(cls, data: Any) -> Any:
        if isinstance(data, dict) and not (data.get(ENV_DEPLOYMENT) or data.get("deployment")):
            name = data.get(ENV_MODEL_NAME) or data.get("model_name")
            if name:
                data = {**data, ENV_DEPLOYMENT: name}
                data.pop("deployment", None)
        return data

    @field_validator("artifact_uri")
    @classmethod
    def _artifact_location(cls, uri: str) -> str:
        if uri.startswith(S3_SCHEME):
            ok = bool(uri.removeprefix(S3_SCHEME).strip("/"))
        else:
            ok = uri.removeprefix("file://").startswith("/")
        if not ok:
            raise ValueError(f"must be a file:// or s3:// URI or an absolute path, got {uri!r}")
        return uri

    @field_validator("drift_enabled", "grpc_enabled", mode="before")
    @classmethod
    def _on_unless_off(cls, value: Any) -> Any:
        # Any text but an explicit "off" keeps drift tracking on.
        if isinstance(value, str):
            return value.strip().lower() not in _FALSE
        return value

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ServerConfig:
        """Read the configuration; empty variables count as unset.

        Raises pydantic's ValidationError (a ValueError) naming the bad variable.
        """
        names = [field.alias or name for name, field in cls.model_fields.items()]
        return cls.model_validate({name: env[name] for name in names if env.get(name)})

    def to_env(self) -> dict[str, str]:
        """The env vars of the fields set explicitly, in field order.

        Unset fields are left out: the runtime applies the same defaults, and
        ``from_env(env).to_env()`` gives back the variables of ``env``.
        """
        values = self.model_dump(mode="json", by_alias=True, exclude_unset=True, exclude_none=True)
        return {
            name: ("true" if value else "false") if isinstance(value, bool) else str(value)
            for name, value in values.items()
        }
