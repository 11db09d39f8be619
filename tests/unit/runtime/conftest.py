"""Fixtures for the runtime tests: bundled sklearn datasets, trained artifacts, servers."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # helpers next to this file

from rt_support import Server, diabetes_request, iris_frame, iris_request, serve_env, start_server

import driftloop_contract as contract


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sklearn.datasets import load_diabetes

    d = tmp_path_factory.mktemp("data")
    iris_frame().to_csv(d / "iris.csv", index=False)
    load_diabetes(as_frame=True).frame.to_parquet(d / "diabetes.parquet")
    return d


@pytest.fixture(scope="session")
def iris_model(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from driftloop_runtime.train import train

    out = tmp_path_factory.mktemp("models") / "iris" / "v1"
    result = train(contract.TrainRequest.model_validate(iris_request(data_dir, out)))
    assert result.ok
    return out


@pytest.fixture(scope="session")
def diabetes_model(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from driftloop_runtime.train import train

    out = tmp_path_factory.mktemp("models") / "diabetes" / "v1"
    result = train(contract.TrainRequest.model_validate(diabetes_request(data_dir, out)))
    assert result.ok
    return out


@pytest.fixture(scope="module")
def iris_server(iris_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    scratch = tmp_path_factory.mktemp("scratch")
    server = start_server(serve_env(iris_model, scratch), scratch / "server.log")
    yield server
    assert server.stop() == 0
    # the server removes its state dir on exit
    assert not [p for p in scratch.iterdir() if p.name.startswith("driftloop-serve-")]
