"""The operator <-> runtime contract, defined once.

The operator builds Jobs and Deployments that run this runtime; it imports this
module to get every name, path and payload shape right.  The runtime reads the
same names.  Nothing here may import kopf, the Kubernetes client, scikit-learn or
pandas: the operator image installs only pydantic.

Flow:
    operator --(env DRIFTLOOP_REQUEST = JSON of a *Request model)--> container
    container --(JSON of a *Result model in the termination message)--> operator
"""

from __future__ import annotations

import enum
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

# --------------------------------------------------------------------------- #
# Names shared by both sides.
# --------------------------------------------------------------------------- #

#: Where the shared artifact volume is mounted in every runtime container.
ARTIFACT_MOUNT: Final = "/artifacts"
#: Kubernetes' default termination message path; the runtime writes results here.
TERMINATION_MESSAGE_PATH: Final = "/dev/termination-log"
#: Kubernetes truncates termination messages at 4096 bytes.
TERMINATION_MESSAGE_LIMIT: Final = 4096
#: HTTP port of the model server (OIP v2 REST + /metrics).
SERVING_PORT: Final = 8080
SERVING_PORT_NAME: Final = "http"

#: Container entrypoint: ``driftloop-runtime <command>``.
ENTRYPOINT: Final = "driftloop-runtime"
COMMAND_TRAIN: Final = "train"
COMMAND_PROFILE: Final = "profile"
COMMAND_SERVE: Final = "serve"

#: Env var carrying the JSON request of ``train`` and ``profile``.
ENV_REQUEST: Final = "DRIFTLOOP_REQUEST"
#: Env vars configuring ``serve``.
ENV_MODEL_NAME: Final = "DRIFTLOOP_MODEL_NAME"
ENV_MODEL_VERSION: Final = "DRIFTLOOP_MODEL_VERSION"
ENV_ARTIFACT_URI: Final = "DRIFTLOOP_ARTIFACT_URI"
ENV_ARTIFACT_SHA256: Final = "DRIFTLOOP_ARTIFACT_SHA256"
ENV_DEPLOYMENT: Final = "DRIFTLOOP_DEPLOYMENT"
ENV_DRIFT_METHOD: Final = "DRIFTLOOP_DRIFT_METHOD"
ENV_DRIFT_WINDOW: Final = "DRIFTLOOP_DRIFT_WINDOW"
ENV_WORKERS: Final = "DRIFTLOOP_WORKERS"
ENV_PORT: Final = "DRIFTLOOP_PORT"
#: Writable scratch directory (prometheus multiprocess files etc.); an emptyDir.
ENV_SCRATCH_DIR: Final = "DRIFTLOOP_SCRATCH_DIR"
SCRATCH_MOUNT: Final = "/tmp"

# Files of one artifact set (one trained model version).
MODEL_FILE: Final = "model.skops"
PROFILE_FILE: Final = "profile.json"
METRICS_FILE: Final = "metrics.json"
MANIFEST_FILE: Final = "manifest.json"
MODEL_FORMAT: Final = "skops"

# OIP v2 REST paths.
PATH_LIVE: Final = "/v2/health/live"
PATH_READY: Final = "/v2/health/ready"
PATH_METRICS: Final = "/metrics"

# Prometheus metric names exported by the server (the operator's default PromQL
# is built from these).  Labels of the drift gauge: deployment, model, version,
# feature, method.
METRIC_FEATURE_DRIFT: Final = "driftloop_feature_drift_score"
METRIC_DRIFT_WINDOW_FILL: Final = "driftloop_drift_window_fill_ratio"
METRIC_REQUESTS: Final = "driftloop_inference_requests_total"
METRIC_REQUEST_DURATION: Final = "driftloop_inference_request_duration_seconds"
METRIC_PREDICTIONS: Final = "driftloop_predictions_total"
METRIC_LIVE_SCORE: Final = "driftloop_live_score"


class Task(enum.StrEnum):
    classification = "classification"
    regression = "regression"


#: Estimators a TrainingRun may name, with the module that defines them.
#: An allow-list: the runtime imports nothing outside it.
ESTIMATORS: Final[dict[str, tuple[str, Task]]] = {
    "LogisticRegression": ("sklearn.linear_model", Task.classification),
    "RandomForestClassifier": ("sklearn.ensemble", Task.classification),
    "GradientBoostingClassifier": ("sklearn.ensemble", Task.classification),
    "HistGradientBoostingClassifier": ("sklearn.ensemble", Task.classification),
    "DecisionTreeClassifier": ("sklearn.tree", Task.classification),
    "KNeighborsClassifier": ("sklearn.neighbors", Task.classification),
    "LinearRegression": ("sklearn.linear_model", Task.regression),
    "Ridge": ("sklearn.linear_model", Task.regression),
    "RandomForestRegressor": ("sklearn.ensemble", Task.regression),
    "GradientBoostingRegressor": ("sklearn.ensemble", Task.regression),
    "HistGradientBoostingRegressor": ("sklearn.ensemble", Task.regression),
    "DecisionTreeRegressor": ("sklearn.tree", Task.regression),
}


class Metric(enum.StrEnum):
    """Evaluation metrics; higher is better for all but mae and rmse."""

    accuracy = "accuracy"
    f1 = "f1"
    roc_auc = "roc_auc"
    r2 = "r2"
    mae = "mae"
    rmse = "rmse"


METRICS_BY_TASK: Final[dict[Task, tuple[Metric, ...]]] = {
    Task.classification: (Metric.accuracy, Metric.f1, Metric.roc_auc),
    Task.regression: (Metric.r2, Metric.mae, Metric.rmse),
}
LOWER_IS_BETTER: Final = frozenset({Metric.mae, Metric.rmse})


class DriftMethod(enum.StrEnum):
    """Drift statistics; defaults and thresholds follow Evidently."""

    psi = "psi"
    ks = "ks"
    chi2 = "chi2"
    jensen_shannon = "jensen_shannon"
    wasserstein = "wasserstein"


class FeatureType(enum.StrEnum):
    numeric = "numeric"
    categorical = "categorical"


# --------------------------------------------------------------------------- #
# Payloads.  The API (CRD) models reuse the dataset shapes below so a Dataset's
# spec is passed to the runtime unchanged.
# --------------------------------------------------------------------------- #


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


Identifier = Annotated[
    str,
    Field(min_length=1, max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_.\- ]*$"),
]


class FeatureSpec(_Model):
    """One input column."""

    name: Identifier = Field(description="Column name in the data source.")
    type: FeatureType = Field(default=FeatureType.numeric, description="numeric or categorical.")
    allowed_values: list[Annotated[str, Field(max_length=256)]] | None = Field(
        default=None,
        alias="allowedValues",
        max_length=1000,
        description="For categorical features: the only values allowed.",
    )


class ValidationRules(_Model):
    """Rules the data must meet; a failed rule fails the Dataset with its name."""

    min_rows: int | None = Field(
        default=None, alias="minRows", ge=1, description="Fewest rows accepted."
    )
    max_rows: int | None = Field(
        default=None, alias="maxRows", ge=1, description="Most rows accepted."
    )
    max_null_ratio: float = Field(
        default=0.0,
        alias="maxNullRatio",
        ge=0.0,
        le=1.0,
        description="Largest fraction of missing values allowed in any column.",
    )


class DatasetSpec(_Model):
    """Where the data is and what it must look like (shared with the CRD)."""

    source: str = Field(
        min_length=1,
        max_length=2048,
        pattern=r"^(/|file://|https?://|s3://)",
        description=(
            "URI of a CSV or Parquet file: an absolute path on the artifact volume "
            "(/artifacts/...), file://, http(s):// or s3://."
        ),
    )
    format: Literal["csv", "parquet", "auto"] = Field(
        default="auto", description="File format; auto picks by the file extension."
    )
    features: list[FeatureSpec] = Field(
        min_length=1,
        max_length=512,
        description="Input columns used for training (names unique).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    target: Identifier = Field(description="Column holding the label to predict.")
    validation: ValidationRules = Field(
        default_factory=ValidationRules, description="Data validation rules."
    )


class Evaluation(_Model):
    """How a trained model is scored and gated."""

    test_size: float = Field(
        default=0.2,
        alias="testSize",
        gt=0.0,
        lt=1.0,
        description="Fraction of rows held out for evaluation.",
    )
    random_state: int = Field(
        default=0, alias="randomState", ge=0, description="Seed of the split."
    )
    metrics: list[Metric] = Field(
        default_factory=list,
        max_length=6,
        description="Metrics to compute; empty means all metrics of the task.",
    )
    min_scores: dict[str, float] = Field(
        default_factory=dict,
        alias="minScores",
        description=(
            "Gates: metric name -> minimum (maximum for mae/rmse). A model that "
            "misses a gate is rejected."
        ),
    )


class ProfileRequest(_Model):
    """`driftloop-runtime profile`: validate a dataset, digest and profile it."""

    dataset: DatasetSpec
    #: Directory (under ARTIFACT_MOUNT) or s3:// prefix where profile.json is written.
    output_dir: str = Field(alias="outputDir")


class ProfileResult(_Model):
    ok: bool
    digest: str | None = Field(default=None, description="sha256:<hex> of the content.")
    rows: int | None = None
    columns: int | None = None
    profile_uri: str | None = Field(default=None, alias="profileUri")
    #: Set when ``ok`` is false: the rule that failed and the column concerned.
    reason: str | None = None
    rule: str | None = None
    column: str | None = None
    message: str | None = None


class TrainRequest(_Model):
    """`driftloop-runtime train`: one training attempt."""

    model_name: str = Field(alias="modelName")
    dataset: DatasetSpec
    estimator: str
    hyperparameters: dict[str, bool | int | float | str | None] = Field(default_factory=dict)
    evaluation: Evaluation = Field(default_factory=Evaluation)
    #: Final artifact directory (under ARTIFACT_MOUNT), written atomically, or an
    #: s3:// prefix, committed by writing its manifest last.
    output_dir: str = Field(alias="outputDir")


class TrainResult(_Model):
    ok: bool
    artifact_uri: str | None = Field(default=None, alias="artifactUri")
    sha256: str | None = Field(default=None, description="hex digest of MODEL_FILE")
    dataset_digest: str | None = Field(default=None, alias="datasetDigest")
    rows: int | None = None
    task: Task | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    gates_passed: bool | None = Field(default=None, alias="gatesPassed")
    failed_gates: list[str] = Field(default_factory=list, alias="failedGates")
    reason: str | None = None
    rule: str | None = None
    column: str | None = None
    message: str | None = None


def dump_result(result: ProfileResult | TrainResult) -> str:
    """Serialise a result for the termination message (always < 4 KiB)."""
    text = result.model_dump_json(by_alias=True, exclude_none=True)
    if len(text.encode()) <= TERMINATION_MESSAGE_LIMIT:
        return text
    # Only a very long message can overflow; keep the machine-readable part.
    clipped = result.model_copy(update={"message": (result.message or "")[:512]})
    return clipped.model_dump_json(by_alias=True, exclude_none=True)[:TERMINATION_MESSAGE_LIMIT]


# --------------------------------------------------------------------------- #
# Additions by the runtime (issue 4).  Nothing above was renamed or removed.
# --------------------------------------------------------------------------- #

#: Optional env overrides (tests, local runs); the operator need not set them.
ENV_TERMINATION_LOG: Final = "DRIFTLOOP_TERMINATION_LOG"
#: "false"/"0"/"off" disables drift tracking in ``serve`` (benchmarks); default on.
ENV_DRIFT_ENABLED: Final = "DRIFTLOOP_DRIFT_ENABLED"
#: Largest accepted inference request body in bytes (413 above it).
ENV_MAX_REQUEST_BYTES: Final = "DRIFTLOOP_MAX_REQUEST_BYTES"
#: Log level of the runtime (DEBUG, INFO, WARNING...).
ENV_LOG_LEVEL: Final = "DRIFTLOOP_LOG_LEVEL"

DEFAULT_DRIFT_METHOD: Final = DriftMethod.psi
#: Rows of live input kept in the sliding drift window (shared by all workers).
DEFAULT_DRIFT_WINDOW: Final = 1000
DEFAULT_WORKERS: Final = 1
DEFAULT_MAX_REQUEST_BYTES: Final = 8 * 1024 * 1024

#: ``driftloop_feature_drift_score`` is "higher means more drift" for every
#: method, so ``max(...) > threshold`` is always the drift test:
#:   psi, jensen_shannon, wasserstein (normed by the reference std): the distance;
#:   ks, chi2: 1 - p-value (0.95 == Evidently's "p < 0.05").
#: The raw statistic and p-value are exported too (METRIC_FEATURE_DRIFT_STATISTIC,
#: METRIC_FEATURE_DRIFT_PVALUE).  Categorical features use chi2 under ``ks`` and
#: jensen_shannon under ``wasserstein`` (the label keeps the configured method).
DRIFT_THRESHOLDS: Final[dict[DriftMethod, float]] = {
    DriftMethod.psi: 0.1,
    DriftMethod.ks: 0.95,
    DriftMethod.chi2: 0.95,
    DriftMethod.jensen_shannon: 0.1,
    DriftMethod.wasserstein: 0.1,
}

METRIC_FEATURE_DRIFT_STATISTIC: Final = "driftloop_feature_drift_statistic"
METRIC_FEATURE_DRIFT_PVALUE: Final = "driftloop_feature_drift_p_value"
#: Drift of the prediction distribution vs the reference predictions.
METRIC_PREDICTION_DRIFT: Final = "driftloop_prediction_drift_score"
#: Rows currently in the drift window (fill ratio = rows / window).
METRIC_DRIFT_WINDOW_ROWS: Final = "driftloop_drift_window_rows"
#: Regression predictions: histogram over the reference prediction quantiles.
METRIC_PREDICTION_VALUE: Final = "driftloop_prediction_value"
METRIC_FEEDBACK: Final = "driftloop_feedback_total"
#: Rows of ground truth behind METRIC_LIVE_SCORE.
METRIC_LIVE_SCORE_ROWS: Final = "driftloop_live_score_rows"
#: Runtime extension to OIP v2: POST ground-truth labels for a past request id:
#:   {"id": "<response id>", "labels": [...]}  (one label per row, in order).
PATH_FEEDBACK_SUFFIX: Final = "/feedback"

#: Exit codes.  EXIT_INVALID_INPUT is deterministic (bad data, bad hyperparameters,
#: unknown estimator): a Job should not retry it (podFailurePolicy FailJob).
EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
EXIT_INVALID_INPUT: Final = 3

#: ``reason`` values of failed results.
REASON_VALIDATION_FAILED: Final = "ValidationFailed"
REASON_INVALID_HYPERPARAMETERS: Final = "InvalidHyperparameters"
REASON_UNKNOWN_ESTIMATOR: Final = "UnknownEstimator"
REASON_INVALID_REQUEST: Final = "InvalidRequest"
REASON_DATA_UNAVAILABLE: Final = "DataUnavailable"
REASON_TRAINING_FAILED: Final = "TrainingFailed"
REASON_OUTPUT_CONFLICT: Final = "OutputConflict"
#: The s3:// artifact store could not be read or written (transient: exit 1).
REASON_ARTIFACT_STORE_UNAVAILABLE: Final = "ArtifactStoreUnavailable"


class ValidationRule(enum.StrEnum):
    """``rule`` values of a ValidationFailed result (camelCase like the CRD)."""

    readable = "readable"  # the file could not be parsed as CSV/Parquet
    missing_column = "missingColumn"
    missing_target = "missingTarget"
    min_rows = "minRows"
    max_rows = "maxRows"
    max_null_ratio = "maxNullRatio"
    allowed_values = "allowedValues"
    numeric_type = "numericType"
    target_classes = "targetClasses"  # classification target with < 2 classes


# --------------------------------------------------------------------------- #
# S3-compatible artifact store.  With it the operator mounts no volume: artifact
# directories are ``s3://<bucket>/...`` prefixes and the pods get these env vars
# (the credentials from a Secret).  The names are the AWS SDKs' own, so any other
# tool in the image (aws CLI, boto3) sees the same store.
# --------------------------------------------------------------------------- #

S3_SCHEME: Final = "s3://"
#: Endpoint of an S3-compatible server (MinIO, Ceph RGW...); unset means AWS S3.
#: The runtime passes it to s3fs explicitly (older botocore ignores this variable).
ENV_S3_ENDPOINT: Final = "AWS_ENDPOINT_URL"
ENV_AWS_ACCESS_KEY_ID: Final = "AWS_ACCESS_KEY_ID"
ENV_AWS_SECRET_ACCESS_KEY: Final = "AWS_SECRET_ACCESS_KEY"
#: Keys of the credentials Secret the operator reads into the two variables above.
S3_SECRET_KEYS: Final = (ENV_AWS_ACCESS_KEY_ID, ENV_AWS_SECRET_ACCESS_KEY)
