"""The compiled predict gives exactly scikit-learn's predictions, or is not used."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from driftloop_runtime import fastpath

RNG = np.random.default_rng(7)
X = RNG.normal(size=(300, 6))
Y_BINARY = (X[:, 0] + X[:, 1] > 0).astype(int)
Y_MULTI = np.digitize(X[:, 0], [-0.5, 0.5])  # 0, 1, 2
Y_NAMES = np.array(["cat", "dog", "eel"])[Y_MULTI]
Y_VALUE = X @ RNG.normal(size=6) + RNG.normal(scale=0.1, size=300)
LIVE = RNG.normal(scale=2.0, size=(200, 6))

COVERED = [
    ("logistic binary", LogisticRegression(), Y_BINARY),
    ("logistic multiclass", LogisticRegression(max_iter=1000), Y_MULTI),
    ("logistic string classes", LogisticRegression(max_iter=1000), Y_NAMES),
    ("linear regression", LinearRegression(), Y_VALUE),
    ("ridge", Ridge(alpha=0.5), Y_VALUE),
    ("tree classifier", DecisionTreeClassifier(max_depth=5, random_state=0), Y_NAMES),
    ("tree regressor", DecisionTreeRegressor(max_depth=6, random_state=0), Y_VALUE),
    ("forest classifier", RandomForestClassifier(n_estimators=15, random_state=0), Y_MULTI),
    ("forest regressor", RandomForestRegressor(n_estimators=15, random_state=0), Y_VALUE),
]


@pytest.mark.parametrize(("name", "estimator", "y"), COVERED, ids=[c[0] for c in COVERED])
def test_a_covered_estimator_predicts_exactly_as_scikit_learn(
    name: str, estimator: Any, y: Any
) -> None:
    model = Pipeline([("model", estimator)]).fit(X, y)
    fast = fastpath.compile_verified(model, fastpath.probe_rows([{}] * 6))
    assert fast is not None, name
    for batch in (LIVE, LIVE[:1], LIVE[17:18], LIVE[:32]):
        want = model.predict(batch)
        got = fast(batch)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


NOT_COVERED = [
    ("boosting", Pipeline([("model", GradientBoostingClassifier(n_estimators=5))]), Y_BINARY),
    (
        "histogram boosting",
        Pipeline([("model", HistGradientBoostingRegressor(max_iter=5))]),
        Y_VALUE,
    ),
    ("neighbours", Pipeline([("model", KNeighborsClassifier())]), Y_BINARY),
    (
        "a preprocessing step",
        Pipeline([("scale", StandardScaler()), ("model", LogisticRegression())]),
        Y_BINARY,
    ),
]


@pytest.mark.parametrize(("name", "model", "y"), NOT_COVERED, ids=[c[0] for c in NOT_COVERED])
def test_any_other_model_keeps_its_own_predict(name: str, model: Any, y: Any) -> None:
    model.fit(X, y)
    assert fastpath.compile_predict(model) is None, name


def test_a_compiled_predict_that_disagrees_is_not_used(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    model = Pipeline([("model", LogisticRegression())]).fit(X, Y_BINARY)
    honest = fastpath.compile_predict(model)
    assert honest is not None

    def off_by_one_row(x: Any) -> Any:
        out = honest(x).copy()
        out[-1] = 1 - out[-1]
        return out

    monkeypatch.setattr(fastpath, "compile_predict", lambda _model: off_by_one_row)
    with caplog.at_level(logging.WARNING, logger="driftloop_runtime.fastpath"):
        assert fastpath.compile_verified(model, fastpath.probe_rows([{}] * 6)) is None
    assert "disagrees" in caplog.text


def test_probe_rows_come_from_the_training_profile() -> None:
    profiles = [
        {"sample": [1.0, 2.0], "edges": [1.5], "min": 0.5, "max": 9.0, "mean": 3.0},
        {"min": -4.0, "max": -4.0},
    ]
    rows = fastpath.probe_rows(profiles, rows=64)
    assert rows.shape == (65, 2)
    assert not rows[0].any()  # the all-zero row
    assert set(rows[1:, 0]) <= {1.0, 2.0, 1.5, 0.5, 9.0, 3.0}
    assert set(rows[1:, 1]) == {-4.0}
