"""Kind metadata: names, short names, printer columns. Lives beside the models."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel

from ._base import API_VERSION, CATEGORY, GROUP, VERSION
from .dataset import DatasetSpec, DatasetStatus
from .deployment import DeploymentSpec, DeploymentStatus
from .modelversion import ModelVersionSpec, ModelVersionStatus
from .trainingrun import TrainingRunSpec, TrainingRunStatus

_READY = '.status.conditions[?(@.type=="Ready")].status'
_REASON = '.status.conditions[?(@.type=="Ready")].reason'


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    json_path: str
    type: str = "string"
    priority: int = 0
    description: str = ""


@dataclass(frozen=True)
class KindInfo:
    """Everything the CRD needs besides the schema."""

    kind: str
    plural: str
    short_names: tuple[str, ...]
    spec: type[BaseModel]
    status: type[BaseModel]
    description: str
    columns: tuple[PrinterColumn, ...] = field(default=())

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"

    group = GROUP
    version = VERSION
    api_version = API_VERSION
    categories = (CATEGORY,)


def _ready_columns() -> tuple[PrinterColumn, ...]:
    return (
        PrinterColumn("Ready", _READY),
        PrinterColumn("Reason", _REASON, priority=1),
        PrinterColumn("Age", ".metadata.creationTimestamp", "date"),
    )


DATASET = KindInfo(
    kind="Dataset",
    plural="datasets",
    short_names=("dset",),
    spec=DatasetSpec,
    status=DatasetStatus,
    description="Dataset: where training data is and what it must look like.",
    columns=(
        PrinterColumn("Phase", ".status.phase"),
        PrinterColumn("Rows", ".status.rows", "integer"),
        PrinterColumn("Version", ".status.version", priority=1),
        *_ready_columns(),
    ),
)

TRAINING_RUN = KindInfo(
    kind="TrainingRun",
    plural="trainingruns",
    short_names=("tr", "trun"),
    spec=TrainingRunSpec,
    status=TrainingRunStatus,
    description="TrainingRun: one training attempt, run as a batch/v1 Job.",
    columns=(
        PrinterColumn("Model", ".spec.model"),
        PrinterColumn("Dataset", ".spec.datasetRef.name", priority=1),
        PrinterColumn("Phase", ".status.phase"),
        PrinterColumn("ModelVersion", ".status.modelVersion"),
        *_ready_columns(),
    ),
)

MODEL_VERSION = KindInfo(
    kind="ModelVersion",
    plural="modelversions",
    short_names=("mv", "mver"),
    spec=ModelVersionSpec,
    status=ModelVersionStatus,
    description="ModelVersion: an immutable registry entry for one trained model.",
    columns=(
        PrinterColumn("Model", ".spec.model"),
        PrinterColumn("Version", ".spec.version", "integer"),
        PrinterColumn("Approval", ".status.approval"),
        PrinterColumn(
            "Approval Reason",
            ".status.approvalReason",
            priority=1,
            description="GatesPassed, FairnessGateFailed, GatesFailed, SetByUser, ...",
        ),
        PrinterColumn("Run", ".spec.lineage.trainingRun", priority=1),
        *_ready_columns(),
    ),
)

DEPLOYMENT = KindInfo(
    kind="Deployment",
    plural="deployments",
    short_names=("dldeploy", "dld"),
    spec=DeploymentSpec,
    status=DeploymentStatus,
    description="Deployment: serves a model version, watches drift, retrains and promotes.",
    columns=(
        PrinterColumn("Model", ".spec.model.name"),
        PrinterColumn("Serving", ".status.servingVersion", "integer"),
        PrinterColumn("Previous", ".status.previousVersion", "integer", priority=1),
        PrinterColumn("Replicas", ".status.readyReplicas", "integer"),
        PrinterColumn("Canary", ".status.canary.weight", "integer", priority=1),
        PrinterColumn(
            "Last Change",
            ".status.history[0].reason",
            description="Why the version served last changed (status.history, newest first).",
        ),
        PrinterColumn("URL", ".status.url", priority=1),
        *_ready_columns(),
    ),
)

ALL_KINDS: tuple[KindInfo, ...] = (DATASET, TRAINING_RUN, MODEL_VERSION, DEPLOYMENT)
