"""The s3:// store without a server: URI handling, client configuration, outages.

What it does against a real server is in tests/s3 (MinIO).  Here the endpoint is a
closed local port: every request is refused, as when the store is down.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

import driftloop_contract as contract
from driftloop_runtime import store
from driftloop_runtime.errors import RuntimeFailureError
from driftloop_runtime.train import train
from driftloop_testkit.runtime import RUNTIME, iris_request


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A clean AWS_* environment with static keys (nothing from the host leaks in)."""
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv(contract.ENV_AWS_ACCESS_KEY_ID, "test-key")
    monkeypatch.setenv(contract.ENV_AWS_SECRET_ACCESS_KEY, "test-secret")
    return monkeypatch


@pytest.fixture
def down(aws_env: pytest.MonkeyPatch) -> str:
    """AWS_ENDPOINT_URL pointing at a local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    aws_env.setenv(contract.ENV_S3_ENDPOINT, endpoint)
    return endpoint


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://bucket/a/b.csv", ("bucket", "a/b.csv")),
        ("s3://bucket/models/iris/v1/", ("bucket", "models/iris/v1")),
        ("s3://bucket", ("bucket", "")),
    ],
)
def test_split(uri: str, expected: tuple[str, str]) -> None:
    assert store.split(uri) == expected


def test_split_without_bucket_is_a_store_error() -> None:
    with pytest.raises(store.StoreError, match="no bucket"):
        store.split("s3:///key")


@pytest.mark.parametrize(
    ("endpoint", "region"),
    [
        ("https://s3.eu-west-1.amazonaws.com", "eu-west-1"),
        ("https://s3-eu-west-1.amazonaws.com/", "eu-west-1"),
        ("https://s3.dualstack.ap-south-1.amazonaws.com", "ap-south-1"),
        ("https://s3.cn-north-1.amazonaws.com.cn", "cn-north-1"),
        ("https://s3.amazonaws.com", None),
        ("http://127.0.0.1:19000", None),
        ("http://minio.storage:9000", None),
    ],
)
def test_endpoint_region(endpoint: str, region: str | None) -> None:
    assert store.endpoint_region(endpoint) == region


def test_client_for_an_http_endpoint(aws_env: pytest.MonkeyPatch) -> None:
    aws_env.setenv(contract.ENV_S3_ENDPOINT, "http://minio.storage:9000/")
    s3 = store.client("models")
    assert s3.config["endpoint"] == "http://minio.storage:9000"
    assert str(s3.config["virtual_hosted_style_request"]).lower() == "false"
    assert s3.client_options is not None
    assert str(s3.client_options["allow_http"]).lower() == "true"


def test_client_region_from_an_aws_endpoint(aws_env: pytest.MonkeyPatch) -> None:
    aws_env.setenv(contract.ENV_S3_ENDPOINT, "https://s3.eu-central-1.amazonaws.com")
    assert store.client("models").config["region"] == "eu-central-1"
    # An explicit region wins (object_store reads AWS_REGION itself).
    aws_env.setenv("AWS_REGION", "eu-west-3")
    assert "region" not in store.client("models").config


def test_client_is_cached_per_environment(aws_env: pytest.MonkeyPatch) -> None:
    aws_env.setenv(contract.ENV_S3_ENDPOINT, "http://127.0.0.1:1")
    first = store.client("models")
    assert store.client("models") is first
    aws_env.setenv(contract.ENV_AWS_SECRET_ACCESS_KEY, "rotated")
    assert store.client("models") is not first


def test_an_unreachable_store_is_a_store_error(down: str, tmp_path: Path) -> None:
    with pytest.raises(store.StoreError) as failure:
        store.read_manifest("s3://models/iris/v1")
    message = str(failure.value)
    assert message.startswith("cannot read s3://models/iris/v1/manifest.json: ")
    assert "\n" not in message
    assert "Debug source" not in message

    local = tmp_path / "f"
    local.write_bytes(b"x")
    with pytest.raises(store.StoreError, match=r"^cannot write s3://models/f: "):
        store.put_file(local, "s3://models/f")


def test_an_unreachable_source_is_data_unavailable(down: str, tmp_path: Path) -> None:
    req = iris_request(tmp_path, tmp_path / "v1")
    req["dataset"]["source"] = "s3://data/iris.csv"
    with pytest.raises(RuntimeFailureError) as failure:
        train(contract.TrainRequest.model_validate(req))
    assert failure.value.reason == contract.REASON_DATA_UNAVAILABLE
    assert failure.value.exit_code == contract.EXIT_ERROR


def test_an_unreachable_output_store_via_cli(down: str, data_dir: Path, tmp_path: Path) -> None:
    term = tmp_path / "termination-log"
    env = dict(os.environ)
    env[contract.ENV_REQUEST] = json.dumps(
        iris_request(data_dir, Path("/unused"), outputDir="s3://models/iris/v1")
    )
    env[contract.ENV_TERMINATION_LOG] = str(term)
    proc = subprocess.run(
        [*RUNTIME, contract.COMMAND_TRAIN],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == contract.EXIT_ERROR, proc.stderr
    result = json.loads(term.read_text())
    assert result["ok"] is False
    assert result["reason"] == contract.REASON_ARTIFACT_STORE_UNAVAILABLE
    assert "s3://models/iris/v1/manifest.json" in result["message"]
