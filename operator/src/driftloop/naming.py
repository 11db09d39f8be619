"""Deterministic names of everything the operator creates.

A retry or a restart must find, not duplicate, what an earlier attempt made, so
every child name is a pure function of its parent.  Names that could exceed a
DNS label are shortened with a stable hash suffix.
"""

from __future__ import annotations

import hashlib

from driftloop.api import GROUP

MAX_NAME = 63

LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_MODEL = f"{GROUP}/model"
LABEL_MODEL_VERSION = f"{GROUP}/model-version"
LABEL_DEPLOYMENT = f"{GROUP}/deployment"
LABEL_DATASET = f"{GROUP}/dataset"
LABEL_TRAINING_RUN = f"{GROUP}/training-run"
LABEL_TRAINING_RUN_UID = f"{GROUP}/training-run-uid"
LABEL_TRIGGER = f"{GROUP}/trigger"
#: On a canary's predictor and pods: "canary" (the serving predictor's pods have none).
LABEL_TRACK = f"{GROUP}/track"
TRACK_CANARY = "canary"
ANNOTATION_SPEC_HASH = f"{GROUP}/spec-hash"


def short_hash(*parts: str, length: int = 8) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:length]


def child_name(parent: str, suffix: str, max_length: int = MAX_NAME) -> str:
    """``<parent>-<suffix>``, shortened deterministically when too long."""
    name = f"{parent}-{suffix}"
    if len(name) <= max_length:
        return name
    digest = short_hash(parent, suffix)
    keep = max_length - len(suffix) - len(digest) - 2
    return f"{parent[:keep].rstrip('-')}-{digest}-{suffix}"


def training_job(run: str) -> str:
    return child_name(run, "train")


def profile_job(dataset: str, generation: int, refresh: int = 0) -> str:
    suffix = f"profile-g{generation}" + (f"-r{refresh}" if refresh else "")
    return child_name(dataset, suffix)


def model_version(model: str, version: int) -> str:
    return f"{model}-v{version}"


def predictor(deployment: str) -> str:
    """The apps/v1 Deployment and Service serving a driftloop Deployment."""
    return child_name(deployment, "predictor", max_length=MAX_NAME - 10)


def canary_predictor(deployment: str) -> str:
    """The apps/v1 Deployment running a canary's candidate, behind the predictor's Service."""
    return child_name(deployment, "canary", max_length=MAX_NAME - 10)


def shadow(deployment: str) -> str:
    """The apps/v1 Deployment and Service of a candidate shadowing live traffic."""
    return child_name(deployment, "shadow", max_length=MAX_NAME - 10)


def retraining_run(deployment: str, trigger: str, window: int) -> str:
    """One TrainingRun per trigger per cooldown window: retries find, not duplicate, it."""
    return child_name(deployment, f"{trigger}-{window}")


def artifact_dir(root: str, model: str, run: str, run_uid: str) -> str:
    return f"{root}/models/{model}/{run}-{run_uid[:8]}"


def dataset_profiles_root(root: str, dataset: str, uid: str) -> str:
    """Where every profile of one Dataset object is written, one entry per version."""
    return f"{root}/datasets/{dataset}-{uid[:8]}"


def dataset_profile_dir(root: str, dataset: str, uid: str, generation: int, refresh: int) -> str:
    return f"{dataset_profiles_root(root, dataset, uid)}/g{generation}-r{refresh}"
