"""The ``train`` and ``profile`` Jobs: request, result, exit codes.

The operator passes the JSON of a *Request in $DRIFTLOOP_REQUEST; the container
reports the JSON of a *Result in its termination message.
"""

from __future__ import annotations

from typing import Final

from pydantic import Field, model_validator

from ._base import Payload
from .data import DatasetSpec
from .fairness import FairnessGates, FeatureFairness, keep_groups
from .tasks import Metric, Task

#: Container entrypoint: ``driftloop-runtime <command>``.
ENTRYPOINT: Final = "driftloop-runtime"
COMMAND_TRAIN: Final = "train"
COMMAND_PROFILE: Final = "profile"
#: Log level of the runtime, every command (DEBUG, INFO, WARNING...).
ENV_LOG_LEVEL: Final = "DRIFTLOOP_LOG_LEVEL"

#: Env var carrying the JSON request of ``train`` and ``profile``.
ENV_REQUEST: Final = "DRIFTLOOP_REQUEST"
#: Kubernetes' default termination message path; the runtime writes results here.
TERMINATION_MESSAGE_PATH: Final = "/dev/termination-log"
#: Kubernetes truncates termination messages at 4096 bytes.
TERMINATION_MESSAGE_LIMIT: Final = 4096
#: Overrides TERMINATION_MESSAGE_PATH (tests, local runs); the operator need not set it.
ENV_TERMINATION_LOG: Final = "DRIFTLOOP_TERMINATION_LOG"

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
#: The requested dataset snapshot is not in the store (never validated, or removed).
REASON_SNAPSHOT_MISSING: Final = "SnapshotMissing"
#: A stored snapshot's bytes do not hash to its digest: refused, nothing is trained.
REASON_SNAPSHOT_CORRUPT: Final = "SnapshotCorrupt"


class Evaluation(Payload):
    """How a trained model is scored and gated."""

    #: Fraction of rows held out for evaluation.
    test_size: float = Field(default=0.2, alias="testSize", gt=0.0, lt=1.0)
    #: Seed of the split.
    random_state: int = Field(default=0, alias="randomState", ge=0)
    #: Metrics to compute; empty means all metrics of the task.
    metrics: list[Metric] = Field(default_factory=list, max_length=6)
    #: Gates: metric name -> minimum (maximum for LOWER_IS_BETTER metrics).  A model
    #: that misses a gate is rejected.
    min_scores: dict[str, float] = Field(default_factory=dict, alias="minScores")
    #: Gates on the disparities between the groups of the dataset's sensitive
    #: features.  A model that misses one is rejected.
    fairness: FairnessGates | None = None


class SnapshotRef(Payload):
    """A content-addressed dataset snapshot (layout.snapshot_location)."""

    uri: str = Field(min_length=1, max_length=2048)
    digest: str = Field(pattern=r"^sha256:[a-f0-9]{64}$")


class ProfileRequest(Payload):
    """`driftloop-runtime profile`: validate a dataset, digest and profile it."""

    dataset: DatasetSpec
    #: Directory (under ARTIFACT_MOUNT) or s3:// prefix where profile.json is written.
    output_dir: str = Field(alias="outputDir")
    #: layout.snapshot_root of the artifact store: a validated version is stored
    #: there under its digest (once).  None: no snapshot is kept.
    snapshot_root: str | None = Field(default=None, alias="snapshotRoot")
    #: The parent of ``outputDir`` holding this Dataset's earlier profiles (one entry per
    #: generation and refresh window).  Once this profile is written, every other entry
    #: under it is removed: nothing reads a superseded profile.  None: nothing is removed.
    superseded_profiles_root: str | None = Field(default=None, alias="supersededProfilesRoot")

    @model_validator(mode="after")
    def _output_dir_is_directly_under_the_superseded_root(self) -> ProfileRequest:
        root = (self.superseded_profiles_root or "").rstrip("/")
        name = self.output_dir.rstrip("/").removeprefix(root + "/")
        if root and (name == self.output_dir.rstrip("/") or not name or "/" in name):
            raise ValueError(
                f"outputDir {self.output_dir!r} is not directly under "
                f"supersededProfilesRoot {root!r}"
            )
        return self


class ProfileResult(Payload):
    ok: bool
    #: sha256:<hex> of the content.
    digest: str | None = None
    rows: int | None = None
    columns: int | None = None
    profile_uri: str | None = Field(default=None, alias="profileUri")
    #: Where the validated content is stored (layout.snapshot_location).
    snapshot_uri: str | None = Field(default=None, alias="snapshotUri")
    #: Set when ``ok`` is false: the rule that failed and the column concerned.
    reason: str | None = None
    rule: str | None = None
    column: str | None = None
    message: str | None = None


class Sampling(Payload):
    """Train on a sample of the rows (estimators that cannot learn incrementally)."""

    #: Rows kept (when the data has more), drawn with the evaluation seed.
    max_rows: int = Field(alias="maxRows", ge=2)
    #: Keep each class's share of the rows (classification only).
    stratified: bool = True


class TrainRequest(Payload):
    """`driftloop-runtime train`: one training attempt."""

    model_name: str = Field(alias="modelName")
    dataset: DatasetSpec
    estimator: str
    hyperparameters: dict[str, bool | int | float | str | None] = Field(default_factory=dict)
    evaluation: Evaluation = Field(default_factory=Evaluation)
    #: Final artifact directory (under ARTIFACT_MOUNT), written atomically, or an
    #: s3:// prefix, committed by writing its manifest last.
    output_dir: str = Field(alias="outputDir")
    #: Train on this validated snapshot (its digest checked on read) instead of
    #: re-reading ``dataset.source``.
    snapshot: SnapshotRef | None = None
    sampling: Sampling | None = None


class TrainResult(Payload):
    ok: bool
    artifact_uri: str | None = Field(default=None, alias="artifactUri")
    #: hex digest of MODEL_FILE.
    sha256: str | None = None
    dataset_digest: str | None = Field(default=None, alias="datasetDigest")
    #: The snapshot trained on (None: the live source was read).
    snapshot_uri: str | None = Field(default=None, alias="snapshotUri")
    rows: int | None = None
    task: Task | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    #: False when a minScores gate or a fairness gate failed.
    gates_passed: bool | None = Field(default=None, alias="gatesPassed")
    #: The minScores gates that failed (fairness gates: in ``fairness``).
    failed_gates: list[str] = Field(default_factory=list, alias="failedGates")
    #: Per sensitive feature: per-group metrics, disparities, failed fairness gates.
    #: Bounded to fit the termination message (dump_result); the full report is
    #: the artifact set's FAIRNESS_FILE.
    fairness: list[FeatureFairness] = Field(default_factory=list)
    #: Versions of the libraries that trained the model (python, scikit-learn...).
    library_versions: dict[str, str] = Field(default_factory=dict, alias="libraryVersions")
    reason: str | None = None
    rule: str | None = None
    column: str | None = None
    message: str | None = None


#: Groups per feature tried, in turn, until a result with a fairness report fits.
_GROUP_LIMITS = (4, 2, 0)


def dump_result(result: ProfileResult | TrainResult) -> str:
    """Serialise a result for the termination message (always < 4 KiB)."""
    text = result.model_dump_json(by_alias=True, exclude_none=True)
    if len(text.encode()) <= TERMINATION_MESSAGE_LIMIT:
        return text
    if isinstance(result, TrainResult) and result.fairness:
        # Fewer groups listed (counted instead): the disparities and failed gates,
        # which decide the approval, stay.
        for limit in _GROUP_LIMITS:
            result = result.model_copy(update={"fairness": keep_groups(result.fairness, limit)})
            text = result.model_dump_json(by_alias=True, exclude_none=True)
            if len(text.encode()) <= TERMINATION_MESSAGE_LIMIT:
                return text
    # Only a very long message can overflow; keep the machine-readable part.
    clipped = result.model_copy(update={"message": (result.message or "")[:512]})
    return clipped.model_dump_json(by_alias=True, exclude_none=True)[:TERMINATION_MESSAGE_LIMIT]
