"""Dataset snapshots in an S3 artifact store (MinIO from hack/s3.sh), in process.

The profile stores the validated bytes under their digest (manifest last), a second
profile of the same content reuses them, a run trains on the snapshot after the
source changed, a prefix of Parquet files is one version, and a tampered snapshot
object is refused before anything is trained.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import driftloop_contract as contract
from driftloop_runtime import store
from driftloop_runtime.errors import RuntimeFailureError, ValidationFailedError
from driftloop_runtime.train import run_profile, train
from driftloop_testkit.runtime import IRIS_FEATURES, iris_frame, iris_request
from driftloop_testkit.s3 import S3Server

pytestmark = pytest.mark.s3


def _put(frame: Any, uri: str, tmp_path: Path, parquet: bool = False) -> None:
    local = tmp_path / ("f.parquet" if parquet else "f.csv")
    if parquet:
        frame.to_parquet(local, index=False)
    else:
        frame.to_csv(local, index=False)
    store.put_file(local, uri)


def _profile(source: str, prefix: str) -> contract.ProfileResult:
    spec = {"source": source, "features": [{"name": n} for n in IRIS_FEATURES], "target": "target"}
    return run_profile(
        contract.ProfileRequest.model_validate(
            {
                "dataset": spec,
                "outputDir": f"{prefix}/profiles/p",
                "snapshotRoot": contract.snapshot_root(prefix),
            }
        )
    )


def _train(source: str, result: contract.ProfileResult, out: str) -> contract.TrainResult:
    req = iris_request(
        Path("/unused"),
        Path("/unused"),
        outputDir=out,
        snapshot={"uri": result.snapshot_uri, "digest": result.digest},
    )
    req["dataset"]["source"] = source
    req["dataset"]["features"] = [{"name": n} for n in IRIS_FEATURES]
    return train(contract.TrainRequest.model_validate(req))


def test_a_snapshot_is_stored_once_and_trained_on_after_the_source_changed(
    s3_env: S3Server, s3_prefix: str, tmp_path: Path
) -> None:
    source = f"{s3_prefix}/data/iris.csv"
    _put(iris_frame(), source, tmp_path)
    first = _profile(source, s3_prefix)
    assert first.snapshot_uri == contract.snapshot_location(s3_prefix, first.digest or "")
    assert store.listdir(first.snapshot_uri or "") == ["data", "manifest.json"]
    again = _profile(source, s3_prefix)  # same content: found committed, reused
    assert again.snapshot_uri == first.snapshot_uri

    _put(iris_frame().head(60), source, tmp_path)  # the source changes
    result = _train(source, first, f"{s3_prefix}/models/v1")
    assert (result.dataset_digest, result.rows) == (first.digest, 150)


def test_a_prefix_of_parquet_files_on_s3(s3_env: S3Server, s3_prefix: str, tmp_path: Path) -> None:
    frame = iris_frame()[[*IRIS_FEATURES, "target"]]
    _put(frame.iloc[::2], f"{s3_prefix}/lake/day=1/part-0.parquet", tmp_path, parquet=True)
    _put(frame.iloc[1::2], f"{s3_prefix}/lake/day=2/part-0.parquet", tmp_path, parquet=True)
    result = _profile(f"{s3_prefix}/lake/", s3_prefix)
    assert (result.rows, result.columns) == (150, 6)
    trained = _train(f"{s3_prefix}/lake/", result, f"{s3_prefix}/models/lake")
    assert trained.dataset_digest == result.digest

    with pytest.raises(ValidationFailedError) as failure:
        _profile(f"{s3_prefix}/nothing-here/", s3_prefix)
    assert failure.value.rule == contract.ValidationRule.no_files.value


def test_a_tampered_snapshot_object_is_refused(
    s3_env: S3Server, s3_prefix: str, tmp_path: Path
) -> None:
    source = f"{s3_prefix}/data/iris.csv"
    _put(iris_frame(), source, tmp_path)
    validated = _profile(source, s3_prefix)
    _put(iris_frame().head(60), f"{validated.snapshot_uri}/data/iris.csv", tmp_path)
    out = f"{s3_prefix}/models/v1"
    with pytest.raises(RuntimeFailureError) as failure:
        _train(source, validated, out)
    assert failure.value.reason == contract.REASON_SNAPSHOT_CORRUPT
    assert store.read_manifest(out) is None  # nothing half-written
