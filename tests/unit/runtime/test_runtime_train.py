"""Training and profiling on scikit-learn's bundled datasets (no download)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import driftloop_contract as contract
from driftloop_contract import TrainRequest, ValidationRule
from driftloop_runtime import artifacts
from driftloop_runtime.errors import RuntimeFailureError, ValidationFailedError
from driftloop_runtime.train import run_profile, train
from driftloop_testkit.runtime import (
    IRIS_FEATURES,
    RUNTIME,
    diabetes_request,
    iris_frame,
    iris_request,
)


def run_cli(command: str, request: dict[str, Any], tmp_path: Path) -> tuple[int, dict[str, Any]]:
    term = tmp_path / "termination-log"
    env = dict(os.environ)
    env[contract.ENV_REQUEST] = json.dumps(request)
    env[contract.ENV_TERMINATION_LOG] = str(term)
    proc = subprocess.run(
        [*RUNTIME, command], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert term.exists(), proc.stderr
    text = term.read_text()
    assert len(text.encode()) <= contract.TERMINATION_MESSAGE_LIMIT
    return proc.returncode, json.loads(text)


def test_train_cli_classification(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "models" / "iris" / "v1"
    code, result = run_cli(contract.COMMAND_TRAIN, iris_request(data_dir, out), tmp_path)
    assert code == 0, result
    parsed = contract.TrainResult.model_validate(result)
    assert parsed.ok
    assert parsed.gates_passed
    assert parsed.task is contract.Task.classification
    assert set(parsed.metrics) == {"accuracy", "f1", "roc_auc"}
    assert parsed.metrics["accuracy"] > 0.8
    assert parsed.artifact_uri == "file://" + str(out)
    assert parsed.sha256 == hashlib.sha256((out / contract.MODEL_FILE).read_bytes()).hexdigest()
    raw = (data_dir / "iris.csv").read_bytes()
    assert parsed.dataset_digest == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert parsed.rows == 150
    names = {p.name for p in out.iterdir()}
    assert names == {
        contract.MODEL_FILE,
        contract.PROFILE_FILE,
        contract.METRICS_FILE,
        contract.MANIFEST_FILE,
    }
    manifest = artifacts.verify(out, parsed.sha256)
    assert manifest["files"][contract.MODEL_FILE] == parsed.sha256
    prof = json.loads((out / contract.PROFILE_FILE).read_text())
    by_name = {f["name"]: f for f in prof["features"]}
    assert by_name["color"]["type"] == "categorical"
    assert sorted(by_name["color"]["categories"]) == ["blue", "green", "red"]
    assert len(by_name["sepal_length"]["proportions"]) == len(by_name["sepal_length"]["edges"]) + 1
    assert prof["prediction"]["categories"] == ["0", "1", "2"]
    # no staging leftovers next to the version
    assert [p.name for p in out.parent.iterdir()] == ["v1"]


def test_train_regression_parquet_and_gates(data_dir: Path, tmp_path: Path) -> None:
    req = diabetes_request(
        data_dir, tmp_path / "v1", evaluation={"minScores": {"r2": 0.1, "rmse": 1.0}}
    )
    result = train(TrainRequest.model_validate(req))
    assert result.ok
    assert result.task is contract.Task.regression
    assert set(result.metrics) == {"r2", "mae", "rmse"}
    assert result.gates_passed is False
    assert len(result.failed_gates) == 1
    assert result.failed_gates[0].startswith("rmse")


@pytest.mark.parametrize("estimator", sorted(contract.ESTIMATORS))
def test_every_allowed_estimator_trains_and_loads(
    estimator: str, data_dir: Path, tmp_path: Path
) -> None:
    _, task = contract.ESTIMATORS[estimator]
    hp: dict[str, Any] = {}
    if "Forest" in estimator or estimator.startswith("GradientBoosting"):
        hp = {"n_estimators": 5}
    elif estimator.startswith("Hist"):
        hp = {"max_iter": 5}
    make = iris_request if task is contract.Task.classification else diabetes_request
    req = make(data_dir, tmp_path / "v1", estimator=estimator, hyperparameters=hp, evaluation={})
    result = train(TrainRequest.model_validate(req))
    assert result.ok, result
    model = artifacts.load_model(tmp_path / "v1" / contract.MODEL_FILE)
    assert hasattr(model, "predict")


def _fail(req: dict[str, Any]) -> RuntimeFailureError:
    with pytest.raises(RuntimeFailureError) as info:
        train(TrainRequest.model_validate(req))
    return info.value


def test_validation_failure_via_cli_names_rule_and_column(data_dir: Path, tmp_path: Path) -> None:
    req = iris_request(data_dir, tmp_path / "v1")
    req["dataset"]["features"].append({"name": "nope"})
    code, result = run_cli(contract.COMMAND_TRAIN, req, tmp_path)
    assert code == contract.EXIT_INVALID_INPUT
    assert result["ok"] is False
    assert result["reason"] == contract.REASON_VALIDATION_FAILED
    assert result["rule"] == ValidationRule.missing_column.value
    assert result["column"] == "nope"
    assert not (tmp_path / "v1").exists()


def _write(tmp_path: Path, frame: Any, name: str = "d.csv") -> str:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize(
    ("mutate", "rule", "column"),
    [
        (lambda f, d: d["dataset"].update(target="nope"), ValidationRule.missing_target, "nope"),
        (
            lambda f, d: d["dataset"].update(validation={"minRows": 1000}),
            ValidationRule.min_rows,
            None,
        ),
        (
            lambda f, d: d["dataset"].update(validation={"maxRows": 10}),
            ValidationRule.max_rows,
            None,
        ),
        (
            lambda f, d: f.__setitem__("petal_width", f["petal_width"].where(f.index > 20)),
            ValidationRule.max_null_ratio,
            "petal_width",
        ),
        (
            lambda f, d: d["dataset"]["features"][4].update(allowedValues=["red", "green"]),
            ValidationRule.allowed_values,
            "color",
        ),
        (
            lambda f, d: f.__setitem__("sepal_width", ["x"] * 150),
            ValidationRule.numeric_type,
            "sepal_width",
        ),
    ],
)
def test_validation_rules(
    mutate: Any, rule: ValidationRule, column: str | None, data_dir: Path, tmp_path: Path
) -> None:
    frame = iris_frame()
    req = iris_request(data_dir, tmp_path / "v1")
    mutate(frame, req)
    req["dataset"]["source"] = _write(tmp_path, frame)
    err = _fail(req)
    assert isinstance(err, ValidationFailedError)
    assert err.rule == rule.value
    assert err.column == column
    assert err.exit_code == contract.EXIT_INVALID_INPUT


def test_null_ratio_allowed_trains_with_imputer(data_dir: Path, tmp_path: Path) -> None:
    frame = iris_frame()
    frame.loc[:10, "petal_width"] = float("nan")
    req = iris_request(data_dir, tmp_path / "v1")
    req["dataset"]["source"] = _write(tmp_path, frame)
    req["dataset"]["validation"] = {"maxNullRatio": 0.2}
    assert train(TrainRequest.model_validate(req)).ok


def _served_rows(frame: Any, color: str) -> Any:
    """Rows as the server hands them to the model: an object matrix, numbers and strings."""
    import numpy as np

    x = np.empty((len(frame), 5), dtype=object)
    x[:, :4] = frame[IRIS_FEATURES].to_numpy()
    x[:, 4] = color
    return x


@pytest.mark.parametrize(
    ("hyperparameters", "nan", "steps", "categorical"),
    [
        # the categories as codes, first (the served model's first step maps the
        # strings to them): no one-hot columns
        ({}, False, ["preprocess", "model"], [True] + [False] * 4),
        # and the missing numbers imputed (with the training rows' medians)
        ({}, True, ["preprocess", "model"], [True] + [False] * 4),
        # 3 colours, 2 bins: one-hot, as for every other estimator
        ({"max_bins": 2}, False, ["preprocess", "model"], "from_dtype"),
    ],
)
def test_hist_gradient_boosting_takes_categories_natively(
    hyperparameters: dict[str, Any],
    nan: bool,
    steps: list[str],
    categorical: Any,
    data_dir: Path,
    tmp_path: Path,
) -> None:
    frame = iris_frame()
    if nan:
        frame.loc[:10, "petal_width"] = float("nan")
    req = iris_request(
        data_dir,
        tmp_path / "v1",
        estimator="HistGradientBoostingClassifier",
        hyperparameters={"max_iter": 5, **hyperparameters},
    )
    req["dataset"]["source"] = _write(tmp_path, frame)
    req["dataset"]["validation"] = {"maxNullRatio": 0.2}
    result = train(TrainRequest.model_validate(req))
    assert result.ok, result
    assert result.metrics["accuracy"] > 0.8
    model = artifacts.load_model(tmp_path / "v1" / contract.MODEL_FILE)
    assert [name for name, _ in model.steps] == steps
    assert model[-1].categorical_features == categorical
    served = iris_frame().iloc[[0, 60, 120]]
    assert model.predict(_served_rows(served, "red")).tolist() == [0, 1, 2]
    # A colour never seen in training counts as missing: still an answer.
    assert len(model.predict(_served_rows(served, "purple"))) == 3


def test_unparseable_source(tmp_path: Path, data_dir: Path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 not really")
    req = iris_request(data_dir, tmp_path / "v1")
    req["dataset"]["source"] = str(bad)
    assert _fail(req).rule == ValidationRule.readable.value


def test_missing_source_is_retryable(tmp_path: Path, data_dir: Path) -> None:
    req = iris_request(data_dir, tmp_path / "v1")
    req["dataset"]["source"] = str(tmp_path / "absent.csv")
    err = _fail(req)
    assert err.reason == contract.REASON_DATA_UNAVAILABLE
    assert err.exit_code == contract.EXIT_ERROR


@pytest.mark.parametrize(
    "hp", [{"no_such_param": 1}, {"C": -1.0}, {"penalty": "bogus"}, {"max_iter": "many"}]
)
def test_invalid_hyperparameters(hp: dict[str, Any], data_dir: Path, tmp_path: Path) -> None:
    err = _fail(iris_request(data_dir, tmp_path / "v1", hyperparameters=hp))
    assert err.reason == contract.REASON_INVALID_HYPERPARAMETERS
    assert err.exit_code == contract.EXIT_INVALID_INPUT


def test_unknown_estimator(data_dir: Path, tmp_path: Path) -> None:
    err = _fail(iris_request(data_dir, tmp_path / "v1", estimator="os.system"))
    assert err.reason == contract.REASON_UNKNOWN_ESTIMATOR


def test_invalid_request_json_via_cli(tmp_path: Path) -> None:
    code, result = run_cli(contract.COMMAND_TRAIN, {"estimator": "Ridge"}, tmp_path)
    assert code == contract.EXIT_INVALID_INPUT
    assert result["reason"] == contract.REASON_INVALID_REQUEST


def test_retry_is_idempotent(data_dir: Path, tmp_path: Path) -> None:
    req = TrainRequest.model_validate(iris_request(data_dir, tmp_path / "v1"))
    first = train(req)
    mtime = (tmp_path / "v1" / contract.MODEL_FILE).stat().st_mtime_ns
    second = train(req)
    assert second == first
    assert (tmp_path / "v1" / contract.MODEL_FILE).stat().st_mtime_ns == mtime


def test_existing_invalid_output_is_a_conflict(data_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / "junk").write_text("x")
    err = _fail(iris_request(data_dir, tmp_path / "v1"))
    assert err.reason == contract.REASON_OUTPUT_CONFLICT


def test_crash_during_write_leaves_no_version(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = artifacts.write_json

    def boom(path: Path, obj: Any) -> None:
        if path.name == contract.METRICS_FILE:
            raise KeyboardInterrupt("killed")  # like a SIGKILL mid-write, as far as we can
        real(path, obj)

    monkeypatch.setattr(artifacts, "write_json", boom)
    req = TrainRequest.model_validate(iris_request(data_dir, tmp_path / "v1"))
    with pytest.raises(KeyboardInterrupt):
        train(req)
    assert list(tmp_path.iterdir()) == [] or not (tmp_path / "v1").exists()
    assert not list(artifacts.iter_staging_leftovers(str(tmp_path / "v1")))
    # a leftover staging dir of a SIGKILLed pod does not block the retry
    (tmp_path / ".v1.tmp-deadbeef").mkdir()
    monkeypatch.setattr(artifacts, "write_json", real)
    assert train(req).ok
    assert (tmp_path / "v1" / contract.MANIFEST_FILE).exists()


@pytest.fixture
def http_base(data_dir: Path) -> Iterator[str]:
    handler = partial(SimpleHTTPRequestHandler, directory=str(data_dir))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_source_and_profile_command(http_base: str, data_dir: Path, tmp_path: Path) -> None:
    req = {
        "dataset": {
            "source": f"{http_base}/diabetes.parquet",
            "features": [{"name": "age"}, {"name": "bmi"}],
            "target": "target",
            "validation": {"minRows": 100},
        },
        "outputDir": str(tmp_path / "profiles" / "diabetes"),
    }
    result = run_profile(contract.ProfileRequest.model_validate(req))
    digest = hashlib.sha256((data_dir / "diabetes.parquet").read_bytes()).hexdigest()
    assert result.ok
    assert result.digest == "sha256:" + digest
    assert result.rows == 442
    prof = json.loads((tmp_path / "profiles" / "diabetes" / contract.PROFILE_FILE).read_text())
    assert [f["name"] for f in prof["features"]] == ["age", "bmi"]
    # the CLI reports a failed rule in the termination message
    req["dataset"]["validation"] = {"maxRows": 10}
    code, out = run_cli(contract.COMMAND_PROFILE, req, tmp_path)
    assert code == contract.EXIT_INVALID_INPUT
    assert out["rule"] == ValidationRule.max_rows.value
