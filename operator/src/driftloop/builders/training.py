"""batch/v1 Jobs running the runtime's ``train`` and ``profile`` commands."""

from __future__ import annotations

import driftloop_contract as contract
from driftloop import naming
from driftloop.api import DatasetSpec, TrainingRunSpec
from driftloop.config import OperatorConfig

from .common import (
    Manifest,
    Owner,
    container_security_context,
    env,
    labels,
    metadata,
    pod_security_context,
    resources,
    store_env,
    volume_mounts,
    volumes,
)

#: Seconds a finished Job's pods stay around for debugging once the parent is done.
_INPUT_ERROR_EXIT = contract.EXIT_INVALID_INPUT


def _job(
    *,
    name: str,
    owner: Owner,
    lbls: dict[str, str],
    command: str,
    request: str,
    image: str,
    config: OperatorConfig,
    container_resources: Manifest,
    backoff_limit: int,
    deadline: int,
    read_only_artifacts: bool,
) -> Manifest:
    container: Manifest = {
        "name": command,
        "image": image,
        "imagePullPolicy": config.image_pull_policy,
        "args": [command],
        "env": [
            *env({contract.ENV_REQUEST: request, contract.ENV_SCRATCH_DIR: "/tmp"}),
            *store_env(config, config.artifact_root),
        ],
        "resources": container_resources,
        "securityContext": container_security_context(),
        "volumeMounts": volume_mounts(config.artifact_root, read_only=read_only_artifacts),
        "terminationMessagePath": contract.TERMINATION_MESSAGE_PATH,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata(name, owner, owner.namespace, lbls),
        "spec": {
            "backoffLimit": backoff_limit,
            "activeDeadlineSeconds": deadline,
            # Bad data or hyperparameters fail the same way every time: don't retry.
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": command,
                            "operator": "In",
                            "values": [_INPUT_ERROR_EXIT],
                        },
                    }
                ]
            },
            "template": {
                "metadata": {"labels": dict(lbls)},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": pod_security_context(),
                    "containers": [container],
                    "volumes": volumes(config, config.artifact_root, read_only=read_only_artifacts),
                },
            },
        },
    }


def training_job(
    owner: Owner,
    spec: TrainingRunSpec,
    dataset: DatasetSpec,
    config: OperatorConfig,
    snapshot: contract.SnapshotRef | None = None,
) -> Manifest:
    """The Job of one TrainingRun; its pod reports a TrainResult as termination message.

    ``snapshot``: the validated dataset version to train on (None: the live source,
    for a Dataset profiled before snapshots existed).
    """
    request = contract.TrainRequest(
        snapshot=snapshot,
        sampling=spec.sampling.to_contract() if spec.sampling else None,
        model_name=spec.model,
        dataset=dataset.to_contract(),
        estimator=str(spec.estimator.type),
        hyperparameters=spec.estimator.hyperparameters,
        evaluation=spec.evaluation.to_contract(),
        output_dir=naming.artifact_dir(config.artifact_root, spec.model, owner.name, owner.uid),
    )
    lbls = labels(
        "training",
        owner.name,
        **{naming.LABEL_TRAINING_RUN: owner.name, naming.LABEL_MODEL: spec.model},
    )
    return _job(
        name=naming.training_job(owner.name),
        owner=owner,
        lbls=lbls,
        command=contract.COMMAND_TRAIN,
        request=request.model_dump_json(by_alias=True),
        image=spec.image or config.runtime_image,
        config=config,
        container_resources=resources(spec.resources),
        backoff_limit=spec.backoff_limit,
        deadline=spec.active_deadline_seconds,
        read_only_artifacts=False,
    )


PROFILING = "profiling"


def profile_jobs_selector(dataset: str) -> str:
    """Label selector matching every profile Job of one Dataset."""
    return f"{naming.LABEL_COMPONENT}={PROFILING},{naming.LABEL_DATASET}={dataset}"


def profile_job(
    owner: Owner,
    spec: DatasetSpec,
    generation: int,
    refresh: int,
    config: OperatorConfig,
) -> Manifest:
    """The Job validating, digesting and profiling one Dataset version."""
    request = contract.ProfileRequest(
        dataset=spec.to_contract(),
        output_dir=naming.dataset_profile_dir(
            config.artifact_root, owner.name, owner.uid, generation, refresh
        ),
        snapshot_root=contract.snapshot_root(config.artifact_root),
        superseded_profiles_root=naming.dataset_profiles_root(
            config.artifact_root, owner.name, owner.uid
        ),
    )
    lbls = labels(PROFILING, owner.name, **{naming.LABEL_DATASET: owner.name})
    return _job(
        name=naming.profile_job(owner.name, generation, refresh),
        owner=owner,
        lbls=lbls,
        command=contract.COMMAND_PROFILE,
        request=request.model_dump_json(by_alias=True),
        image=config.runtime_image,
        config=config,
        container_resources=resources(spec.resources),
        backoff_limit=1,
        deadline=1800,
        read_only_artifacts=False,
    )
