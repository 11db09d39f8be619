"""Deployment (driftloop.dev): serve a model, watch drift, retrain, promote."""

from __future__ import annotations

import enum

from pydantic import Field

import driftloop_contract as contract

from ._base import (
    ApiModel,
    Duration,
    ModelName,
    ResourceRequirements,
    Rule,
    SecretKeySelector,
    StatusBase,
)
from .trainingrun import TrainingRunTemplate


class Channel(enum.StrEnum):
    latest_approved = "latestApproved"
    latest = "latest"


class ModelSelector(ApiModel):
    """Which version to serve: a pinned version or a channel."""

    name: ModelName = Field(description="Model name.")
    version: int | None = Field(
        default=None, ge=1, description="Serve exactly this version (pinned)."
    )
    channel: Channel | None = Field(
        default=None,
        description=(
            "Follow a channel: latestApproved (the default), the highest approved "
            "version; or latest, the highest not rejected or archived. Both skip "
            "versions this Deployment refused."
        ),
    )

    __rules__ = (
        Rule(
            cel="!(has(self.version) && has(self.channel))",
            message="spec.model: set either version or channel, not both",
            check=lambda m: m.version is None or m.channel is None,
        ),
    )


class DriftMonitoring(ApiModel):
    """How the server measures drift of live inputs."""

    method: contract.DriftMethod = Field(
        default=contract.DriftMethod.psi, description="Drift statistic per feature."
    )
    window: int = Field(
        default=1000,
        ge=50,
        le=100_000,
        description="Live rows in the sliding window (per pod, shared by its workers).",
    )


class PrometheusSource(ApiModel):
    """Where the operator reads metrics from."""

    address: str | None = Field(
        default=None,
        max_length=2048,
        pattern=r"^https?://",
        description="Prometheus base URL; defaults to the operator-wide setting.",
    )
    bearer_token_secret_ref: SecretKeySelector | None = Field(
        default=None, description="Secret key holding a bearer token for Prometheus."
    )


class TriggerOperator(enum.StrEnum):
    greater_than = ">"
    less_than = "<"


class Trigger(ApiModel):
    """A PromQL condition that, held long enough, starts a retraining run."""

    name: str = Field(
        min_length=1,
        max_length=20,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="Trigger name (part of the TrainingRun name).",
    )
    query: str | None = Field(
        default=None,
        max_length=4096,
        description=(
            "PromQL returning one value. Default: the max drift score of this "
            "Deployment's features for the monitoring method and serving version."
        ),
    )
    threshold: float = Field(
        ge=-1e12,
        le=1e12,
        description="Fires when the value has been beyond this threshold for `for`.",
    )
    operator: TriggerOperator = Field(
        default=TriggerOperator.greater_than, description="'>' or '<' the threshold."
    )
    for_: Duration = Field(
        default="1m", alias="for", description="How long the condition must hold."
    )


class Retraining(ApiModel):
    """Drift-triggered retraining policy."""

    enabled: bool = Field(default=True, description="Turn automatic retraining on or off.")
    prometheus: PrometheusSource = Field(default_factory=PrometheusSource)
    interval: Duration = Field(
        default="30s",
        description=(
            "How often triggers are evaluated (checked at each reconcile: every operator "
            "poll interval, 5s by default)."
        ),
    )
    triggers: list[Trigger] = Field(
        default_factory=list,
        max_length=8,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
        description="Conditions that start retraining; empty means the default drift trigger.",
    )
    cooldown: Duration = Field(
        default="30m",
        description="Minimum time between two retraining runs of this Deployment.",
    )
    max_concurrent: int = Field(
        default=1, ge=1, le=10, description="Most retraining runs in flight at once."
    )
    template: TrainingRunTemplate = Field(
        description="The TrainingRun to create (its model is spec.model.name)."
    )


class PromotionMode(enum.StrEnum):
    auto = "auto"
    manual = "manual"


class Promotion(ApiModel):
    """When a new version replaces the serving one."""

    mode: PromotionMode = Field(
        default=PromotionMode.auto,
        description=(
            "auto: promote versions passing the policy; manual: also require the "
            "driftloop.dev/approval=approved annotation on the version."
        ),
    )
    metric: contract.Metric | None = Field(
        default=None,
        description="Metric compared with the serving version (default: the task's first).",
    )
    tolerance: float = Field(
        default=0.0,
        ge=0.0,
        le=1e6,
        description="Promote when new >= serving - tolerance (<= + for error metrics).",
    )
    rollout_deadline: Duration = Field(
        default="5m",
        description="Roll back when the new version's rollout has not completed by then.",
    )


class DeploymentSpec(ApiModel):
    """Desired state of a model Deployment."""

    model: ModelSelector
    replicas: int = Field(default=1, ge=0, le=100, description="Serving pods.")
    workers: int = Field(default=1, ge=1, le=32, description="Server processes per pod.")
    resources: ResourceRequirements | None = Field(default=None)
    image: str | None = Field(default=None, max_length=512, description="Runtime image override.")
    monitoring: DriftMonitoring = Field(default_factory=DriftMonitoring)
    retraining: Retraining | None = Field(
        default=None, description="Drift-triggered retraining; unset: never retrain."
    )
    promotion: Promotion = Field(default_factory=Promotion)


class DriftObservation(ApiModel):
    """The last reading of one trigger."""

    trigger: str = Field(max_length=20)
    value: float | None = Field(default=None)
    threshold: float
    time: str = Field(json_schema_extra={"format": "date-time"})
    firing_since: str | None = Field(default=None, json_schema_extra={"format": "date-time"})


class RetrainRecord(ApiModel):
    """One retraining the operator started."""

    training_run: str = Field(max_length=253)
    trigger: str = Field(max_length=20)
    value: float | None = None
    time: str = Field(json_schema_extra={"format": "date-time"})
    outcome: str | None = Field(default=None, max_length=256)


class VersionRejection(ApiModel):
    """A version this Deployment refused or rolled back, and why."""

    version: int = Field(ge=1, description="Version number.")
    model_version: str = Field(max_length=253, description="The ModelVersion's name.")
    reason: str = Field(max_length=64, description="PromotionPolicy or RolloutFailed.")
    message: str = Field(default="", max_length=1024)
    time: str = Field(json_schema_extra={"format": "date-time"})


class DeploymentStatus(StatusBase):
    """Observed state of a model Deployment."""

    serving_version: int | None = Field(default=None, description="Version being served.")
    serving_model_version: str | None = Field(default=None, max_length=253)
    desired_version: int | None = Field(
        default=None, description="Version being rolled out (equals serving when settled)."
    )
    previous_version: int | None = Field(
        default=None, description="Version served before servingVersion."
    )
    url: str | None = Field(default=None, max_length=2048, description="In-cluster URL.")
    replicas: int | None = Field(default=None, ge=0)
    ready_replicas: int | None = Field(default=None, ge=0)
    rollout_started: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    drift: list[DriftObservation] = Field(
        default_factory=list, max_length=8, description="Last reading per trigger."
    )
    retrain_history: list[RetrainRecord] = Field(
        default_factory=list, max_length=20, description="Recent retraining runs, newest first."
    )
    rejected_versions: list[VersionRejection] = Field(
        default_factory=list,
        max_length=20,
        description=(
            "Versions this Deployment will not serve again unless a user approves them, "
            "newest first: refused by the promotion policy or rolled back after a failed "
            "rollout. The ModelVersion reconciler reads them into each version's approval."
        ),
    )
