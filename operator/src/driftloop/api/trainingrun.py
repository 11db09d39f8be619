"""TrainingRun: one training attempt, reconciled into a batch/v1 Job."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any

from pydantic import Field

import driftloop_contract as contract

from ._base import ApiModel, ModelName, ObjectName, ResourceRequirements, Rule, StatusBase


def _cel_list(names: Iterable[str]) -> str:
    return "[" + ", ".join(f"'{n}'" for n in names) + "]"


_METRIC_NAMES = [m.value for m in contract.Metric]
_CEL_METRICS = _cel_list(_METRIC_NAMES)

EstimatorName = enum.Enum(  # type: ignore[misc]
    "EstimatorName", {name: name for name in contract.ESTIMATORS}, type=str
)


def _estimators_of(task: contract.Task) -> list[str]:
    return [name for name, (_, t) in contract.ESTIMATORS.items() if t is task]


_CLASSIFIERS = _estimators_of(contract.Task.classification)
_TASK_OF_TYPE = (
    f"(self.estimator.type in {_cel_list(_CLASSIFIERS)} ? "
    f"{_cel_list(m.value for m in contract.METRICS_BY_TASK[contract.Task.classification])} : "
    f"{_cel_list(m.value for m in contract.METRICS_BY_TASK[contract.Task.regression])})"
)


def _task_metrics(template: Any) -> set[str]:
    """The metric names of the template's estimator's task."""
    task = contract.ESTIMATORS[str(template.estimator.type)][1]
    return {m.value for m in contract.METRICS_BY_TASK[task]}


class Estimator(ApiModel):
    """A scikit-learn estimator from the allow-list and its hyperparameters."""

    type: EstimatorName = Field(description="scikit-learn estimator class (allow-listed).")
    hyperparameters: dict[str, bool | int | float | str | None] = Field(
        default_factory=dict,
        max_length=32,
        json_schema_extra={"maxProperties": 32},
        description=(
            "Constructor arguments: values true/false, numbers, strings or null (a list "
            "or map is refused at admission); the training Job checks the names against "
            "the estimator's signature and the values against scikit-learn's parameter "
            "constraints."
        ),
    )


#: Metrics whose per-group spread a fairness gate can bound: those computed from
#: predicted labels or values (roc_auc needs scores, and is overall only).
_SPREAD_METRICS = [m.value for m in contract.Metric if m is not contract.Metric.roc_auc]


def _spread_metrics(task: contract.Task) -> list[str]:
    return [m.value for m in contract.METRICS_BY_TASK[task] if m.value in _SPREAD_METRICS]


_CEL_SPREAD = (
    f"(self.estimator.type in {_cel_list(_CLASSIFIERS)} ? "
    f"{_cel_list(_spread_metrics(contract.Task.classification))} : "
    f"{_cel_list(_spread_metrics(contract.Task.regression))})"
)
#: The gates on classifiers' predictions only (selection rates, error rates).
_CLASSIFICATION_GATES = (
    "maxDemographicParityDifference",
    "minDemographicParityRatio",
    "maxEqualizedOddsDifference",
)


class FairnessGates(ApiModel):
    """Bounds on the disparities between the groups of every sensitive feature."""

    max_demographic_parity_difference: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description=(
            "Classifiers: largest difference of selection rates (share of rows predicted "
            "positive) between two groups (fairlearn demographic_parity_difference)."
        ),
    )
    min_demographic_parity_ratio: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description=(
            "Classifiers: smallest ratio of the lowest to the highest group selection rate "
            "(fairlearn demographic_parity_ratio)."
        ),
    )
    max_equalized_odds_difference: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description=(
            "Classifiers: largest difference between groups of the true-positive rate or "
            "of the false-positive rate, whichever is larger (fairlearn "
            "equalized_odds_difference)."
        ),
    )
    max_metric_difference: dict[str, float] = Field(
        default_factory=dict,
        max_length=len(_SPREAD_METRICS),
        json_schema_extra={"maxProperties": len(_SPREAD_METRICS)},
        description=(
            "Metric name -> largest spread (max - min across groups) allowed, e.g. "
            "accuracy or mae (fairlearn MetricFrame.difference)."
        ),
    )
    min_group_size: int = Field(
        default=30,
        ge=1,
        le=1_000_000,
        description=(
            "Groups with fewer held-out rows are reported but not gated (their rates "
            "are too noisy to judge). A gate needs two groups of this size, else it fails."
        ),
    )

    def to_contract(self) -> contract.FairnessGates:
        return contract.FairnessGates.model_validate(self.model_dump(by_alias=True))


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
        max_length=len(contract.Metric),
        json_schema_extra={"maxProperties": len(contract.Metric)},
        description=(
            "Gates: metric name -> minimum (maximum for mae/rmse). A model that "
            "misses a gate (or whose gated metric is not computed) is registered, "
            "but rejected."
        ),
    )

    fairness: FairnessGates | None = Field(
        default=None,
        description=(
            "Gates on the disparities between the groups of the Dataset's "
            "sensitiveFeatures (each feature gated alone). A model that misses one is "
            "registered, but rejected (FairnessGateFailed). The Dataset must declare "
            "sensitiveFeatures, else the run fails (NoSensitiveFeatures)."
        ),
    )

    __rules__: tuple[Rule, ...] = (
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
            fairness=self.fairness.to_contract() if self.fairness else None,
        )


#: A dataset version: the sha256 content digest the profile Job reported.
DIGEST_PATTERN = r"^sha256:[a-f0-9]{64}$"


class DatasetReference(ApiModel):
    """The Dataset to train on and, optionally, which of its validated versions."""

    name: ObjectName = Field(description="Name of the Dataset (same namespace).")
    version: str | None = Field(
        default=None,
        pattern=DIGEST_PATTERN,
        max_length=80,
        description=(
            "Pin a validated version (sha256:<hex>, from the Dataset's status.version or "
            "history): the run trains on that version's stored snapshot. Unset: the "
            "Dataset's current version when the run starts. A pinned version whose "
            "snapshot is not in the artifact store fails the run (SnapshotMissing)."
        ),
    )


class Reproduce(ApiModel):
    """Re-train an existing ModelVersion and compare the result with it."""

    model_version: ObjectName = Field(
        description=(
            "The ModelVersion to rebuild (same namespace, same model). The run trains on "
            "its dataset snapshot unless datasetRef.version pins another; status."
            "reproduction says whether the artifact's sha256 and the metrics match, and "
            "which recorded inputs differ. A reproducing run registers no ModelVersion."
        )
    )


class Sampling(ApiModel):
    """A sample of the rows to train on."""

    max_rows: int = Field(ge=2, description="Most rows trained on (drawn when there are more).")
    stratified: bool = Field(
        default=True,
        description="Keep each class's share of the rows (classification; ignored otherwise).",
    )

    def to_contract(self) -> contract.Sampling:
        return contract.Sampling(max_rows=self.max_rows, stratified=self.stratified)


class TrainingRunTemplate(ApiModel):
    """Everything a TrainingRun needs; reused by Deployment retraining templates."""

    dataset_ref: DatasetReference = Field(description="The Dataset to train on.")
    estimator: Estimator
    evaluation: Evaluation = Field(
        default_factory=Evaluation, description="Held-out evaluation and promotion gates."
    )
    sampling: Sampling | None = Field(
        default=None,
        description=(
            "Train on at most maxRows rows of the data (drawn with evaluation."
            "randomState, so a rerun draws the same rows): for estimators that hold "
            "the whole matrix in memory."
        ),
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

    __rules__: tuple[Rule, ...] = (
        Rule(
            cel="!has(self.evaluation) || !has(self.evaluation.metrics) || "
            f"self.evaluation.metrics.all(m, m in {_TASK_OF_TYPE})",
            message="evaluation.metrics must be metrics of the estimator's task: "
            "accuracy, f1, roc_auc (classifiers) or r2, mae, rmse (regressors)",
            check=lambda t: set(t.evaluation.metrics) <= _task_metrics(t),
        ),
        Rule(
            cel="!has(self.evaluation) || !has(self.evaluation.minScores) || "
            f"self.evaluation.minScores.all(k, k in {_TASK_OF_TYPE})",
            message="evaluation.minScores keys must be metrics of the estimator's task: "
            "accuracy, f1, roc_auc (classifiers) or r2, mae, rmse (regressors)",
            check=lambda t: set(t.evaluation.min_scores) <= _task_metrics(t),
        ),
        Rule(
            cel="!has(self.evaluation) || !has(self.evaluation.minScores) || "
            "!has(self.evaluation.metrics) || size(self.evaluation.metrics) == 0 || "
            "self.evaluation.minScores.all(k, k in self.evaluation.metrics)",
            message="evaluation.minScores keys must be among evaluation.metrics when "
            "metrics are listed (a gate on a metric not computed always fails)",
            check=lambda t: (
                not t.evaluation.metrics
                or set(t.evaluation.min_scores) <= set(t.evaluation.metrics)
            ),
        ),
        Rule(
            cel="!has(self.evaluation) || !has(self.evaluation.fairness) || "
            "!has(self.evaluation.fairness.maxMetricDifference) || "
            f"self.evaluation.fairness.maxMetricDifference.all(k, k in {_CEL_SPREAD})",
            message="evaluation.fairness.maxMetricDifference keys must be metrics of the "
            "estimator's task: accuracy, f1 (classifiers) or r2, mae, rmse (regressors)",
            check=lambda t: (
                t.evaluation.fairness is None
                or set(t.evaluation.fairness.max_metric_difference)
                <= _task_metrics(t) & set(_SPREAD_METRICS)
            ),
        ),
        Rule(
            cel="!has(self.evaluation) || !has(self.evaluation.fairness) || "
            f"self.estimator.type in {_cel_list(_CLASSIFIERS)} || "
            + " && ".join(f"!has(self.evaluation.fairness.{g})" for g in _CLASSIFICATION_GATES),
            message="evaluation.fairness: maxDemographicParityDifference, "
            "minDemographicParityRatio and maxEqualizedOddsDifference apply to classifiers "
            "only; bound a regressor's groups with maxMetricDifference",
            check=lambda t: (
                t.evaluation.fairness is None
                or str(t.estimator.type) in _CLASSIFIERS
                or (
                    t.evaluation.fairness.max_demographic_parity_difference is None
                    and t.evaluation.fairness.min_demographic_parity_ratio is None
                    and t.evaluation.fairness.max_equalized_odds_difference is None
                )
            ),
        ),
    )


class TrainingRunSpec(TrainingRunTemplate):
    """Desired state of a TrainingRun. Immutable: create a new run to train again."""

    model: ModelName = Field(description="Name of the model this run trains a version of.")
    reproduce: Reproduce | None = Field(
        default=None,
        description=(
            "Rebuild this ModelVersion instead of registering a new one; write the spec "
            "from its lineage (kubectl driftloop lineage shows it)."
        ),
    )

    __rules__: tuple[Rule, ...] = (
        *TrainingRunTemplate.__rules__,
        Rule(cel="self == oldSelf", message="spec is immutable: create a new TrainingRun instead"),
    )


class TrainingRunPhase(enum.StrEnum):
    pending = "Pending"
    running = "Running"
    succeeded = "Succeeded"
    failed = "Failed"


class Reproduction(ApiModel):
    """How a reproducing run's result compares with the ModelVersion it rebuilt."""

    model_version: str = Field(max_length=63, description="The ModelVersion rebuilt.")
    artifact_matches: bool = Field(
        description="The new model file's sha256 equals the ModelVersion's artifact sha256."
    )
    metrics_match: bool = Field(description="Every metric equals the recorded one.")
    sha256: str | None = Field(
        default=None, max_length=64, description="sha256 of the rebuilt model file."
    )
    differences: list[str] = Field(
        default_factory=list,
        max_length=16,
        description=(
            "Recorded inputs that differ from the original's: datasetDigest, estimator, "
            "hyperparameters, testSize, randomState, imageDigest, a library version."
        ),
    )


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
    image_digest: str | None = Field(
        default=None,
        max_length=512,
        description="The training container's image, by digest (its pod's imageID).",
    )
    reproduction: Reproduction | None = Field(
        default=None, description="With spec.reproduce: the comparison with the original."
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
    start_time: str | None = Field(
        default=None,
        description="When the run's training Job was created.",
        json_schema_extra={"format": "date-time"},
    )
    completion_time: str | None = Field(
        default=None,
        description="The training Job's completionTime (a failed Job has none).",
        json_schema_extra={"format": "date-time"},
    )
    failure_reason: str | None = Field(default=None, max_length=128)
    failure_message: str | None = Field(default=None, max_length=4096)
