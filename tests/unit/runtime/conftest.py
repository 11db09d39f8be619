"""Fixtures for the runtime tests: bundled sklearn datasets, trained artifacts, servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import driftloop_contract as contract
from driftloop_testkit.runtime import (
    Server,
    diabetes_request,
    iris_frame,
    iris_request,
    serving,
)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sklearn.datasets import load_diabetes

    d = tmp_path_factory.mktemp("data")
    iris_frame().to_csv(d / "iris.csv", index=False)
    load_diabetes(as_frame=True).frame.to_parquet(d / "diabetes.parquet")
    return d


def _trained(
    request: Callable[[Path, Path], dict[str, Any]],
    data_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    model: str,
) -> Path:
    """Train ``request(data_dir, out)`` in process into <tmp>/<model>/v1; that directory."""
    from driftloop_runtime.train import train

    out = tmp_path_factory.mktemp("models") / model / "v1"
    result = train(contract.TrainRequest.model_validate(request(data_dir, out)))
    assert result.ok
    return out


@pytest.fixture(scope="session")
def iris_model(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _trained(iris_request, data_dir, tmp_path_factory, "iris")


@pytest.fixture(scope="session")
def diabetes_model(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _trained(diabetes_request, data_dir, tmp_path_factory, "diabetes")


@pytest.fixture(scope="module")
def iris_server(iris_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(iris_model, tmp_path_factory.mktemp("scratch")) as server:
        yield server
