"""The operator in S3 artifact mode on a real cluster, against the real S3 server.

No PVC in the namespace: the operator (a subprocess, as in test_operator.py) is
configured with the bucket, the endpoint as pods reach it and the credentials Secret;
profile and training Jobs write to s3://, the predictor downloads from it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import driftloop_contract as contract
from driftloop_runtime import store
from driftloop_testkit.cluster import Kubectl, wait_for
from driftloop_testkit.data import dataset_manifest, iris_csv
from driftloop_testkit.driftloop import (
    OperatorProcess,
    condition,
    create_cr,
    kubectl_driftloop,
    ready_predictor_url,
    running_operator,
    wait_cr,
)
from driftloop_testkit.s3 import S3_SECRET, S3Server
from driftloop_testkit.scenarios import (
    has_reason,
    new_version,
    ready_dataset,
    train_then_serve,
    verified_version,
)
from driftloop_testkit.traffic import infer

pytestmark = [pytest.mark.cluster, pytest.mark.s3]


@pytest.fixture
def s3_operator(
    kubeconfig: str,
    namespace: str,
    crds: None,
    runtime_image: str,
    s3: S3Server,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    with running_operator(
        kubeconfig,
        namespace,
        runtime_image,
        tmp_path_factory.mktemp("operator"),
        **s3.operator_env(),
    ) as proc:
        yield proc


def _put_iris(tmp_path: Path, uri: str, **variant: Any) -> str:
    """Upload the iris CSV (:func:`iris_csv` with ``variant``) to ``uri``; return ``uri``."""
    local = tmp_path / "iris.csv"
    local.write_text(iris_csv(**variant))
    store.put_file(local, uri)
    return uri


def test_data_to_prediction_through_s3(
    s3_operator: OperatorProcess,
    s3_secret: str,
    s3_env: S3Server,
    custom: Any,
    kubectl: Kubectl,
    namespace: str,
    tmp_path: Path,
) -> None:
    source = _put_iris(tmp_path, f"s3://{s3_env.bucket}/{namespace}/data/iris.csv")
    served = train_then_serve(custom, namespace, source)
    dataset, run, mv = served.dataset, served.run, served.model_version
    assert dataset["status"]["rows"] == 150
    profile_uri = dataset["status"]["profileUri"]
    assert profile_uri.startswith(f"s3://{s3_env.bucket}/datasets/iris-")
    assert b'"features"' in store.read_bytes(profile_uri)

    assert run["status"]["modelVersion"] == "iris-v1"
    uri = mv["spec"]["artifact"]["uri"]
    assert uri.startswith(f"s3://{s3_env.bucket}/models/iris/iris-1-")
    # The committed set is in the bucket, and its manifest names the registered digest.
    manifest = store.read_manifest(uri)
    assert manifest is not None
    assert manifest["files"][contract.MODEL_FILE] == mv["spec"]["artifact"]["sha256"]
    job = kubectl.json("get", "job", "iris-1-train", "-n", namespace)
    assert [v["name"] for v in job["spec"]["template"]["spec"]["volumes"]] == ["scratch"]

    url = ready_predictor_url(kubectl, namespace, "iris", 1)
    response = infer(url, [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])
    assert response.status_code == 200, response.text
    assert len(response.json()["outputs"][0]["data"]) == 2
    logs = kubectl(
        "logs", "-n", namespace, "-l", "app.kubernetes.io/component=predictor", "--tail=-1"
    ).stdout
    assert f"downloaded {uri}" in logs
    verified_version(custom, namespace)


def test_a_refreshed_dataset_keeps_only_its_current_profile(
    s3_operator: OperatorProcess,
    s3_secret: str,
    s3_env: S3Server,
    custom: Any,
    namespace: str,
    tmp_path: Path,
) -> None:
    """Each refresh window and version writes a profile; the earlier ones leave the bucket."""
    source = _put_iris(tmp_path, f"s3://{s3_env.bucket}/{namespace}/data/iris.csv")
    first = ready_dataset(custom, namespace, source, refresh_interval="15s")["status"]
    first_dir = first["profileUri"].rsplit("/", 1)[0]
    root, first_name = first_dir.rsplit("/", 1)

    _put_iris(tmp_path, source, shift=0.5, seed=1)  # the source changes upstream
    new_version(custom, namespace, first["version"])
    # Between one profile's write and its clean-up two entries exist; then one again.
    wait_for(
        lambda: len(names := store.listdir(root)) == 1 and first_name not in names,
        timeout=120,
        what=f"only the current profile under {root}",
    )


def test_missing_credentials_secret_is_reported(
    s3_operator: OperatorProcess, s3: S3Server, custom: Any, namespace: str
) -> None:
    create_cr(custom, namespace, dataset_manifest("iris", f"s3://{s3.bucket}/{namespace}/iris.csv"))
    dataset = wait_cr(
        custom, namespace, "Dataset", "iris", has_reason("ArtifactStoreMissing"), timeout=60
    )
    assert f"Secret {S3_SECRET!r}" in condition(dataset)["message"]


def test_a_file_uploaded_with_the_plugin_is_a_dataset_source(
    s3_operator: OperatorProcess,
    s3_secret: str,
    s3: S3Server,
    custom: Any,
    kubeconfig: str,
    namespace: str,
    tmp_path: Path,
) -> None:
    """``kubectl driftloop upload --to s3://...`` with the keys of the namespace's Secret
    (none in the environment): the Dataset reads the object it wrote."""
    local = tmp_path / "iris.csv"
    local.write_text(iris_csv())
    source = f"s3://{s3.bucket}/{namespace}/uploaded/iris.csv"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    out = kubectl_driftloop(
        kubeconfig,
        namespace,
        "upload",
        str(local),
        "--to",
        source,
        "--secret",
        s3_secret,
        "--endpoint",
        s3.endpoint,
        env=env,
    ).stdout
    assert f"wrote {local.stat().st_size} bytes to {source}" in out, out
    assert f"Dataset source: {source}" in out, out

    dataset = ready_dataset(custom, namespace, source)
    assert dataset["status"]["rows"] == 150
