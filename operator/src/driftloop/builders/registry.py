"""Objects the operator registers: ModelVersions and retraining TrainingRuns."""

from __future__ import annotations

import driftloop_contract as contract
from driftloop import naming
from driftloop.api import API_VERSION, ModelVersionSpec, TrainingRunSpec, TrainingRunTemplate

from .common import Manifest, Owner, labels, metadata


def model_version(
    run: Owner,
    spec: TrainingRunSpec,
    result: contract.TrainResult,
    version: int,
    image: str,
    image_digest: str | None = None,
    snapshot: str | None = None,
) -> Manifest:
    """A registry entry for a finished run.

    No owner reference: a ModelVersion outlives the TrainingRun that made it.
    The run's uid label lets a restarted operator find it instead of making another.
    """
    if result.artifact_uri is None or result.sha256 is None or result.task is None:
        raise ValueError("a successful TrainResult carries artifactUri, sha256 and task")
    mv_spec = ModelVersionSpec.model_validate(
        {
            "model": spec.model,
            "version": version,
            "task": result.task,
            "artifact": {"uri": result.artifact_uri, "sha256": result.sha256, "format": "skops"},
            "metrics": result.metrics,
            "gatesPassed": bool(result.gates_passed) if result.gates_passed is not None else True,
            "fairness": [f.model_dump(by_alias=True, exclude_none=True) for f in result.fairness],
            "lineage": {
                "dataset": spec.dataset_ref.name,
                "datasetDigest": result.dataset_digest,
                "trainingRun": run.name,
                "image": image,
                "estimator": str(spec.estimator.type),
                "hyperparameters": spec.estimator.hyperparameters,
                "datasetSnapshot": snapshot,
                "testSize": spec.evaluation.test_size,
                "randomState": spec.evaluation.random_state,
                "imageDigest": image_digest,
                "libraryVersions": dict(list(result.library_versions.items())[:16]),
            },
        }
    )
    lbls = labels(
        "registry",
        spec.model,
        **{
            naming.LABEL_MODEL: spec.model,
            naming.LABEL_MODEL_VERSION: str(version),
            naming.LABEL_TRAINING_RUN: run.name,
            naming.LABEL_TRAINING_RUN_UID: run.uid,
        },
    )
    return {
        "apiVersion": API_VERSION,
        "kind": "ModelVersion",
        "metadata": metadata(naming.model_version(spec.model, version), None, run.namespace, lbls),
        "spec": mv_spec.to_wire(),
    }


def retraining_run(
    deployment: Owner,
    model: str,
    template: TrainingRunTemplate,
    trigger: str,
    window: int,
) -> Manifest:
    """The TrainingRun a drift trigger starts; one name per trigger and cooldown window."""
    spec = TrainingRunSpec.model_validate({**template.model_dump(by_alias=True), "model": model})
    lbls = labels(
        "retraining",
        deployment.name,
        **{
            naming.LABEL_DEPLOYMENT: deployment.name,
            naming.LABEL_TRIGGER: trigger,
            naming.LABEL_MODEL: model,
        },
    )
    # Owned by the Deployment: deleting it cancels its retraining, not its ModelVersions.
    return {
        "apiVersion": API_VERSION,
        "kind": "TrainingRun",
        "metadata": metadata(
            naming.retraining_run(deployment.name, trigger, window),
            deployment,
            deployment.namespace,
            lbls,
        ),
        "spec": spec.to_wire(),
    }
