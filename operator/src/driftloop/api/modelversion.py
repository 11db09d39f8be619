"""ModelVersion: an immutable model registry entry."""

from __future__ import annotations

import enum
from typing import Annotated, Literal

from pydantic import Field

import driftloop_contract as contract

from ._base import ApiModel, ModelName, Rule, StatusBase

#: Users approve, reject or archive a version with this annotation (spec is
#: immutable and the operator never writes it).
APPROVAL_ANNOTATION = "driftloop.dev/approval"


class Artifact(ApiModel):
    """Where the trained model is and how to check it."""

    uri: str = Field(
        min_length=1,
        max_length=2048,
        # What the server loads: an absolute path, or a bucket (and prefix).
        pattern=r"^(file:///|s3://[^/])",
        description="Artifact directory: file:///artifacts/... or s3://bucket/prefix.",
    )
    sha256: str = Field(pattern=r"^[a-f0-9]{64}$", description="sha256 of the model file.")
    format: Literal["skops"] = Field(
        default="skops", description="Serialization format; only skops (never pickle)."
    )


class Lineage(ApiModel):
    """Where this version came from."""

    dataset: str | None = Field(default=None, max_length=253, description="Dataset name.")
    dataset_digest: str | None = Field(
        default=None, max_length=80, description="sha256:<hex> of the data trained on."
    )
    training_run: str | None = Field(
        default=None, max_length=253, description="TrainingRun that produced it."
    )
    image: str | None = Field(default=None, max_length=512, description="Runtime image used.")
    estimator: str | None = Field(
        default=None, max_length=128, description="scikit-learn estimator class."
    )
    hyperparameters: dict[str, bool | int | float | str | None] = Field(
        default_factory=dict,
        json_schema_extra={"maxProperties": 32},
        description="Hyperparameters the estimator was built with.",
    )
    dataset_snapshot: str | None = Field(
        default=None,
        max_length=2048,
        description="Where the exact data trained on is stored (content-addressed).",
    )
    test_size: float | None = Field(
        default=None, description="Fraction of rows held out for evaluation."
    )
    random_state: int | None = Field(
        default=None, description="Seed of the split (and of estimators that take one)."
    )
    image_digest: str | None = Field(
        default=None,
        max_length=512,
        description="The training container's image by digest (its pod's imageID).",
    )
    library_versions: dict[str, str] = Field(
        default_factory=dict,
        json_schema_extra={"maxProperties": 16},
        description="Versions of python, scikit-learn, numpy... in the training image.",
    )


class GroupMetrics(ApiModel):
    """The held-out metrics of one group of a sensitive feature."""

    group: str = Field(
        max_length=contract.MAX_GROUP_LABEL, description="The value, or bin, of the group."
    )
    size: int = Field(ge=0, description="Held-out rows in the group.")
    gated: bool = Field(description="Whether it counts in the disparities (minGroupSize).")
    metrics: dict[str, float] = Field(
        default_factory=dict,
        json_schema_extra={"maxProperties": 8},
        description="The evaluation metrics on the group's rows; selectionRate (classifiers).",
    )


class FeatureFairness(ApiModel):
    """The per-group evaluation of one sensitive feature."""

    feature: str = Field(max_length=128, description="The sensitive feature (column).")
    positive_class: str | None = Field(
        default=None,
        max_length=256,
        description=(
            "Binary classifiers: the class whose selection rate is compared. Unset for "
            "multiclass (disparities are the worst class's, one-vs-rest) and regression."
        ),
    )
    groups: list[GroupMetrics] = Field(
        default_factory=list,
        max_length=contract.MAX_REPORTED_GROUPS,
        description=(
            "The largest groups first (at most 8; the artifact's fairness.json lists all)."
        ),
    )
    other_groups: int = Field(default=0, ge=0, description="Groups not listed in groups.")
    other_rows: int = Field(default=0, ge=0, description="Held-out rows of those groups.")
    disparities: dict[str, float] = Field(
        default_factory=dict,
        json_schema_extra={"maxProperties": 16},
        description=(
            "Over the gated groups: demographicParityDifference, demographicParityRatio, "
            "equalizedOddsDifference (classifiers) and <metric>Difference (max - min)."
        ),
    )
    failed_gates: list[Annotated[str, Field(max_length=512)]] = Field(
        default_factory=list,
        max_length=8,
        description="The fairness gates it failed: disparity, value, bound and groups.",
    )


class ModelVersionSpec(ApiModel):
    """A trained model. Immutable once created."""

    model: ModelName = Field(description="Model name.")
    version: int = Field(ge=1, le=1_000_000, description="Monotonic version number per model.")
    task: contract.Task = Field(description="classification or regression.")
    artifact: Artifact
    metrics: dict[str, float] = Field(
        default_factory=dict,
        json_schema_extra={"maxProperties": 16},
        description="Evaluation metrics on held-out data.",
    )
    gates_passed: bool = Field(
        default=True,
        description="Whether the TrainingRun's evaluation gates (scores and fairness) passed.",
    )
    fairness: list[FeatureFairness] = Field(
        default_factory=list,
        max_length=4,
        description=(
            "Per sensitive feature of the Dataset: held-out metrics per group, the "
            "disparities between groups and the fairness gates that failed."
        ),
    )
    lineage: Lineage = Field(default_factory=Lineage)

    __rules__ = (
        Rule(
            cel="self == oldSelf", message="spec is immutable: ModelVersions are registry entries"
        ),
    )


class Approval(enum.StrEnum):
    candidate = "candidate"
    approved = "approved"
    rejected = "rejected"
    archived = "archived"


class ApprovalChange(ApiModel):
    """One change of a ModelVersion's approval."""

    approval: Approval = Field(description="The new state.")
    previous: Approval | None = Field(default=None, description="The state before, if any.")
    reason: str = Field(max_length=64, description="SetByUser, GatesFailed, PromotionPolicy, ...")
    message: str = Field(default="", max_length=1024)
    time: str = Field(json_schema_extra={"format": "date-time"})


class ModelVersionStatus(StatusBase):
    """Observed state of a ModelVersion."""

    approval: Approval | None = Field(
        default=None,
        description=(
            "candidate, approved, rejected or archived: the driftloop.dev/approval "
            "annotation when set; else rejected when the evaluation gates (scores or "
            "fairness) failed or a "
            "Deployment of the model refused it; else approved."
        ),
    )
    approval_reason: str | None = Field(
        default=None,
        max_length=1024,
        description=(
            "SetByUser, FairnessGateFailed, GatesFailed, PromotionPolicy, RolloutFailed "
            "or GatesPassed."
        ),
    )
    artifact_verified: bool | None = Field(
        default=None,
        description=(
            "True once a Deployment has reported this version in "
            "status.servingModelVersion: its pods, which check the artifact's digest "
            "before loading it, became ready. Stays true."
        ),
    )
    approval_history: list[ApprovalChange] = Field(
        default_factory=list,
        max_length=10,
        description="Changes of the approval, newest first (at most 10).",
    )
