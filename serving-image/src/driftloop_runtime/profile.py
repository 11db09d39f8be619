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
     "prediction": {...numeric or categorical entry named "prediction"...},
     "calibration": {"version": 1, "windows": [50, 100, ...], "referenceRows": N,
                     "draws": .., "seed": .., "features": {"x": {"psi": {"mean": [..],
                     "var": [..]}, "jensen_shannon": {..}}}}}

``calibration`` is the no-drift distribution of the binned statistics per live window
size (driftloop_runtime.calibration); profiles without it get fixed thresholds.

Numeric bins are the reference deciles, open-ended at both ends (values outside
the reference range fall in the first/last bin).  Duplicate edges are removed,
so a discrete feature may have fewer bins.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

import driftloop_contract as contract
from driftloop_runtime import calibration, drift

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


def categorical_counts(name: str, counts: Mapping[str, int], total: int) -> dict[str, Any]:
    """:func:`categorical_entry` from counts per value (``total``: every row, counted)."""
    cats = np.array(sorted(counts), dtype=str)
    freq = np.array([counts[c] for c in cats], dtype=np.int64)
    order = np.argsort(-freq, kind="stable")[:MAX_CATEGORIES]
    props = np.append(freq[order] / max(total, 1), 0.0)  # last slot: unseen
    return {
        "name": name,
        "type": "categorical",
        "categories": [str(c) for c in cats[order]],
        "proportions": props.tolist(),
        "nullRatio": 0.0,
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
    seed: int = 0,
) -> dict[str, Any]:
    """Profile of ``matrix`` (rows x features: an array, or a frame whose columns are
    taken by position); ``features`` = [(name, is_categorical)].  Training adds the
    "prediction" entry (:func:`prediction_entry`) once the model exists."""
    frame = hasattr(matrix, "iloc")
    m: Any = matrix if frame else np.asarray(matrix)
    out: dict[str, Any] = {"version": PROFILE_VERSION, "rows": int(m.shape[0]), "features": []}
    for j, (name, is_cat) in enumerate(features):
        col = m.iloc[:, j].to_numpy() if frame else m[:, j]
        out["features"].append(
            categorical_entry(name, col) if is_cat else numeric_entry(name, col, seed)
        )
    layout = drift.BinLayout.from_profile(
        [(f["name"], f["type"] == "categorical", f) for f in out["features"]],
        contract.MAX_EXPORTED_BINS,
    )
    out["calibration"] = calibration.calibrate(layout, out["rows"], seed)
    return out


def prediction_entry(
    predictions: npt.ArrayLike, categories: list[str] | None = None, seed: int = 0
) -> dict[str, Any]:
    """The profile's "prediction" entry: categorical over ``categories`` (a classifier's
    classes), else numeric."""
    if categories is not None:
        return categorical_entry("prediction", predictions, categories)
    return numeric_entry("prediction", predictions, seed)
