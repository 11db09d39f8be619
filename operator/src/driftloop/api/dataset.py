"""Dataset: where the data is and what it must look like."""

from __future__ import annotations

import enum

from pydantic import Field

from driftloop_runtime import contract

from ._base import ApiModel, Duration, Rule, StatusBase

_KNOWN_RULES = ("minRows", "maxRows", "maxNullRatio", "allowedValues", "columns")


class DatasetSpec(contract.DatasetSpec, ApiModel):
    """Desired state of a Dataset: its source, schema and validation rules."""

    refresh_interval: Duration | None = Field(
        default=None,
        alias="refreshInterval",
        description=(
            "Re-read the source this often (e.g. 1h). A new content digest becomes a "
            "new dataset version. Unset: read once."
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
            cel="self.features.all(f, !has(f.allowedValues) || f.type == 'categorical')",
            message="spec.features[].allowedValues is only valid for categorical features",
            check=lambda s: all(
                f.allowed_values is None or f.type == contract.FeatureType.categorical
                for f in s.features
            ),
        ),
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
    columns: int | None = Field(default=None, ge=0, description="Columns in the current version.")
    profile_uri: str | None = Field(
        default=None,
        max_length=2048,
        description=(
            "Where the profile Job wrote this version's profile (per-feature bins and "
            "quantiles). For inspection: servers measure drift against the profile "
            "stored with each model version's artifacts."
        ),
    )
    last_refresh_time: str | None = Field(
        default=None, json_schema_extra={"format": "date-time"}, description="Last source read."
    )
    history: list[DatasetVersion] = Field(
        default_factory=list, max_length=10, description="Recent versions, newest first."
    )
