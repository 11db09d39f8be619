"""Smoke test of the runtime image: train, then serve under a read-only root fs.

Needs a Docker engine and the image (``make images`` / ``hack/images.sh build-all``);
the image name comes from $DRIFTLOOP_RUNTIME_IMAGE (default driftloop/runtime:dev).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from driftloop_testkit.s3 import S3Server

pytestmark = pytest.mark.docker

IMAGE = os.environ.get("DRIFTLOOP_RUNTIME_IMAGE", "driftloop/runtime:dev")
DOCKER = os.environ.get(
    "DOCKER", "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else "docker"
)
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def docker(
    *args: str, check: bool = True, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DOCKER, *args], capture_output=True, text=True, timeout=timeout, check=check
    )


def wait_ready(url: str, container: str, timeout: float = 120) -> None:
    """Wait for the server in ``container`` to report ready; fail with its logs if it dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/v2/health/ready", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        state = docker("inspect", "-f", "{{.State.Running}}", container, check=False).stdout
        if state.strip() == "false":
            pytest.fail("container exited: " + docker("logs", container, check=False).stderr)
        time.sleep(0.5)
    pytest.fail("server not ready: " + docker("logs", container, check=False).stderr)


@pytest.fixture(scope="module")
def image() -> str:
    if shutil.which(DOCKER) is None:
        pytest.skip("docker CLI not installed")
    if docker("info", check=False, timeout=30).returncode != 0:
        pytest.skip("no Docker engine running (hack/images.sh engine)")
    if docker("image", "inspect", IMAGE, check=False).returncode != 0:
        pytest.fail(f"image {IMAGE} not built: run `make images` (hack/images.sh build-all)")
    return IMAGE


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    from sklearn.datasets import load_iris

    root = tmp_path / "artifacts"
    (root / "data").mkdir(parents=True)
    frame = load_iris(as_frame=True).frame
    frame.columns = [*FEATURES, "target"]
    frame.to_csv(root / "data" / "iris.csv", index=False)
    for p in [root, root / "data", root / "data" / "iris.csv"]:
        os.chown(p, 65532, 65532) if os.geteuid() == 0 else p.chmod(0o777)
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_run(artifacts: Path) -> list[str]:
    return [
        "run",
        "--rm",
        "--network",
        "host",
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--user",
        "65532:65532",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "-v",
        f"{artifacts}:/artifacts",
    ]


def train_in_container(run: list[str], image: str, source: str, out: str) -> dict[str, Any]:
    """``docker <run> <image> train`` of a logistic regression on iris at ``source`` into
    ``out``; the result it printed (which must say ok)."""
    request = {
        "modelName": "iris",
        "estimator": "LogisticRegression",
        "hyperparameters": {"max_iter": 500},
        "dataset": {
            "source": source,
            "features": [{"name": n} for n in FEATURES],
            "target": "target",
        },
        "outputDir": out,
    }
    proc = docker(
        *run,
        "-e",
        f"DRIFTLOOP_REQUEST={json.dumps(request)}",
        "-e",
        "DRIFTLOOP_TERMINATION_LOG=/tmp/termination-log",
        image,
        "train",
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["ok"] is True
    return result


@pytest.fixture
def trained(image: str, artifacts: Path) -> dict[str, str]:
    result = train_in_container(
        base_run(artifacts), image, "/artifacts/data/iris.csv", "/artifacts/models/iris/v1"
    )
    assert result["artifactUri"] == "file:///artifacts/models/iris/v1"
    assert (artifacts / "models" / "iris" / "v1" / "manifest.json").exists()
    return {"sha256": result["sha256"]}


@pytest.fixture
def served(image: str, artifacts: Path, trained: dict[str, str]) -> Iterator[str]:
    port = free_port()
    name = f"driftloop-smoke-{uuid.uuid4().hex[:8]}"
    run = docker(
        *base_run(artifacts)[:2],
        "-d",
        "--name",
        name,
        *base_run(artifacts)[2:],
        "-e",
        "DRIFTLOOP_MODEL_NAME=iris",
        "-e",
        "DRIFTLOOP_MODEL_VERSION=1",
        "-e",
        "DRIFTLOOP_ARTIFACT_URI=file:///artifacts/models/iris/v1",
        "-e",
        f"DRIFTLOOP_ARTIFACT_SHA256={trained['sha256']}",
        "-e",
        "DRIFTLOOP_DEPLOYMENT=smoke",
        "-e",
        "DRIFTLOOP_WORKERS=2",
        "-e",
        f"DRIFTLOOP_PORT={port}",
        "-e",  # host network: the default gRPC port may be taken by another server here
        f"DRIFTLOOP_GRPC_PORT={free_port()}",
        "-e",
        "DRIFTLOOP_HOST=127.0.0.1",
        image,
        "serve",
        check=False,
    )
    assert run.returncode == 0, run.stderr
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, name)
        yield url
        # graceful stop: SIGTERM, exit code 0
        docker("stop", "-t", "30", name, check=False)
        code = docker("wait", name, check=False).stdout.strip()
        assert code in ("0", ""), docker("logs", name, check=False).stderr
    finally:
        docker("rm", "-f", name, check=False)


def assert_predicts_classes_0_and_2(url: str) -> None:
    """The server at ``url`` answers a setosa row and a virginica row with classes 0, 2."""
    body = {
        "inputs": [
            {
                "name": "x",
                "shape": [2, 4],
                "datatype": "FP32",
                "data": [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3],
            }
        ]
    }
    r = requests.post(url + "/v2/models/iris/infer", json=body, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == [0, 2]


def test_image_trains_and_serves(served: str) -> None:
    assert_predicts_classes_0_and_2(served)
    bad = requests.post(served + "/v2/models/iris/infer", data=b"{", timeout=10)
    assert bad.status_code == 400
    metrics = requests.get(served + "/metrics", timeout=10).text
    assert "driftloop_inference_requests_total" in metrics
    assert "driftloop_drift_window_fill_ratio" in metrics


def test_image_refuses_tampered_artifact(
    image: str, artifacts: Path, trained: dict[str, str]
) -> None:
    proc = docker(
        *base_run(artifacts),
        "-e",
        "DRIFTLOOP_MODEL_NAME=iris",
        "-e",
        "DRIFTLOOP_ARTIFACT_URI=file:///artifacts/models/iris/v1",
        "-e",
        "DRIFTLOOP_ARTIFACT_SHA256=" + "0" * 64,
        image,
        "serve",
        check=False,
    )
    assert proc.returncode != 0
    assert "refusing to serve" in proc.stderr


# --------------------------------------------------------------------------- #
# S3 artifact store: the same image against the real server of hack/s3.sh, with
# no volume at all (read-only root, /tmp tmpfs), as the operator runs it in S3 mode.
# --------------------------------------------------------------------------- #


def s3_run(s3: S3Server) -> list[str]:
    run = [arg for arg in base_run(Path("/unused")) if arg not in ("-v", "/unused:/artifacts")]
    for key, value in s3.env().items():
        run += ["-e", f"{key}={value}"]
    return run


@pytest.mark.s3
def test_image_trains_to_and_serves_from_s3(
    image: str, artifacts: Path, s3_env: S3Server, s3_prefix: str
) -> None:
    from driftloop_runtime import store

    source = f"{s3_prefix}/data/iris.csv"
    store.put_file(artifacts / "data" / "iris.csv", source)
    out = f"{s3_prefix}/models/iris/v1"
    result = train_in_container(s3_run(s3_env), image, source, out)
    assert result["artifactUri"] == out
    manifest = store.read_manifest(out)
    assert manifest is not None
    assert manifest["files"]["model.skops"] == result["sha256"]

    port = free_port()
    name = f"driftloop-s3-{uuid.uuid4().hex[:8]}"
    run = docker(
        *s3_run(s3_env)[:2],
        "-d",
        "--name",
        name,
        *s3_run(s3_env)[2:],
        "-e",
        "DRIFTLOOP_MODEL_NAME=iris",
        "-e",
        f"DRIFTLOOP_ARTIFACT_URI={out}",
        "-e",
        f"DRIFTLOOP_ARTIFACT_SHA256={result['sha256']}",
        "-e",
        f"DRIFTLOOP_PORT={port}",
        "-e",  # host network: the default gRPC port may be taken by another server here
        f"DRIFTLOOP_GRPC_PORT={free_port()}",
        "-e",
        "DRIFTLOOP_HOST=127.0.0.1",
        image,
        "serve",
        check=False,
    )
    assert run.returncode == 0, run.stderr
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, name)
        assert_predicts_classes_0_and_2(url)
    finally:
        docker("rm", "-f", name, check=False)

    # A digest other than the ModelVersion's is refused, as from a volume.
    refused = docker(
        *s3_run(s3_env),
        "-e",
        "DRIFTLOOP_MODEL_NAME=iris",
        "-e",
        f"DRIFTLOOP_ARTIFACT_URI={out}",
        "-e",
        "DRIFTLOOP_ARTIFACT_SHA256=" + "0" * 64,
        image,
        "serve",
        check=False,
    )
    assert refused.returncode != 0
    assert f"refusing to serve {out}" in refused.stderr
