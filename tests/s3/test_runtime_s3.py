"""The runtime against a real S3-compatible server (MinIO from hack/s3.sh), in process.

Train to an ``s3://`` prefix, serve from it over real HTTP, and the commit-marker
rules: a prefix without manifest.json holds no version, a tampered object is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
import requests

import driftloop_contract as contract
from driftloop_runtime import artifacts, data, store
from driftloop_runtime.errors import RuntimeFailureError
from driftloop_runtime.train import existing_result, run_profile, train
from driftloop_testkit.runtime import (
    iris_frame,
    iris_request,
    run_serve_until_exit,
    start_server,
)
from driftloop_testkit.s3 import S3Server

pytestmark = pytest.mark.s3


@pytest.fixture
def source(s3_env: S3Server, s3_prefix: str, tmp_path: Path) -> str:
    """iris.csv uploaded to the store: Datasets read s3:// sources with the same client."""
    local = tmp_path / "iris.csv"
    iris_frame().to_csv(local, index=False)
    uri = f"{s3_prefix}/data/iris.csv"
    store.put_file(local, uri)
    return uri


def _request(source: str, out: str) -> contract.TrainRequest:
    req = iris_request(Path("/unused"), Path("/unused"), outputDir=out)
    req["dataset"]["source"] = source
    return contract.TrainRequest.model_validate(req)


def _objects(prefix: str) -> set[str]:
    return set(store.listdir(prefix))


def _serve_env(s3: S3Server, uri: str, sha: str, scratch: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(s3.env())
    env.update(
        {
            contract.ENV_MODEL_NAME: "iris",
            contract.ENV_MODEL_VERSION: "1",
            contract.ENV_ARTIFACT_URI: uri,
            contract.ENV_ARTIFACT_SHA256: sha,
            contract.ENV_PORT: "0",
            contract.ENV_HOST: "127.0.0.1",
            contract.ENV_SCRATCH_DIR: str(scratch),
            contract.ENV_WORKERS: "2",
        }
    )
    return env


def test_train_to_s3_then_serve_from_it(
    s3_env: S3Server, s3_prefix: str, source: str, tmp_path: Path
) -> None:
    out = f"{s3_prefix}/models/iris/v1"
    result = train(_request(source, out))
    assert result.ok, result
    assert result.artifact_uri == out
    assert _objects(out) == {
        contract.MODEL_FILE,
        contract.PROFILE_FILE,
        contract.METRICS_FILE,
        contract.MANIFEST_FILE,
    }
    manifest = store.read_manifest(out)
    assert manifest is not None
    assert manifest["files"][contract.MODEL_FILE] == result.sha256
    assert manifest["result"]["artifactUri"] == out
    # The dataset digest is of the raw object, as for a file.
    raw = store.read_bytes(source)
    assert result.dataset_digest == "sha256:" + hashlib.sha256(raw).hexdigest()

    scratch = tmp_path / "scratch"
    server = start_server(
        _serve_env(s3_env, out, result.sha256 or "", scratch), tmp_path / "server.log"
    )
    try:
        body = {
            "inputs": [
                {"name": "sepal_length", "shape": [2], "datatype": "FP64", "data": [5.1, 6.7]},
                {"name": "sepal_width", "shape": [2], "datatype": "FP64", "data": [3.5, 3.0]},
                {"name": "petal_length", "shape": [2], "datatype": "FP64", "data": [1.4, 5.2]},
                {"name": "petal_width", "shape": [2], "datatype": "FP64", "data": [0.2, 2.3]},
                {"name": "color", "shape": [2], "datatype": "BYTES", "data": ["red", "blue"]},
            ]
        }
        response = requests.post(server.url + "/v2/models/iris/infer", json=body, timeout=10)
        assert response.status_code == 200, response.text
        assert response.json()["outputs"][0]["data"] == [0, 2]
    finally:
        assert server.stop() == 0
    assert "downloaded " + out in server.log.read_text()
    # The downloaded copy lived in the server's scratch state dir, removed at exit.
    assert not [p for p in scratch.iterdir() if p.name.startswith("driftloop-serve-")]


def test_a_retried_job_reports_the_committed_version(
    s3_env: S3Server, s3_prefix: str, source: str
) -> None:
    out = f"{s3_prefix}/models/iris/v1"
    first = train(_request(source, out))
    manifest_before = store.read_bytes(store.join(out, contract.MANIFEST_FILE))
    again = train(_request(source, out))
    assert again == first
    # Nothing was rewritten: the committed set is final.
    assert store.read_bytes(store.join(out, contract.MANIFEST_FILE)) == manifest_before


def test_files_without_a_manifest_are_no_version(
    s3_env: S3Server, s3_prefix: str, source: str, tmp_path: Path
) -> None:
    """A killed upload leaves files but no manifest: absent to readers, overwritten on retry."""
    out = f"{s3_prefix}/models/iris/v1"
    junk = tmp_path / "junk"
    junk.write_bytes(b"half an upload")
    store.put_file(junk, store.join(out, contract.MODEL_FILE))
    store.put_file(junk, store.join(out, contract.PROFILE_FILE))

    assert existing_result(out) is None
    code, log = run_serve_until_exit(_serve_env(s3_env, out, "0" * 64, tmp_path / "scratch"))
    assert code == 1
    assert f"refusing to serve {out}" in log
    assert "never committed" in log

    result = train(_request(source, out))
    assert result.ok
    local = store.download_set(out, tmp_path / "fetched")
    assert artifacts.verify(local, result.sha256)["files"][contract.MODEL_FILE] == result.sha256


def test_a_tampered_object_is_refused(
    s3_env: S3Server, s3_prefix: str, source: str, tmp_path: Path
) -> None:
    out = f"{s3_prefix}/models/iris/v1"
    result = train(_request(source, out))
    other = tmp_path / "other.skops"
    other.write_bytes(b"not the model")
    store.put_file(other, store.join(out, contract.MODEL_FILE))

    code, log = run_serve_until_exit(
        _serve_env(s3_env, out, result.sha256 or "", tmp_path / "scratch")
    )
    assert code == 1
    assert "does not match the manifest" in log
    # A retried Job does not paper over it either.
    with pytest.raises(RuntimeFailureError) as failure:
        existing_result(out)
    assert failure.value.reason == contract.REASON_OUTPUT_CONFLICT


def test_profile_to_s3(s3_env: S3Server, s3_prefix: str, source: str) -> None:
    req = _request(source, "unused")
    result = run_profile(
        contract.ProfileRequest(dataset=req.dataset, output_dir=f"{s3_prefix}/datasets/iris/g1")
    )
    assert result.ok
    assert result.profile_uri == f"{s3_prefix}/datasets/iris/g1/{contract.PROFILE_FILE}"
    profile: dict[str, Any] = json.loads(store.read_bytes(result.profile_uri))
    assert [f["name"] for f in profile["features"]][:2] == ["sepal_length", "sepal_width"]
    assert profile["datasetDigest"] == result.digest


def test_an_unknown_object_is_data_unavailable(s3_env: S3Server, s3_prefix: str) -> None:
    req = _request(f"{s3_prefix}/data/missing.csv", f"{s3_prefix}/models/x/v1")
    with pytest.raises(RuntimeFailureError) as failure:
        train(req)
    assert failure.value.reason == contract.REASON_DATA_UNAVAILABLE


def test_refused_credentials(
    s3_env: S3Server,
    s3_prefix: str,
    source: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Wrong keys: a store error for artifacts (a Job retries), DataUnavailable for a source."""
    local = tmp_path / "iris.csv"
    iris_frame().to_csv(local, index=False)
    out = f"{s3_prefix}/models/iris/v1"
    monkeypatch.setenv(contract.ENV_AWS_SECRET_ACCESS_KEY, "not-the-secret")
    with pytest.raises(store.StoreError, match=r"^cannot read .*PermissionDenied"):
        train(_request(str(local), out))
    with pytest.raises(store.StoreError, match=r"^cannot write .*PermissionDenied"):
        store.put_file(local, f"{s3_prefix}/data/other.csv")
    with pytest.raises(RuntimeFailureError) as failure:
        data.read_source_bytes(source)
    assert failure.value.reason == contract.REASON_DATA_UNAVAILABLE
    monkeypatch.setenv(contract.ENV_AWS_SECRET_ACCESS_KEY, s3_env.secret_key)
    assert _objects(s3_prefix) == {"data"}  # nothing was written


def test_read_limit_and_listing(s3_env: S3Server, s3_prefix: str, source: str) -> None:
    raw = store.read_bytes(source)
    assert store.read_bytes(source, limit=len(raw)) == raw
    assert store.read_bytes(source, limit=10) == raw[:11]  # one past: the caller sees "too big"
    assert store.listdir(s3_prefix) == ["data"]
    assert store.listdir(f"{s3_prefix}/data/") == ["iris.csv"]
    assert store.listdir(f"{s3_prefix}/absent") == []
