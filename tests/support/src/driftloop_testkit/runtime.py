"""Helpers for the runtime tests (tests/unit/runtime, tests/s3): requests, a served model."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

import driftloop_contract as contract

RUNTIME = [sys.executable, "-m", "driftloop_runtime"]
IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def iris_frame() -> Any:
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame
    frame.columns = [*IRIS_FEATURES, "target"]
    frame["color"] = ["red", "green", "blue"] * 50
    return frame


def iris_request(data_dir: Path, out: Path, **over: Any) -> dict[str, Any]:
    req: dict[str, Any] = {
        "modelName": "iris",
        "estimator": "LogisticRegression",
        "hyperparameters": {"max_iter": 500},
        "dataset": {
            "source": str(data_dir / "iris.csv"),
            "features": [{"name": n} for n in IRIS_FEATURES]
            + [{"name": "color", "type": "categorical"}],
            "target": "target",
        },
        "evaluation": {"minScores": {"accuracy": 0.8}},
        "outputDir": str(out),
    }
    req.update(over)
    return req


def diabetes_request(data_dir: Path, out: Path, **over: Any) -> dict[str, Any]:
    req: dict[str, Any] = {
        "modelName": "diabetes",
        "estimator": "Ridge",
        "dataset": {
            "source": "file://" + str(data_dir / "diabetes.parquet"),
            "features": [{"name": n} for n in ("age", "sex", "bmi", "bp", "s1", "s5")],
            "target": "target",
        },
        "outputDir": str(out),
    }
    req.update(over)
    return req


def model_sha(model_dir: Path) -> str:
    manifest = json.loads((model_dir / contract.MANIFEST_FILE).read_text())
    return str(manifest["files"][contract.MODEL_FILE])


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


def serve_env(model_dir: Path, scratch: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            contract.ENV_MODEL_NAME: model_dir.parent.name,
            contract.ENV_MODEL_VERSION: "1",
            contract.ENV_ARTIFACT_URI: "file://" + str(model_dir),
            contract.ENV_ARTIFACT_SHA256: model_sha(model_dir),
            contract.ENV_DEPLOYMENT: f"{model_dir.parent.name}-dep",
            contract.ENV_PORT: "0",
            contract.ENV_HOST: "127.0.0.1",
            contract.ENV_SCRATCH_DIR: str(scratch),
            contract.ENV_WORKERS: "2",
            contract.ENV_DRIFT_WINDOW: "200",
            # Count every row however fast the machine sends them: the tests of the
            # window and the bins assert exact counts; the row budget's own test sets it.
            contract.ENV_DRIFT_MAX_ROWS_PER_SECOND: str(10**9),
        }
    )
    env.update(extra)
    return env


def run_serve_until_exit(env: dict[str, str], timeout: float = 60) -> tuple[int, str]:
    proc = subprocess.run(
        [*RUNTIME, "serve"], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    return proc.returncode, proc.stderr + proc.stdout


def start_server(env: dict[str, str], log: Path, timeout: float = 90) -> Server:
    with open(log, "wb") as fh:
        proc = subprocess.Popen([*RUNTIME, "serve"], env=env, stdout=fh, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    port = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()}")
        m = re.search(r" on 127\.0\.0\.1:(\d+) ", log.read_text())
        if m:
            port = int(m.group(1))
            break
        time.sleep(0.1)
    if port is None:
        proc.kill()
        raise RuntimeError(f"server did not start:\n{log.read_text()}")
    url = f"http://127.0.0.1:{port}"
    while time.monotonic() < deadline:
        try:
            if requests.get(url + contract.PATH_READY, timeout=2).status_code == 200:
                return Server(proc, url, log)
        except requests.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"server not ready:\n{log.read_text()}")


@contextmanager
def serving(model_dir: Path, scratch: Path, **env: str) -> Iterator[Server]:
    """A server of ``model_dir`` (serve_env with ``env``, state in ``scratch``); stopped
    after, and checked to exit 0 and remove its state dir."""
    server = start_server(serve_env(model_dir, scratch, **env), scratch / "server.log")
    try:
        yield server
    finally:
        assert server.stop() == 0
    assert not [p for p in scratch.iterdir() if p.name.startswith("driftloop-serve-")]


def copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
