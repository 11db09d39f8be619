"""Small data sets for cluster and e2e tests (made from scikit-learn's bundled data), and
the manifests of our kinds that the tests, the demo and the benchmarks create."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
TARGET = "species"
API_VERSION = "driftloop.dev/v1alpha1"


def iris_csv(shift: float = 0.0, nulls: int = 0, seed: int = 0, repeat: int = 1) -> str:
    """Iris as CSV; ``shift`` adds to every feature (covariate drift), ``nulls`` blanks cells."""
    import pandas as pd
    from sklearn.datasets import load_iris

    data = load_iris(as_frame=True)
    frame = data.frame.rename(columns=dict(zip(data.feature_names, FEATURES, strict=True)))
    frame[TARGET] = [str(data.target_names[t]) for t in data.target]
    frame = frame.drop(columns=["target"])
    frame = pd.concat([frame] * repeat, ignore_index=True)
    rng = np.random.default_rng(seed)
    frame[FEATURES] = frame[FEATURES] + shift + rng.normal(0, 0.05, size=(len(frame), 4))
    frame[FEATURES] = frame[FEATURES].round(3)
    if nulls:
        frame.loc[: nulls - 1, FEATURES[0]] = None
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue()


def dataset_manifest(
    name: str, source: str, *, refresh_interval: str | None = None, **validation: object
) -> dict[str, Any]:
    """A Dataset of iris-shaped CSV at ``source``; ``validation`` adds rules to minRows."""
    manifest: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "Dataset",
        "metadata": {"name": name},
        "spec": {
            "source": source,
            "features": [{"name": f} for f in FEATURES],
            "target": TARGET,
            "validation": {"minRows": 50, **validation},
        },
    }
    if refresh_interval is not None:
        manifest["spec"]["refreshInterval"] = refresh_interval
    return manifest


def model_version_manifest(name: str, model: str = "m", version: int = 1) -> dict[str, Any]:
    """A hand-registered ModelVersion (no TrainingRun behind it)."""
    return {
        "apiVersion": API_VERSION,
        "kind": "ModelVersion",
        "metadata": {"name": name},
        "spec": {
            "model": model,
            "version": version,
            "task": "classification",
            "artifact": {"uri": f"file:///artifacts/models/{model}/x", "sha256": "a" * 64},
        },
    }


def training_run_manifest(
    name: str, dataset: str, model: str = "iris", **spec: object
) -> dict[str, Any]:
    """A random forest on ``dataset`` that must reach accuracy 0.7."""
    return {
        "apiVersion": API_VERSION,
        "kind": "TrainingRun",
        "metadata": {"name": name},
        "spec": {
            "model": model,
            "datasetRef": {"name": dataset},
            "estimator": {
                "type": "RandomForestClassifier",
                "hyperparameters": {"n_estimators": 20},
            },
            "evaluation": {"minScores": {"accuracy": 0.7}},
            "activeDeadlineSeconds": 600,
            **spec,
        },
    }


def training_template(dataset: str = "iris") -> dict[str, Any]:
    """A Deployment's retraining template: a TrainingRun's spec without the model."""
    spec = training_run_manifest("template", dataset)["spec"]
    return {k: v for k, v in spec.items() if k != "model"}


def deployment_manifest(
    name: str = "iris",
    model: str = "iris",
    *,
    channel: str | None = None,
    version: int | None = None,
    **spec: object,
) -> dict[str, Any]:
    """A Deployment serving ``model``: a pinned ``version``, a ``channel``, or the default."""
    selector: dict[str, Any] = {"name": model}
    if channel is not None:
        selector["channel"] = channel
    if version is not None:
        selector["version"] = version
    return {
        "apiVersion": API_VERSION,
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"model": selector, **spec},
    }


def drift_loop_deployment(
    name: str = "iris",
    *,
    model: str = "iris",
    dataset: str = "iris",
    prometheus: str | None = None,
    channel: str | None = None,
    rollout_deadline: str = "2m",
    **retraining: object,
) -> dict[str, Any]:
    """The Deployment of the whole loop: PSI drift over 200 rows, retraining every 2s check
    (30m cooldown) with :func:`training_template`, promotion within 0.15 accuracy.

    ``prometheus`` is the address the operator queries (else the operator's own
    setting); ``retraining`` adds to or overrides the retraining spec (``triggers``...).
    """
    spec: dict[str, Any] = {
        "interval": "2s",
        "cooldown": "30m",
        "template": training_template(dataset),
    }
    if prometheus is not None:
        spec["prometheus"] = {"address": prometheus}
    return deployment_manifest(
        name,
        model,
        channel=channel,
        monitoring={"method": "psi", "window": 200},
        retraining={**spec, **retraining},
        promotion={"metric": "accuracy", "tolerance": 0.15, "rolloutDeadline": rollout_deadline},
    )


def infer_request(rows: list[list[float]]) -> dict[str, object]:
    """An Open Inference Protocol v2 request with one [N, 4] FP64 tensor."""
    return {
        "inputs": [
            {
                "name": "input-0",
                "shape": [len(rows), len(FEATURES)],
                "datatype": "FP64",
                "data": [v for row in rows for v in row],
            }
        ]
    }


#: The controlled-disparity data set (groups_csv): inputs, sensitive column, label.
GROUPS_FEATURES = ["score", "tenure"]
GROUPS_SENSITIVE = "group"
GROUPS_AGE = "age"
GROUPS_TARGET = "approved"


def groups_csv(gap: float, rows: int = 1000, seed: int = 0) -> str:
    """A binary task whose label follows ``score``, with a known disparity between the
    groups A and B of the column ``group`` (not a model input).

    Group A's scores are ``gap`` higher than group B's, so a model that learns the
    label from the score selects A more often: with gap 0 the groups differ by
    sampling noise only (fair), with gap 2 A's selection rate is about 0.6 higher
    than B's (biased).  ``age`` (numeric, independent of everything) is there to be
    binned.  The label's noise keeps every group's rates away from 0 and 1.
    """
    import pandas as pd

    rng = np.random.default_rng(seed)
    group = np.where(rng.random(rows) < 0.5, "A", "B")
    score = rng.normal(0.0, 1.0, rows) + np.where(group == "A", gap / 2, -gap / 2)
    tenure = rng.normal(5.0, 2.0, rows)
    label = score + rng.normal(0.0, 0.3, rows) > 0.0
    frame = pd.DataFrame(
        {
            "score": score.round(4),
            "tenure": tenure.round(3),
            GROUPS_SENSITIVE: group,
            GROUPS_AGE: rng.integers(18, 80, rows),
            GROUPS_TARGET: np.where(label, "yes", "no"),
        }
    )
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue()


def groups_dataset_manifest(name: str, source: str) -> dict[str, Any]:
    """A Dataset of groups_csv data: ``group`` and binned ``age`` are sensitive, not inputs."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Dataset",
        "metadata": {"name": name},
        "spec": {
            "source": source,
            "features": [{"name": f} for f in GROUPS_FEATURES],
            "target": GROUPS_TARGET,
            "task": "classification",
            "sensitiveFeatures": [
                {"name": GROUPS_SENSITIVE},
                {"name": GROUPS_AGE, "bins": [30, 50]},
            ],
            "validation": {"minRows": 100},
        },
    }
