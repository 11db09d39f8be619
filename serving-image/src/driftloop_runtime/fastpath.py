"""Exact predictions without scikit-learn's per-call input checks.

scikit-learn's ``predict`` validates its input on every call (array namespace, dtype,
finiteness, feature names, estimator tags).  For one row of a linear model that is
almost all of the call: the arithmetic is one dot product.  The server has already
validated the request (shape, numeric types, finite values), so for the estimators
whose prediction is a few operations on fitted attributes, this module does those
operations directly: the same operations, in the same order, on the same dtype, as
scikit-learn's own ``predict`` (1.9), so the results are the same values.

A compiled predictor is used only after it agreed exactly with the model's own
``predict`` on probe rows at load (:func:`compile_verified`); a model it does not cover
(preprocessing steps, boosting, neighbours), or one that disagrees, is served by its own
``predict``.  Only ``predict`` is compiled: ``predict_proba`` always goes to scikit-learn.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

#: A compiled ``predict``: float64 matrix (rows, features) -> predictions.
Predict = Callable[[npt.NDArray[np.float64]], npt.NDArray[Any]]


def _estimator(model: Any) -> Any:
    """The estimator a model is, if it is one estimator or a Pipeline of exactly one."""
    from sklearn.pipeline import Pipeline

    if type(model) is Pipeline:
        return model.steps[0][1] if len(model.steps) == 1 else None
    return model


def _linear_classifier(est: Any) -> Predict:
    # LinearClassifierMixin.decision_function + predict
    coef_t = est.coef_.T if est.coef_.ndim == 2 else est.coef_
    intercept = est.intercept_
    classes: npt.NDArray[Any] = np.asarray(est.classes_)

    def predict(x: npt.NDArray[np.float64]) -> npt.NDArray[Any]:
        scores = x @ coef_t + intercept
        if scores.ndim > 1 and scores.shape[1] == 1:
            scores = scores.reshape(-1)
        indices = (scores > 0).astype(np.intp) if scores.ndim == 1 else scores.argmax(axis=1)
        out: npt.NDArray[Any] = classes.take(indices, axis=0)
        return out

    return predict


def _linear_regressor(est: Any) -> Predict:
    # LinearModel._decision_function
    coef = est.coef_ if est.coef_.ndim == 1 else est.coef_.T
    intercept = est.intercept_

    def predict(x: npt.NDArray[np.float64]) -> npt.NDArray[Any]:
        out: npt.NDArray[Any] = x @ coef + intercept
        return out

    return predict


def _trees(trees: list[Any], classes: Any) -> Predict:
    """A decision tree (one tree) or a forest (the mean over its trees, summed in order,
    as BaseForest's sequential backend does), one output."""
    structures = [t.tree_ for t in trees]
    # With one output, Tree.predict returns (rows, classes); a regressor has one "class".
    width = 1 if classes is None else len(classes)

    def mean(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        x32 = np.ascontiguousarray(x, dtype=np.float32)
        if len(structures) == 1:  # a tree's own predict: no sum, no division
            one: npt.NDArray[np.float64] = structures[0].predict(x32)[:, :width]
            return one
        total = np.zeros((x32.shape[0], width), dtype=np.float64)
        for s in structures:
            total += s.predict(x32)[:, :width]
        total /= len(structures)
        return total

    if classes is None:
        return lambda x: mean(x)[:, 0]
    labels: npt.NDArray[Any] = np.asarray(classes)

    def predict_class(x: npt.NDArray[np.float64]) -> npt.NDArray[Any]:
        out: npt.NDArray[Any] = labels.take(np.argmax(mean(x), axis=1), axis=0)
        return out

    return predict_class


def compile_predict(model: Any) -> Predict | None:
    """A compiled ``predict`` for ``model``, or None when it is not covered."""
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    est = _estimator(model)
    kind = type(est)
    if kind is LogisticRegression:
        return _linear_classifier(est)
    if kind in (LinearRegression, Ridge):
        return _linear_regressor(est)
    if getattr(est, "n_outputs_", 1) != 1:
        return None
    if kind is DecisionTreeClassifier:
        return _trees([est], est.classes_)
    if kind is DecisionTreeRegressor:
        return _trees([est], None)
    if kind is RandomForestClassifier:
        return _trees(list(est.estimators_), est.classes_)
    if kind is RandomForestRegressor:
        return _trees(list(est.estimators_), None)
    return None


def compile_verified(model: Any, probes: npt.NDArray[np.float64]) -> Predict | None:
    """:func:`compile_predict`, kept only if it gives exactly the model's own predictions
    on ``probes`` (all of them at once, and each of the first 16 alone)."""
    fast = compile_predict(model)
    if fast is None:
        return None
    batches = [probes, *(probes[i : i + 1] for i in range(min(len(probes), 16)))]
    for batch in batches:
        want = np.asarray(model.predict(batch))
        got = fast(np.ascontiguousarray(batch, dtype=np.float64))
        if got.shape != want.shape or got.dtype != want.dtype or not np.array_equal(got, want):
            log.warning(
                "compiled predict of %s disagrees with its own predict: serving with "
                "scikit-learn's predict",
                type(_estimator(model)).__name__,
            )
            return None
    return fast


def probe_rows(
    profiles: list[dict[str, Any]], rows: int = 256, seed: int = 0
) -> npt.NDArray[np.float64]:
    """Probe rows from the training profile of each numeric feature: its sample, bin
    edges and range, mixed across features, plus an all-zero row."""
    rng = np.random.default_rng(seed)
    cols = []
    for prof in profiles:
        candidates = [
            *prof.get("sample", []),
            *prof.get("edges", []),
            prof.get("min"),
            prof.get("max"),
            prof.get("mean"),
        ]
        values = [
            float(v) for v in candidates if isinstance(v, int | float) and np.isfinite(v)
        ] or [0.0, 1.0]
        cols.append(rng.choice(np.asarray(values, dtype=np.float64), size=rows))
    out = np.column_stack(cols) if cols else np.zeros((rows, 0))
    return np.vstack([np.zeros((1, out.shape[1])), out])
