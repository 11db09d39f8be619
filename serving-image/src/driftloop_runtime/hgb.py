"""HistGradientBoosting* fitted on rows the runtime encoded itself: one copy of the data.

Given the raw rows (a frame of float64 and ``pandas.Categorical`` columns), a
``HistGradientBoosting*`` estimator makes its own float64 copy of them (its
``categorical_features`` encoding: a new matrix of an OrdinalEncoder's output, the
categorical features first, beside the numeric columns), and early stopping (on by
default above 10 000 rows) splits that copy into training and validation rows: a
second copy.  Here the runtime instead

* writes the training, validation and test rows straight from the streamed columns
  into one float64 matrix each, dropping each full-size column once distributed: the
  categorical features first, each category as its rank among the feature's sorted
  categories (the code the estimator's own encoder gives it), then the numeric ones;
  that is the matrix the estimator's encoding would build, so ``fit`` takes it as it
  is instead of copying it (see ``_encoding_is_identity``);
* splits the validation rows off the training rows itself, as the estimator would
  (``validation_fraction``, stratified for a classifier, but seeded from the
  evaluation's random_state) and passes them to ``fit(X_val=, y_val=)``
  (scikit-learn >= 1.7): no split copy.

The served model still takes the raw feature matrix (spec order, category strings):
its first step maps the strings to the same codes (an OrdinalEncoder with the
categories fixed, an unseen one becoming missing, as the estimator's own encoder
does) and puts them first, imputes the medians the training rows were imputed with,
if any, and the estimator follows, fitted on the codes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from driftloop_contract import DatasetSpec, FeatureType
from driftloop_runtime import memory, stream

#: The estimator's own rule for early_stopping="auto" (more rows than this: on).
AUTO_EARLY_STOPPING_ROWS = 10_000

#: The estimator's ``_preprocess_X``, unbound.
Preprocess = Callable[..., Any]


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
    def order(self) -> list[int]:
        """The spec positions of the encoded rows' columns: categorical, then numeric."""
        n = len(self.spec.features)
        return [j for j in range(n) if j in self.categories] + [
            j for j in range(n) if j not in self.categories
        ]


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
    """The rows ``splits`` (row numbers each) of ``features``, encoded: per split one
    float64 matrix (C order) with the columns of ``enc.order``, categorical
    features as codes into ``enc.categories``, numeric ones as they are (missing values
    imputed with the medians of ``median_rows`` when ``enc.impute``; the medians go
    into ``enc.medians``).

    ``features`` (a frame) loses each column once it is distributed, into
    Fortran-ordered matrices (a column is a run of pages, so those fill as the columns
    go): the full-size data and its splits are never both alive.  Then each matrix is
    turned to C order (memory.c_order_releasing: freeing it as it goes), because the
    estimator's binning subsamples rows with ``take(axis=0)``, which copies a
    Fortran-ordered matrix whole; a C-ordered one fills all its pages with its first
    column.
    """
    order = enc.order
    blocks = [np.empty((len(order), len(rows)), dtype=np.float64) for rows in splits]
    frame = hasattr(features, "iloc")
    for j in range(len(order)):
        k = order.index(j)
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
            for block, rows in zip(blocks, splits, strict=True):
                block[k] = coded[rows]
            del coded
        else:
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
    out = []
    while blocks:  # each Fortran-ordered matrix goes as its C-ordered copy is made
        out.append(memory.c_order_releasing(blocks.pop(0).T))
    return out


def pipeline(estimator: Any, enc: Encoding) -> Any:
    """The served model: its encoding step fitted (with the categories and medians of
    ``enc``: no data needed), ``estimator`` (set to take the categorical features as
    categories) not yet: fit it with ``fit`` on assemble's rows."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    cat_pos = [j for j in enc.order if j in enc.categories]
    num_pos = [j for j in enc.order if j not in enc.categories]
    if cat_pos:
        estimator.set_params(categorical_features=[True] * len(cat_pos) + [False] * len(num_pos))
    if not cat_pos and not enc.impute:
        return Pipeline([("model", estimator)])
    # The output's columns: enc.order, as assemble wrote the training rows.
    transformers: list[tuple[str, Any, list[int]]] = []
    if cat_pos:
        ordinal = OrdinalEncoder(
            categories=[enc.categories[j] for j in cat_pos],
            handle_unknown="use_encoded_value",
            unknown_value=np.nan,
            dtype=np.float64,
        )
        transformers.append(("categorical", ordinal, cat_pos))
    if num_pos:
        numeric: Any = SimpleImputer(strategy="median") if enc.impute else "passthrough"
        transformers.append(("numeric", numeric, num_pos))
    encode = ColumnTransformer(transformers, remainder="drop")
    # One row of known values: the categories are given, and an imputer fitted on the
    # medians alone keeps them as its statistics.
    row = np.empty((1, len(enc.order)), dtype=object)
    for j in range(row.shape[1]):
        row[0, j] = enc.categories[j][0] if j in enc.categories else enc.medians.get(j, 0.0)
    encode.fit(row)
    return Pipeline([("preprocess", encode), ("model", estimator)])


def fit(estimator: Any, x: Any, y: Any, x_val: Any = None, y_val: Any = None) -> None:
    """Fit ``estimator`` (pipeline's) on assemble's rows, taking them as they are (see
    ``_encoding_is_identity``); with validation rows, early stopping on them
    (early_stopping="auto" would look at the rows given, fewer than it would split;
    the parameter is back as it was after the fit)."""
    with _taking_encoded_rows(estimator, x, x_val):
        if x_val is None:
            estimator.fit(x, y)
            return
        stopping = estimator.get_params()["early_stopping"]
        estimator.set_params(early_stopping=True)
        try:
            estimator.fit(x, y, X_val=x_val, y_val=y_val)
        finally:
            estimator.set_params(early_stopping=stopping)


@contextmanager
def _taking_encoded_rows(estimator: Any, x: Any, x_val: Any = None) -> Iterator[None]:
    """While ``estimator`` fits on ``x``, its encoding of ``x`` returns ``x`` itself when
    ``_encoding_is_identity`` shows that is what it would compute, and then its encoding
    of the validation rows ``x_val`` returns them as they are when their codes are all
    known (``_codes_known``); otherwise, and for any other input, its own encoding runs.

    The estimator's ``_preprocess_X`` is private: this is scikit-learn 1.7-1.9's
    contract (``reset=True``: the rows and the known categories, the encoder fitted;
    ``reset=False``: the rows encoded).  The check tries it on probe rows at every fit
    and falls back to the copy if the outcome is not the identity, and the unit tests
    compare the model with one fitted through the copy.
    """
    categorical = estimator.get_params().get("categorical_features")
    n_categorical = sum(categorical) if isinstance(categorical, list) else 0
    if not n_categorical or categorical != sorted(categorical, reverse=True):
        # No categorical features (the estimator's validation does not copy x), or
        # not pipeline's layout (they come first).
        yield
        return
    own: Preprocess = type(estimator)._preprocess_X
    taken: list[Any] = []  # the known categories, once x is taken as it is

    def preprocess(*args: Any, **kwargs: Any) -> Any:
        # As called in fit (the rows; reset=True for x, False for x_val); any other
        # call is the method's own.
        rows = args[0] if len(args) == 1 else None
        if rows is x and kwargs == {"reset": True}:
            known = _encoding_is_identity(estimator, own, x, n_categorical)
            if known is not None:
                taken[:] = known
                return x, known
        if (
            rows is x_val
            and x_val is not None
            and taken
            and kwargs == {"reset": False}
            and _codes_known(x_val, taken[:n_categorical])
        ):
            return x_val
        return own(estimator, *args, **kwargs)

    estimator.__dict__["_preprocess_X"] = preprocess  # shadows the method: this fit only
    try:
        yield
    finally:
        del estimator.__dict__["_preprocess_X"]


def _codes_known(rows: Any, known: list[Any]) -> bool:
    """Whether every categorical value of ``rows`` (the first len(known) columns) is one
    of the codes ``known`` (0 to n-1 each): the fitted encoder maps those to
    themselves (and an unknown one to missing), the numbers stay as they are."""
    if rows.dtype != np.float64 or rows.ndim != 2:
        return False
    for c, names in enumerate(known):
        codes = _integer_codes(rows[:, c])
        if codes is None or (len(codes) and codes.max() >= len(names)):
            return False
    return True


def _integer_codes(col: Any) -> Any:
    """The float column ``col`` as integer codes, or None when a value is missing,
    negative or not a whole number."""
    if len(col) and (np.isnan(col).any() or col.min() < 0):
        return None
    codes = col.astype(np.intp)
    return codes if np.array_equal(codes, col) else None


def _encoding_is_identity(
    estimator: Any, own: Preprocess, x: Any, n_categorical: int
) -> list[Any] | None:
    """The known categories of ``x``, with the estimator's encoder fitted, when its
    encoding of ``x`` would be ``x`` itself; None when it would not (or may not).

    Its encoding puts the categorical features first and maps each feature's values to
    their ranks among the values present (an OrdinalEncoder), leaving the numbers as
    they are.  For ``x`` with the categorical features first, all float64, each holding
    every code from 0 to its largest, that is the identity, and the fitted encoder
    depends only on those codes.  So the encoder is fitted on probe rows holding each
    code once, and ``x`` is taken as it is when the probe rows come out unchanged.
    """
    if x.dtype != np.float64 or x.ndim != 2 or len(x) == 0:
        return None
    counts: list[int] = []
    for c in range(n_categorical):
        codes = _integer_codes(x[:, c])
        if codes is None:
            return None
        present = np.bincount(codes)
        del codes
        if not present.all():  # a code without rows: the encoder would renumber
            return None
        counts.append(len(present))
    probe = np.zeros((max(counts), x.shape[1]), dtype=np.float64)
    for c, n in enumerate(counts):
        probe[:, c] = np.minimum(np.arange(len(probe)), n - 1)
    probe[:, n_categorical:] = x[0, n_categorical:]
    try:
        result = own(estimator, probe, reset=True)
    except TypeError:  # not the signature this relies on: the method's own call decides
        return None
    if not (isinstance(result, tuple) and len(result) == 2):
        return None
    encoded, known = result
    rest = x.shape[1] - n_categorical
    remapped = getattr(estimator, "_is_categorical_remapped", None)
    if (
        isinstance(encoded, np.ndarray)
        and encoded.dtype == np.float64
        and np.array_equal(encoded, probe, equal_nan=True)
        and remapped is not None
        and list(remapped) == [True] * n_categorical + [False] * rest
        and isinstance(known, list)
        and [None if k is None else len(k) for k in known] == [*counts, *[None] * rest]
    ):
        return known
    return None
