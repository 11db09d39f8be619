"""HistGradientBoosting* fitted on rows the runtime encoded itself: fewer copies of the data.

Given the raw rows (a frame of float64 and ``pandas.Categorical`` columns), a
``HistGradientBoosting*`` estimator makes its own float64 copy of them (its
``categorical_features`` encoding: a new matrix from an OrdinalEncoder and the numeric
columns), and early stopping (on by default above 10 000 rows) splits that copy into
training and validation rows: a second copy.  Here the runtime instead

* encodes each categorical feature's strings as integer codes in sorted order (the
  order the estimator's own encoder would give them) and keeps the numeric columns as
  one float64 block, so the estimator's copy is the only one it makes (its numeric
  columns are a view of that block);
* splits the validation rows off the training rows itself, as the estimator would
  (``validation_fraction``, stratified for a classifier, but seeded from the
  evaluation's random_state) and passes them to ``fit(X_val=, y_val=)``
  (scikit-learn >= 1.7): no split copy;
* writes the training, validation and test rows straight from the streamed columns
  into their own arrays, dropping each full-size column once distributed.

The served model still takes the raw feature matrix (spec order, category strings):
its first step maps the strings to the same codes (an OrdinalEncoder with the
categories fixed, an unseen one becoming missing, as the estimator's own encoder
does), imputes the medians the training rows were imputed with, if any, and the
estimator follows, fitted on the codes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from driftloop_contract import DatasetSpec, FeatureType
from driftloop_runtime import stream

#: The estimator's own rule for early_stopping="auto" (more rows than this: on).
AUTO_EARLY_STOPPING_ROWS = 10_000


@dataclass
class Encoding:
    """How the rows are encoded: the sorted categories of each categorical feature
    (by position) and, when numeric values are missing, the median each numeric
    feature's missing values take (computed from the training rows)."""

    spec: DatasetSpec
    categories: dict[int, list[str]]
    impute: bool
    medians: dict[int, float] = field(default_factory=dict)

    @property
    def categorical(self) -> list[bool]:
        return [f.type is FeatureType.categorical for f in self.spec.features]


def encoding(spec: DatasetSpec, features: Any, numeric_has_nan: bool) -> Encoding | None:
    """The encoding of ``features`` (stream.TrainingData.features), or None when the
    rows must take the estimator's usual path: a numeric feature with no value at all
    (the imputer would drop it)."""
    categories: dict[int, list[str]] = {}
    for j, f in enumerate(spec.features):
        if f.type is FeatureType.categorical:
            names = [str(c) for c in features[j].cat.categories]
            categories[j] = sorted(names)
        elif numeric_has_nan and not np.isfinite(stream.column(features, j)).any():
            return None
    return Encoding(spec, categories, numeric_has_nan)


def validation_size(estimator: Any, rows: int) -> float | int | None:
    """The validation rows ``estimator`` would split off ``rows`` training rows for
    early stopping (its ``validation_fraction``), or None when it would not."""
    params = estimator.get_params()
    stopping = params["early_stopping"]
    on = rows > AUTO_EARLY_STOPPING_ROWS if stopping == "auto" else bool(stopping)
    size = params["validation_fraction"]
    return size if on and size is not None else None


def split_validation(
    train_idx: Any, y: Any, size: float | int, classifier: bool, seed: int
) -> tuple[Any, Any]:
    """(fit rows, validation rows) of the training rows ``train_idx`` (row numbers
    into ``y``): ``size`` of them for validation, stratified for a classifier."""
    from sklearn.model_selection import train_test_split

    stratify = y[train_idx] if classifier else None
    fit_idx, val_idx = train_test_split(
        train_idx, test_size=size, random_state=seed, stratify=stratify
    )
    return fit_idx, val_idx


def _code_dtype(n: int) -> Any:
    return np.int8 if n <= np.iinfo(np.int8).max else np.int16


def assemble(features: Any, enc: Encoding, splits: list[Any], median_rows: Any) -> list[Any]:
    """The rows ``splits`` (row numbers each) of ``features``, encoded: per split a
    frame with the spec's column positions as labels, numeric features as one float64
    block (missing values imputed with the medians of ``median_rows`` when
    ``enc.impute``; the medians go into ``enc.medians``), categorical ones as codes
    into ``enc.categories``.  All numeric: a float64 matrix (Fortran order).

    ``features`` (a frame) loses each column once it is distributed: the full-size
    data and its splits are never both alive.
    """
    import pandas as pd

    n_features = len(enc.spec.features)
    num_pos = [j for j in range(n_features) if j not in enc.categories]
    blocks = [np.empty((len(num_pos), len(rows)), dtype=np.float64) for rows in splits]
    codes: list[dict[int, Any]] = [{} for _ in splits]
    frame = hasattr(features, "iloc")
    for j in range(n_features):
        if j in enc.categories:
            col = features[j].array
            names = np.asarray(col.categories, dtype=object)
            rank = np.empty(len(names), dtype=np.intp)
            rank[np.argsort(names, kind="stable")] = np.arange(len(names))
            raw = np.asarray(col.codes)
            if (raw < 0).any():  # pragma: no cover - stream.CategoryCodes names missing values
                raise ValueError(f"feature {j}: a category code is missing")
            coded = rank.astype(_code_dtype(len(names)))[raw]
            del col, raw
            for part, rows in zip(codes, splits, strict=True):
                part[j] = coded[rows]
            del coded
        else:
            k = num_pos.index(j)
            values = stream.column(features, j)
            median = float(np.nanmedian(values[median_rows])) if enc.impute else None
            if median is not None:
                enc.medians[j] = median
            for block, rows in zip(blocks, splits, strict=True):
                np.take(values, rows, out=block[k], mode="clip")  # unbuffered
                if median is not None:
                    block[k][np.isnan(block[k])] = median
            del values
        if frame:
            del features[j]  # its column is distributed: free it
    out: list[Any] = []
    for block, part in zip(blocks, codes, strict=True):
        if not enc.categories:
            out.append(block.T)  # (rows, features), Fortran order: no copy in fit
            continue
        # One block of numbers: the estimator's numeric columns are a view of it.
        x = pd.DataFrame(block.T, columns=num_pos, copy=False)
        for j in sorted(part):
            x.insert(j, j, part.pop(j))
        out.append(x)
    return out


def _runs(categorical: list[bool]) -> list[tuple[bool, list[int]]]:
    """Positions grouped into runs of consecutive features of one kind, in order."""
    runs: list[tuple[bool, list[int]]] = []
    for j, cat in enumerate(categorical):
        if runs and runs[-1][0] == cat:
            runs[-1][1].append(j)
        else:
            runs.append((cat, [j]))
    return runs


def pipeline(estimator: Any, enc: Encoding) -> Any:
    """The served model: its encoding step fitted (with the categories and medians of
    ``enc``: no data needed), ``estimator`` (set to take the categorical features as
    categories) not yet: fit it with ``fit`` on assemble's rows."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    if enc.categories:
        estimator.set_params(categorical_features=enc.categorical)
    if not enc.categories and not enc.impute:
        return Pipeline([("model", estimator)])
    # Runs of one kind in spec order: the output keeps the spec's column order.
    transformers: list[tuple[str, Any, list[int]]] = []
    for k, (cat, cols) in enumerate(_runs(enc.categorical)):
        if cat:
            step: Any = OrdinalEncoder(
                categories=[enc.categories[j] for j in cols],
                handle_unknown="use_encoded_value",
                unknown_value=np.nan,
                dtype=np.float64,
            )
        else:
            step = SimpleImputer(strategy="median") if enc.impute else "passthrough"
        transformers.append((f"{'categorical' if cat else 'numeric'}_{k}", step, cols))
    encode = ColumnTransformer(transformers, remainder="drop")
    # One row of known values: the categories are given, and an imputer fitted on the
    # medians alone keeps them as its statistics.
    row = np.empty((1, len(enc.categorical)), dtype=object)
    for j in range(row.shape[1]):
        row[0, j] = enc.categories[j][0] if j in enc.categories else enc.medians.get(j, 0.0)
    encode.fit(row)
    return Pipeline([("preprocess", encode), ("model", estimator)])


def fit(estimator: Any, x: Any, y: Any, x_val: Any = None, y_val: Any = None) -> None:
    """Fit ``estimator`` on encoded rows; with validation rows, early stopping on them
    (early_stopping="auto" would look at the rows given, fewer than it would split;
    the parameter is back as it was after the fit)."""
    if x_val is None:
        estimator.fit(x, y)
        return
    stopping = estimator.get_params()["early_stopping"]
    estimator.set_params(early_stopping=True)
    try:
        estimator.fit(x, y, X_val=x_val, y_val=y_val)
    finally:
        estimator.set_params(early_stopping=stopping)
