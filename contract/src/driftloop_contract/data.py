"""A dataset as the runtime reads it: source, columns, validation rules."""

from __future__ import annotations

import enum
from typing import Annotated, Literal

from pydantic import Field

from ._base import Payload
from .tasks import Task


class FeatureType(enum.StrEnum):
    numeric = "numeric"
    categorical = "categorical"


#: A column name.
Identifier = Annotated[
    str,
    Field(min_length=1, max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_.\- ]*$"),
]


class FeatureSpec(Payload):
    """One input column."""

    name: Identifier
    type: FeatureType = FeatureType.numeric
    #: For categorical features: the only values allowed.
    allowed_values: list[Annotated[str, Field(max_length=256)]] | None = Field(
        default=None, alias="allowedValues", max_length=1000
    )


class SensitiveFeature(Payload):
    """A column that identifies groups, for per-group evaluation (fairness)."""

    name: Identifier
    #: Numeric column grouped by these ascending cut points: n points make n + 1
    #: groups (below the first, between neighbours, from the last up).  None: each
    #: distinct value (as text) is a group.
    bins: list[float] | None = Field(default=None, min_length=1, max_length=19)
    #: Whether the column is also a model input (then it is in ``features`` too);
    #: false: it is read for evaluation only and never reaches the model.
    use_as_input: bool = Field(default=False, alias="useAsInput")


class ValidationRules(Payload):
    """Rules the data must meet; a failed rule fails with its name (ValidationRule)."""

    min_rows: int | None = Field(default=None, alias="minRows", ge=1)
    max_rows: int | None = Field(default=None, alias="maxRows", ge=1)
    #: Largest fraction of missing values allowed in any column.
    max_null_ratio: float = Field(default=0.0, alias="maxNullRatio", ge=0.0, le=1.0)


class DatasetSpec(Payload):
    """Where the data is and what it must look like."""

    #: A CSV or Parquet file: an absolute path on the artifact volume, file://,
    #: http(s):// or s3://; or a directory / prefix of Parquet files (a local path
    #: that is a directory, or an s3:// URI ending in "/"), hive partitions allowed.
    source: str = Field(min_length=1, max_length=2048, pattern=r"^(/|file://|https?://|s3://)")
    #: ``auto`` picks by the file extension.
    format: Literal["csv", "parquet", "auto"] = "auto"
    #: Input columns used for training (names unique).
    features: list[FeatureSpec] = Field(min_length=1, max_length=512)
    #: Column holding the label to predict.
    target: Identifier
    #: Columns whose groups the evaluation compares (fairness gates).
    sensitive_features: list[SensitiveFeature] = Field(
        default_factory=list, alias="sensitiveFeatures", max_length=4
    )
    #: What the target is for: classification needs at least two classes, regression
    #: a numeric target.  None: checked when a run names an estimator.
    task: Task | None = None
    validation: ValidationRules = Field(default_factory=ValidationRules)


class ValidationRule(enum.StrEnum):
    """``rule`` values of a ValidationFailed result (camelCase like the CRD)."""

    readable = "readable"  # the file could not be parsed as CSV/Parquet
    empty_file = "emptyFile"  # zero bytes (or only blank lines)
    no_rows = "noRows"  # a header, no data rows
    malformed_row = "malformedRow"  # a CSV row with more or fewer fields than the header
    duplicate_column = "duplicateColumn"  # two columns of one name
    missing_column = "missingColumn"
    missing_target = "missingTarget"
    min_rows = "minRows"
    max_rows = "maxRows"
    max_null_ratio = "maxNullRatio"
    allowed_values = "allowedValues"
    numeric_type = "numericType"
    non_finite = "nonFinite"  # inf or -inf in a numeric column
    target_classes = "targetClasses"  # a target with fewer than 2 distinct values
    target_numeric = "targetNumeric"  # a regression target with non-numeric values
    no_files = "noFiles"  # a prefix/directory source holding no data file
    schema_mismatch = "schemaMismatch"  # files of one prefix with different schemas
