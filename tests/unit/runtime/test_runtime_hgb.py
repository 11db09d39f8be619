"""HistGradientBoosting* fitted on rows the runtime encoded (driftloop_runtime.hgb): the
served model answers raw rows as the estimator answers their codes, as the estimator's
own encoding of the raw rows would, and the validation rows are split as it would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

import driftloop_contract as contract
from driftloop_contract import TrainRequest
from driftloop_runtime import artifacts, hgb
from driftloop_runtime.train import make_pipeline, train

LEVELS = ["violet", "red", "__missing__", "blue", "green"]  # first-seen order, unsorted


def _spec() -> contract.DatasetSpec:
    return contract.DatasetSpec.model_validate(
        {
            "source": "/nowhere.csv",
            "features": [
                {"name": "a"},
                {"name": "c1", "type": "categorical"},
                {"name": "b"},
                {"name": "c", "type": "numeric"},
                {"name": "c2", "type": "categorical"},
            ],
            "target": "y",
        }
    )


def _frame(rows: int, nan: bool, seed: int = 3) -> tuple[pd.DataFrame, np.ndarray]:
    """Training columns as stream.training_data keeps them (positions as labels,
    categories in first-seen order) and a class label per row."""
    rng = np.random.default_rng(seed)
    numbers = rng.normal(size=(rows, 3))
    if nan:
        numbers[rng.random((rows, 3)) < 0.1] = np.nan
    c1 = rng.integers(0, len(LEVELS), rows)
    c2 = rng.integers(0, 3, rows)
    score = np.nan_to_num(numbers[:, 0]) + (c1 == 1) - (c2 == 2) + rng.normal(0, 0.5, rows)
    y = np.where(score > 0.3, "yes", "no").astype(object)
    frame = pd.DataFrame(
        {
            0: numbers[:, 0],
            1: pd.Categorical.from_codes(c1, pd.Index(LEVELS, dtype=object)),
            2: numbers[:, 1],
            3: numbers[:, 2],
            4: pd.Categorical.from_codes(c2, pd.Index(["z", "x", "y"], dtype=object)),
        }
    )
    return frame, y


def _served(frame: pd.DataFrame) -> np.ndarray:
    """The rows as the server hands them to the model: an object matrix."""
    x = np.empty(frame.shape, dtype=object)
    for j in range(frame.shape[1]):
        x[:, j] = frame[j].astype(object).to_numpy()
    return x


def _estimator(**params: Any) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=15, random_state=0, **params)


@pytest.mark.parametrize("nan", [False, True])
def test_the_served_model_answers_raw_rows_as_the_estimator_its_codes(
    nan: bool, tmp_path: Path
) -> None:
    spec = _spec()
    frame, y = _frame(3000, nan)
    train_idx = np.random.default_rng(0).permutation(2400)
    test_idx = np.arange(2400, 3000)
    raw_test = _served(frame.iloc[test_idx])

    # As before: the estimator encodes the raw training rows itself (no early stopping
    # at this size, so the same rows in the same order train both).
    before = make_pipeline(_estimator(), spec, nan, native=True)
    before.fit(frame.iloc[train_idx].reset_index(drop=True), y[train_idx])

    enc = hgb.encoding(spec, frame, nan)
    assert enc is not None
    assert enc.categories[1] == sorted(LEVELS)
    assert enc.order == [1, 4, 0, 2, 3]  # categorical first, as the estimator's encoding
    x_train, x_test = hgb.assemble(frame.copy(), enc, [train_idx, test_idx], train_idx)
    assert x_train.dtype == np.float64
    assert x_train.flags.c_contiguous
    assert not np.isnan(x_train[:, 2:]).any()  # imputed, if missing
    expected_codes = [sorted(LEVELS).index(LEVELS[c]) for c in frame[1].cat.codes[test_idx]]
    assert np.array_equal(x_test[:, 0], expected_codes)
    estimator = _estimator()
    model = hgb.pipeline(estimator, enc)
    hgb.fit(estimator, x_train, y[train_idx])
    assert model[-1].categorical_features == [True, True, False, False, False]
    assert "_preprocess_X" not in vars(estimator)  # its own encoding is back

    want = estimator.predict_proba(x_test)
    assert np.array_equal(model.predict_proba(raw_test), want)
    # The same model as the estimator's own encoding of the strings gives.
    assert np.allclose(before.predict_proba(raw_test), want, rtol=0, atol=1e-12)
    assert (model.predict(raw_test) == before.predict(raw_test)).all()

    # An unseen category and a missing one answer as missing codes do.
    odd = raw_test[:4].copy()
    odd[0, 1], odd[1, 4], odd[2, 1], odd[3, 4] = "purple", "w", None, np.nan
    codes = x_test[:4].copy()
    codes[[0, 2], 0] = np.nan
    codes[[1, 3], 1] = np.nan
    assert np.array_equal(model.predict_proba(odd), estimator.predict_proba(codes))
    if nan:  # a missing number takes the training rows' median
        odd[0, 2] = None
        codes[0, 3] = enc.medians[2]
        assert np.array_equal(model.predict_proba(odd), estimator.predict_proba(codes))

    # The skops file loads with the trusted types and answers the same.
    path = tmp_path / contract.MODEL_FILE
    artifacts.dump_model(model, path)
    loaded = artifacts.load_model(path)
    assert np.array_equal(loaded.predict_proba(raw_test), want)


def test_all_numeric_rows_are_one_c_ordered_matrix() -> None:
    spec = contract.DatasetSpec.model_validate(
        {"source": "/nowhere.csv", "features": [{"name": "a"}, {"name": "b"}], "target": "y"}
    )
    x = np.asfortranarray(np.random.default_rng(1).normal(size=(50, 2)))
    enc = hgb.encoding(spec, x, numeric_has_nan=False)
    assert enc is not None
    rows = np.arange(10, 30)
    (got,) = hgb.assemble(x, enc, [rows], rows)
    assert got.flags.c_contiguous
    assert np.array_equal(got, x[rows])
    model = hgb.pipeline(_estimator(), enc)
    assert [name for name, _ in model.steps] == ["model"]


def _fit_watched(estimator: Any, x: Any, y: Any, **kw: Any) -> list[Any]:
    """hgb.fit, keeping the training rows the estimator bins (the rows after its
    encoding: ``x`` itself when it took them as they are)."""
    binned: list[Any] = []
    own = estimator._bin_data

    def watch(rows: Any, *args: Any, **kwargs: Any) -> Any:
        binned.append(rows)
        return own(rows, *args, **kwargs)

    estimator._bin_data = watch
    try:
        hgb.fit(estimator, x, y, **kw)
    finally:
        del estimator._bin_data
    return binned


def _encoded(rows: int, seed: int = 3) -> tuple[Any, Any, np.ndarray, Any]:
    """(encoding, the pipeline's estimator, y, the rows assembled for it)"""
    spec = _spec()
    frame, y = _frame(rows, nan=False, seed=seed)
    enc = hgb.encoding(spec, frame, False)
    assert enc is not None
    estimator = _estimator()
    hgb.pipeline(estimator, enc)
    (x,) = hgb.assemble(frame, enc, [np.arange(rows)], np.arange(rows))
    return enc, estimator, y, x


@pytest.mark.parametrize("early_stopping", [False, True])
def test_fit_takes_the_encoded_rows_as_they_are_and_fits_the_same_model(
    early_stopping: bool,
) -> None:
    _, estimator, y, x = _encoded(4000)
    kw: dict[str, Any] = {}
    if early_stopping:
        kw = {"x_val": x[3000:], "y_val": y[3000:]}
        x, y = x[:3000], y[:3000]
    binned = _fit_watched(estimator, x, y, **kw)
    assert binned[0] is x  # no copy of the training rows
    if early_stopping:
        assert binned[1] is kw["x_val"]  # nor of the validation rows

    # The same model through the estimator's own encoding (a copy of x).
    through_copy = clone(estimator)
    if early_stopping:
        through_copy.set_params(early_stopping=True)
        through_copy.fit(x, y, X_val=kw["x_val"], y_val=kw["y_val"])
    else:
        through_copy.fit(x, y)
    assert through_copy.n_iter_ == estimator.n_iter_
    probe = _encoded(500, seed=9)[3]
    assert np.array_equal(estimator.predict_proba(probe), through_copy.predict_proba(probe))
    for ours, theirs in zip(
        estimator._preprocessor.named_transformers_["encoder"].categories_,
        through_copy._preprocessor.named_transformers_["encoder"].categories_,
        strict=True,
    ):
        assert np.array_equal(ours, theirs)


def test_a_category_without_training_rows_takes_the_copy() -> None:
    """Its code is missing from the rows: the estimator's encoder renumbers the codes
    after it, so its encoding is not the identity."""
    _, estimator, y, x = _encoded(2000)
    keep = x[:, 0] != 1
    x, y = x[keep], y[keep]
    binned = _fit_watched(estimator, x, y)
    assert binned[0] is not x
    through_copy = clone(estimator).fit(x, y)
    assert np.array_equal(estimator.predict_proba(x[:300]), through_copy.predict_proba(x[:300]))


def test_validation_rows_with_a_code_unknown_to_training_take_the_copy() -> None:
    """The estimator's encoder makes that code missing: not the identity."""
    _, estimator, y, x = _encoded(3000)
    keep = x[:2000, 0] != 2
    x_fit, y_fit = x[:2000][keep], y[:2000][keep]
    x_fit[:, 0] = np.where(x_fit[:, 0] > 2, x_fit[:, 0] - 1, x_fit[:, 0])  # codes 0..3
    x_val, y_val = x[2000:], y[2000:]  # codes 0..4: 4 is unknown
    binned = _fit_watched(estimator, x_fit, y_fit, x_val=x_val, y_val=y_val)
    assert binned[0] is x_fit
    assert binned[1] is not x_val

    through_copy = clone(estimator).set_params(early_stopping=True)
    through_copy.fit(x_fit, y_fit, X_val=x_val, y_val=y_val)
    assert through_copy.n_iter_ == estimator.n_iter_
    assert np.array_equal(estimator.predict_proba(x_val), through_copy.predict_proba(x_val))


def test_categorical_features_not_first_take_the_copy() -> None:
    """Not pipeline's layout: the estimator's encoding moves them first, a new matrix."""
    rng = np.random.default_rng(4)
    x = np.column_stack([rng.integers(0, 3, 500), rng.integers(0, 4, 500)]).astype(np.float64)
    y = np.where(x[:, 1] > 1, "yes", "no")
    estimator = _estimator(categorical_features=[False, True])
    binned = _fit_watched(estimator, x, y)
    assert binned[0] is not x
    assert np.array_equal(binned[0], x[:, ::-1])


def test_an_encoding_that_is_not_the_identity_is_not_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """If the estimator's encoding changed (a later scikit-learn), the probe rows show
    it and its own encoding runs."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    own = HistGradientBoostingClassifier._preprocess_X

    def shifted(self: Any, rows: Any, *, reset: bool) -> Any:
        out = own(self, rows, reset=reset)
        return (out[0] + 0.5, out[1]) if reset else out + 0.5

    monkeypatch.setattr(HistGradientBoostingClassifier, "_preprocess_X", shifted)
    _, estimator, y, x = _encoded(2000)
    binned = _fit_watched(estimator, x, y)
    assert binned[0] is not x
    assert np.array_equal(binned[0], x + 0.5)


def test_a_numeric_feature_without_values_takes_the_usual_path() -> None:
    frame, _ = _frame(100, nan=True)
    frame[2] = np.nan
    assert hgb.encoding(_spec(), frame, numeric_has_nan=True) is None


def test_the_usual_path_fits_a_numeric_feature_without_values() -> None:
    """The imputer keeps the empty column (as zeros): dropping it had left the estimator's
    categorical mask one feature longer than its input ("fit failed")."""
    frame, y = _frame(300, nan=True)
    frame[2] = np.nan
    model = make_pipeline(_estimator(), _spec(), numeric_has_nan=True, native=True)
    model.fit(_served(frame), y)
    assert model[-1].n_features_in_ == 5
    assert len(model.predict(_served(frame.iloc[:7]))) == 7


@pytest.mark.parametrize(
    ("params", "rows", "size"),
    [
        ({}, 10_000, None),  # "auto": off up to 10 000 rows
        ({}, 10_001, 0.1),
        ({"early_stopping": True}, 100, 0.1),
        ({"early_stopping": False}, 10**6, None),
        ({"validation_fraction": None}, 10**6, None),  # stops on the training loss
        ({"validation_fraction": 500}, 10**6, 500),
    ],
)
def test_validation_size_follows_the_estimator(
    params: dict[str, Any], rows: int, size: Any
) -> None:
    assert hgb.validation_size(_estimator(**params), rows) == size


def test_the_validation_split_is_stratified_and_seeded() -> None:
    y = np.array(["a"] * 9000 + ["b"] * 1000 + ["c"] * 2000, dtype=object)
    train_idx = np.random.default_rng(5).permutation(len(y))[:11_000]
    fit_idx, val_idx = hgb.split_validation(train_idx, y, 0.1, True, seed=7)
    assert len(val_idx) == 1100
    assert len(fit_idx) == 9900
    assert sorted([*fit_idx, *val_idx]) == sorted(train_idx)
    for label in "abc":
        share = np.mean(y[train_idx] == label)
        assert np.mean(y[val_idx] == label) == pytest.approx(share, abs=0.002)
    again = hgb.split_validation(train_idx, y, 0.1, True, seed=7)
    assert np.array_equal(again[1], val_idx)
    _, regression = hgb.split_validation(train_idx, y, 500, False, seed=7)
    assert len(regression) == 500


def test_train_early_stops_on_the_runtime_split(tmp_path: Path) -> None:
    frame, y = _frame(15_000, nan=False)
    source = pd.DataFrame({name: frame[j] for j, name in enumerate(["a", "c1", "b", "c", "c2"])})
    source["y"] = y
    source.to_csv(tmp_path / "data.csv", index=False)
    spec = _spec().model_dump(by_alias=True)
    req = {
        "modelName": "m",
        "estimator": "HistGradientBoostingClassifier",
        "hyperparameters": {"max_iter": 30},
        "dataset": {**spec, "source": str(tmp_path / "data.csv"), "task": "classification"},
        "outputDir": str(tmp_path / "v1"),
    }
    result = train(TrainRequest.model_validate(req))
    assert result.ok, result
    assert result.rows == 15_000
    model = artifacts.load_model(tmp_path / "v1" / contract.MODEL_FILE)
    estimator = model[-1]
    assert estimator.do_early_stopping_
    assert estimator.get_params()["early_stopping"] == "auto"  # as requested
    # Its validation scores: on the runtime's validation rows.
    assert len(estimator.validation_score_) == estimator.n_iter_ + 1
    served = _served(frame.iloc[:50])
    assert len(model.predict(served)) == 50
    assert result.metrics["accuracy"] > 0.7
