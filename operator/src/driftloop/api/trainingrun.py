"""TrainingRun: one training attempt, reconciled into a batch/v1 Job."""

from __future__ import annotations

import enum

from pydantic import Field

import driftloop_contract as contract

from ._base import ApiModel, LocalObjectReference, ModelName, ResourceRequirements, Rule, StatusBase

_METRIC_NAMES = [m.value for m in contract.Metric]
_CEL_METRICS = "[" + ", ".join(f"'{m}'" for m in _METRIC_NAMES) + "]"

EstimatorName = enum.Enum(  # type: ignore[misc]
    "EstimatorName", {name: name for name in contract.ESTIMATORS}, type=str
)


class Estimator(ApiModel):
    """A scikit-learn estimator from the allow-list and its hyperparameters."""

    type: EstimatorName = Field(description="scikit-learn estimator class (allow-listed).")
    hyperparameters: dict[str, bool | int | float | str | None] = Field(
        default_factory=dict,
        max_length=32,
        json_schema_extra={"maxProperties": 32},
        description=(
            "Constructor arguments, checked against the estimator's signature and "
            "scikit-learn's parameter constraints."
        ),
    )


class Evaluation(ApiModel):
    """How the trained model is scored, and the gates it must pass."""

    test_size: float = Field(
        default=0.2, gt=0.0, lt=1.0, description="Fraction of rows held out for evaluation."
    )
    random_state: int = Field(default=0, ge=0, description="Seed of the split.")
    metrics: list[contract.Metric] = Field(
        default_factory=list,
        max_length=6,
        description="Metrics to compute; empty means all metrics of the task.",
    )
    min_scores: dict[str, float] = Field(
        default_factory=dict,
        description=(
            "Gates: metric name -> minimum (maximum for mae/rmse). A model that "
            "misses a gate (or whose gated metric is not computed) is registered, "
            "but rejected."
        ),
    )

    __rules__ = (
        Rule(
            cel=f"!has(self.minScores) || self.minScores.all(k, k in {_CEL_METRICS})",
            message="spec.evaluation.minScores keys must be metric names: "
            + ", ".join(_METRIC_NAMES),
            check=lambda e: all(k in _METRIC_NAMES for k in e.min_scores),
        ),
    )

    def to_contract(self) -> contract.Evaluation:
        return contract.Evaluation(
            test_size=self.test_size,
            random_state=self.random_state,
            metrics=[contract.Metric(m) for m in self.metrics],
            min_scores=dict(self.min_scores),
        )


class TrainingRunTemplate(ApiModel):
    """Everything a TrainingRun needs; reused by Deployment retraining templates."""

    dataset_ref: LocalObjectReference = Field(description="The Dataset to train on.")
    estimator: Estimator
    evaluation: Evaluation = Field(
        default_factory=Evaluation, description="Held-out evaluation and promotion gates."
    )
    resources: ResourceRequirements | None = Field(
        default=None, description="Resources of the training container."
    )
    image: str | None = Field(default=None, max_length=512, description="Runtime image override.")
    backoff_limit: int = Field(
        default=1,
        ge=0,
        le=10,
        description="Retries of the training Job's pod (none after an invalid-input failure).",
    )
    active_deadline_seconds: int = Field(
        default=3600, ge=1, le=7 * 24 * 3600, description="Deadline of the training Job."
    )


class TrainingRunSpec(TrainingRunTemplate):
    """Desired state of a TrainingRun. Immutable: create a new run to train again."""

    model: ModelName = Field(description="Name of the model this run trains a version of.")

    __rules__ = (
        Rule(cel="self == oldSelf", message="spec is immutable: create a new TrainingRun instead"),
    )


class TrainingRunPhase(enum.StrEnum):
    pending = "Pending"
    running = "Running"
    succeeded = "Succeeded"
    failed = "Failed"


class TrainingRunStatus(StatusBase):
    """Observed state of a TrainingRun."""

    phase: TrainingRunPhase | None = Field(default=None, description="Summary phase.")
    job_name: str | None = Field(default=None, max_length=63, description="The training Job.")
    dataset_digest: str | None = Field(
        default=None, max_length=80, description="Dataset version actually used."
    )
    metrics: dict[str, float] = Field(
        default_factory=dict,
        json_schema_extra={"maxProperties": 16},
        description="Evaluation metrics.",
    )
    model_version: str | None = Field(
        default=None, max_length=63, description="The ModelVersion produced."
    )
    model_version_claim: int | None = Field(
        default=None,
        ge=1,
        description=(
            "The version number this run claims, recorded before it creates "
            "`<model>-v<N>`: every later attempt (after a restart too) creates exactly "
            "that name; when another run has it, the run claims the next number."
        ),
    )
    start_time: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    completion_time: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    failure_reason: str | None = Field(default=None, max_length=128)
    failure_message: str | None = Field(default=None, max_length=4096)
