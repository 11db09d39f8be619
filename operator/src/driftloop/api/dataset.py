"""Dataset: where the data is and what it must look like."""

from __future__ import annotations

import enum
import itertools
from typing import Annotated, Literal

from pydantic import Field

import driftloop_contract as contract

from ._base import ApiModel, Duration, ResourceRequirements, Rule, StatusBase

_KNOWN_RULES = ("minRows", "maxRows", "maxNullRatio", "allowedValues", "columns")

#: A column name.
ColumnName = Annotated[
    str,
    Field(min_length=1, max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_.\- ]*$"),
]


class FeatureSpec(ApiModel):
    """One input column."""

    name: ColumnName = Field(description="Column name in the data source.")
    type: contract.FeatureType = Field(
        default=contract.FeatureType.numeric, description="numeric or categorical."
    )
    allowed_values: list[Annotated[str, Field(max_length=256)]] | None = Field(
        default=None,
        min_length=1,
        max_length=1000,
        description="For categorical features: the only values allowed (at least one).",
    )

    def to_contract(self) -> contract.FeatureSpec:
        return contract.FeatureSpec(
            name=self.name, type=contract.FeatureType(self.type), allowed_values=self.allowed_values
        )


class SensitiveFeature(ApiModel):
    """A column that identifies groups: the evaluation compares the model across them."""

    name: ColumnName = Field(description="Column name in the data source.")
    bins: list[float] | None = Field(
        default=None,
        min_length=1,
        max_length=19,
        description=(
            "For a numeric column: ascending cut points; n points make n + 1 groups "
            "(<first, [a, b) between neighbours, >=last). Unset: each distinct value is a "
            "group (a categorical column). A missing value is the group (missing)."
        ),
    )
    use_as_input: bool = Field(
        default=False,
        description=(
            "Whether the model also takes the column as an input: then it is listed in "
            "spec.features too. false: it is not (admission refuses it there), is read "
            "for the evaluation only and never reaches the model."
        ),
    )

    __rules__ = (
        Rule(
            cel="!has(self.bins) || self.bins.all(b, self.bins.exists_one(c, c == b)) && "
            "self.bins.isSorted()",
            message="spec.sensitiveFeatures[].bins must be strictly increasing",
            check=lambda f: f.bins is None or all(a < b for a, b in itertools.pairwise(f.bins)),
        ),
    )

    def to_contract(self) -> contract.SensitiveFeature:
        return contract.SensitiveFeature(
            name=self.name, bins=self.bins, use_as_input=self.use_as_input
        )


class ValidationRules(ApiModel):
    """Rules the data must meet; a failed rule fails the Dataset with its name."""

    min_rows: int | None = Field(default=None, ge=1, description="Fewest rows accepted.")
    max_rows: int | None = Field(default=None, ge=1, description="Most rows accepted.")
    max_null_ratio: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description=(
            "Largest fraction of missing values allowed in any feature column (the "
            "training Job checks the target column too)."
        ),
    )

    def to_contract(self) -> contract.ValidationRules:
        return contract.ValidationRules(
            min_rows=self.min_rows, max_rows=self.max_rows, max_null_ratio=self.max_null_ratio
        )


class DatasetSpec(ApiModel):
    """Desired state of a Dataset: its source, schema and validation rules."""

    source: str = Field(
        min_length=1,
        max_length=2048,
        # What the runtime can read: a path, a host, a bucket and a key.
        pattern=r"^(/[^/]|file://[^/]*/[^/]|https?://[^/]|s3://[^/]+/[^/])",
        description=(
            "URI of a CSV or Parquet file: an absolute path on the artifact volume "
            "(/artifacts/...), file:///path, http(s)://host/... or s3://bucket/key; or "
            "of a directory or prefix of Parquet files (a directory path, or an s3:// "
            "URI ending in /; hive partitions such as day=1/ become columns)."
        ),
    )
    format: Literal["csv", "parquet", "auto"] = Field(
        default="auto",
        description=(
            "File format; auto: Parquet when the name ends in .parquet or .pq or the "
            "content starts with PAR1, else CSV (plain or gzip)."
        ),
    )
    features: list[FeatureSpec] = Field(
        min_length=1,
        max_length=512,
        description="Input columns used for training (names unique).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    target: ColumnName = Field(description="Column holding the label to predict.")
    task: contract.Task | None = Field(
        default=None,
        description=(
            "What the target is for. classification: the profile Job refuses a target "
            "with fewer than two classes; regression: a target that is not numeric or "
            "has fewer than two distinct values. Unset: the target must have two "
            "distinct values, and the training Job checks the rest for its estimator's "
            "task. A TrainingRun whose estimator is for the other task is refused."
        ),
    )
    sensitive_features: list[SensitiveFeature] = Field(
        default_factory=list,
        max_length=4,
        description=(
            "Columns that identify groups (at most 4): training reports the held-out "
            "metrics of each group and the disparities between groups, which "
            "TrainingRun evaluation.fairness gates bound. Validated like the features: "
            "a missing column fails the Dataset (MissingColumn)."
        ),
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    validation: ValidationRules = Field(
        default_factory=ValidationRules, description="Data validation rules."
    )
    refresh_interval: Duration | None = Field(
        default=None,
        alias="refreshInterval",
        description=(
            "Re-read the source this often (e.g. 1h). A new content digest becomes a "
            "new dataset version. Unset: read once per spec change."
        ),
    )

    resources: ResourceRequirements | None = Field(
        default=None,
        description=(
            "Resources of the profile Job's container (it streams the source to the "
            "artifact store and parses it: size memory for the data)."
        ),
    )

    __rules__ = (
        Rule(
            cel="!has(self.validation) || !has(self.validation.minRows) || "
            "!has(self.validation.maxRows) || self.validation.minRows <= self.validation.maxRows",
            message="spec.validation.minRows must not exceed spec.validation.maxRows",
            check=lambda s: (
                s.validation.min_rows is None
                or s.validation.max_rows is None
                or s.validation.min_rows <= s.validation.max_rows
            ),
        ),
        Rule(
            cel="!self.features.exists(f, f.name == self.target)",
            message="spec.target must not also be listed in spec.features",
            check=lambda s: all(f.name != s.target for f in s.features),
        ),
        Rule(
            cel="!has(self.sensitiveFeatures) || "
            "self.sensitiveFeatures.all(s, s.name != self.target)",
            message="spec.target must not also be listed in spec.sensitiveFeatures",
            check=lambda s: all(f.name != s.target for f in s.sensitive_features),
        ),
        Rule(
            # Explicit either way: a column is never used as an input by surprise, nor
            # silently dropped from the inputs.
            cel="!has(self.sensitiveFeatures) || self.sensitiveFeatures.all(s, "
            "(has(s.useAsInput) && s.useAsInput) == self.features.exists(f, f.name == s.name))",
            message="spec.sensitiveFeatures[].useAsInput must be true exactly when the "
            "column is also listed in spec.features",
            check=lambda s: all(
                f.use_as_input == any(x.name == f.name for x in s.features)
                for f in s.sensitive_features
            ),
        ),
        Rule(
            cel="self.features.all(f, !has(f.allowedValues) || f.type == 'categorical')",
            message="spec.features[].allowedValues is only valid for categorical features",
            check=lambda s: all(
                f.allowed_values is None or f.type == contract.FeatureType.categorical
                for f in s.features
            ),
        ),
    )

    def to_contract(self) -> contract.DatasetSpec:
        """The dataset as the runtime reads it (without the operator-only fields)."""
        return contract.DatasetSpec(
            source=self.source,
            format=self.format,
            features=[f.to_contract() for f in self.features],
            target=self.target,
            sensitive_features=[f.to_contract() for f in self.sensitive_features],
            task=contract.Task(self.task) if self.task else None,
            validation=self.validation.to_contract(),
        )


class DatasetPhase(enum.StrEnum):
    pending = "Pending"
    validating = "Validating"
    ready = "Ready"
    failed = "Failed"


class DatasetVersion(ApiModel):
    """One content version seen for this Dataset."""

    digest: str = Field(max_length=80, description="sha256:<hex> of the content.")
    rows: int = Field(ge=0, description="Number of rows.")
    observed_time: str = Field(
        json_schema_extra={"format": "date-time"}, description="When it was first seen."
    )


class DatasetStatus(StatusBase):
    """Observed state of a Dataset."""

    phase: DatasetPhase | None = Field(default=None, description="Summary phase.")
    version: str | None = Field(
        default=None, max_length=80, description="Resolved version: sha256:<hex> content digest."
    )
    rows: int | None = Field(default=None, ge=0, description="Rows in the current version.")
    columns: int | None = Field(default=None, ge=0, description="Columns in the source file.")
    profile_uri: str | None = Field(
        default=None,
        max_length=2048,
        description=(
            "Where the profile Job wrote this version's profile (per-feature bins and "
            "quantiles). For inspection: servers measure drift against the profile "
            "stored with each model version's artifacts."
        ),
    )
    snapshot_uri: str | None = Field(
        default=None,
        max_length=2048,
        description=(
            "Where the current version's validated bytes are stored, under their "
            "digest: the data TrainingRuns train on."
        ),
    )
    last_refresh_time: str | None = Field(
        default=None,
        json_schema_extra={"format": "date-time"},
        description="When the last successful profile Job finished.",
    )
    history: list[DatasetVersion] = Field(
        default_factory=list, max_length=10, description="Recent versions, newest first."
    )
