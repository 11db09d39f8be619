"""Small data sets for cluster and e2e tests, made from scikit-learn's bundled data."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
TARGET = "species"


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


def dataset_manifest(name: str, source: str, **validation: object) -> dict[str, Any]:
    return {
        "apiVersion": "driftloop.dev/v1alpha1",
        "kind": "Dataset",
        "metadata": {"name": name},
        "spec": {
            "source": source,
            "features": [{"name": f} for f in FEATURES],
            "target": TARGET,
            "validation": {"minRows": 50, **validation},
        },
    }


def model_version_manifest(name: str, model: str = "m", version: int = 1) -> dict[str, object]:
    """A hand-registered ModelVersion (no TrainingRun behind it)."""
    return {
        "apiVersion": "driftloop.dev/v1alpha1",
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
) -> dict[str, object]:
    return {
        "apiVersion": "driftloop.dev/v1alpha1",
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
