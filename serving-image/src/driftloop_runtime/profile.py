"""Reference profiles: the drift baseline written next to a model or dataset.

profile.json (version 1)::

    {"version": 1, "rows": N,
     "features": [
       {"name": "x", "type": "numeric", "edges": [9 inner quantile edges],
        "proportions": [10 reference bin proportions], "sample": [<=1000 values],
        "mean": .., "std": .., "min": .., "max": .., "nullRatio": ..},
       {"name": "c", "type": "categorical", "categories": ["a", "b"],
        "proportions": [pa, pb, 0.0], "nullRatio": ..}   # last slot = unseen values
     ],
     "prediction": {...numeric or categorical entry named "prediction"...}}

Numeric bins are the reference deciles, open-ended at both ends (values outside
the reference range fall in the first/last bin).  Duplicate edges are removed,
so a discrete feature may have fewer bins.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from driftloop_runtime import drift

PROFILE_VERSION = 1
N_BINS = 10
SAMPLE_SIZE = 1000
MAX_CATEGORIES = 1000


def numeric_entry(name: str, values: npt.ArrayLike, seed: int = 0) -> dict[str, Any]:
    x = np.asarray(values, dtype=np.float64)
    null_ratio = float(np.mean(~np.isfinite(x))) if x.size else 0.0
    x = x[np.isfinite(x)]
    if x.size == 0:
        return {
            "name": name,
            "type": "numeric",
            "edges": [],
            "proportions": [1.0],
            "sample": [],
            "mean": 0.0,
            "std": 0.0,
            "min": 0.0,
            "max": 0.0,
            "nullRatio": null_ratio,
        }
    qs = np.quantile(x, np.linspace(0.0, 1.0, N_BINS + 1))
    edges = np.unique(qs[1:-1])
    props = drift.proportions(drift.histogram(edges, x))
    rng = np.random.default_rng(seed)
    sample = x if x.size <= SAMPLE_SIZE else rng.choice(x, SAMPLE_SIZE, replace=False)
    return {
        "name": name,
        "type": "numeric",
        "edges": edges.tolist(),
        "proportions": props.tolist(),
        "sample": np.sort(sample).tolist(),
        "mean": float(x.mean()),
        "std": float(x.std()),
        "min": float(x.min()),
        "max": float(x.max()),
        "nullRatio": null_ratio,
    }


def categorical_entry(
    name: str, values: npt.ArrayLike, categories: list[str] | None = None
) -> dict[str, Any]:
    """Category frequencies; ``categories`` fixes the order (e.g. a model's classes)."""
    arr = np.asarray(values, dtype=object).ravel()
    strs = np.array([str(v) for v in arr], dtype=str)
    if categories is None:
        cats, counts = np.unique(strs, return_counts=True)
        order = np.argsort(-counts, kind="stable")[:MAX_CATEGORIES]
        cats, counts = cats[order], counts[order]
    else:
        cats = np.array(categories, dtype=str)
        index = {c: i for i, c in enumerate(categories)}
        counts = np.zeros(len(categories), dtype=np.float64)
        for s_ in strs:
            i = index.get(str(s_))
            if i is not None:
                counts[i] += 1
    props = np.append(counts / max(len(strs), 1), 0.0)  # last slot: unseen
    return {
        "name": name,
        "type": "categorical",
        "categories": [str(c) for c in cats],
        "proportions": props.tolist(),
        "nullRatio": 0.0,
    }


def build(
    features: list[tuple[str, bool]],
    matrix: Any,
    predictions: npt.ArrayLike | None = None,
    prediction_categories: list[str] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Profile of ``matrix`` (rows x features); ``features`` = [(name, is_categorical)]."""
    m = np.asarray(matrix)
    out: dict[str, Any] = {"version": PROFILE_VERSION, "rows": int(m.shape[0]), "features": []}
    for j, (name, is_cat) in enumerate(features):
        col = m[:, j]
        out["features"].append(
            categorical_entry(name, col) if is_cat else numeric_entry(name, col, seed)
        )
    if predictions is not None:
        out["prediction"] = (
            categorical_entry("prediction", predictions, prediction_categories)
            if prediction_categories is not None
            else numeric_entry("prediction", predictions, seed)
        )
    return out
