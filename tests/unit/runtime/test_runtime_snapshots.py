"""Content-addressed snapshots: a run trains on the bytes the profile validated.

The profile Job stores the validated content under its digest, once; a training Job
given a snapshot reads it back, checks every byte, and trains on it whatever the
source holds by then.  Prefix (directory) sources of Parquet files too, and the
refusals that only a prefix can produce.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import driftloop_contract as contract
from driftloop_contract import ValidationRule
from driftloop_runtime import artifacts
from driftloop_runtime.errors import RuntimeFailureError, ValidationFailedError
from driftloop_runtime.train import run_profile, train
from driftloop_testkit.runtime import IRIS_FEATURES, iris_frame, iris_request


def _profile(source: Path | str, root: Path, out: Path, **dataset: Any) -> contract.ProfileResult:
    spec: dict[str, Any] = {
        "source": str(source),
        "features": [{"name": n} for n in IRIS_FEATURES],
        "target": "target",
        **dataset,
    }
    return run_profile(
        contract.ProfileRequest.model_validate(
            {"dataset": spec, "outputDir": str(out), "snapshotRoot": str(root / "snapshots")}
        )
    )


def _snapshot_dir(root: Path, digest: str) -> Path:
    return Path(contract.snapshot_location(str(root), digest))


def _train_on(source: Path | str, result: contract.ProfileResult, out: Path) -> Any:
    req = iris_request(
        Path("/unused"), out, snapshot={"uri": result.snapshot_uri, "digest": result.digest}
    )
    req["dataset"]["source"] = str(source)
    req["dataset"]["features"] = [{"name": n} for n in IRIS_FEATURES]
    return train(contract.TrainRequest.model_validate(req))


def _leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "snapshots").glob(".staging-*"))


def test_the_validated_bytes_are_stored_once_under_their_digest(tmp_path: Path) -> None:
    source = tmp_path / "iris.csv"
    iris_frame().to_csv(source, index=False)
    first = _profile(source, tmp_path, tmp_path / "p1")
    digest = "sha256:" + hashlib.sha256(source.read_bytes()).hexdigest()
    assert first.digest == digest
    stored = _snapshot_dir(tmp_path, digest)
    assert first.snapshot_uri == "file://" + str(stored)
    assert (stored / "data" / "iris.csv").read_bytes() == source.read_bytes()
    manifest = json.loads((stored / contract.MANIFEST_FILE).read_text())
    assert manifest["files"] == {"iris.csv": digest.removeprefix("sha256:")}

    # A second Dataset with the same content (another name, another place) reuses it.
    copy = tmp_path / "elsewhere" / "same.csv"
    copy.parent.mkdir()
    shutil.copy(source, copy)
    stamp = (stored / contract.MANIFEST_FILE).stat().st_mtime_ns
    second = _profile(copy, tmp_path, tmp_path / "p2")
    assert second.snapshot_uri == first.snapshot_uri
    assert (stored / contract.MANIFEST_FILE).stat().st_mtime_ns == stamp
    assert [p.name for p in (stored / "data").iterdir()] == ["iris.csv"]
    assert _leftovers(tmp_path) == []


def test_a_run_trains_on_the_snapshot_after_the_source_changed(tmp_path: Path) -> None:
    source = tmp_path / "iris.csv"
    frame = iris_frame()
    frame.to_csv(source, index=False)
    validated = _profile(source, tmp_path, tmp_path / "p")
    frame.head(40).to_csv(source, index=False)  # the source changes after validation

    result = _train_on(source, validated, tmp_path / "model")
    assert result.dataset_digest == validated.digest
    assert result.snapshot_uri == validated.snapshot_uri
    assert result.rows == len(frame)
    # The same request twice gives the same bytes: the rerun is checkable by sha256.
    again = _train_on(source, validated, tmp_path / "model-again")
    assert (again.sha256, again.metrics) == (result.sha256, result.metrics)
    assert {"python", "scikit-learn", "numpy", "skops"} <= set(result.library_versions)


def test_a_corrupted_snapshot_is_refused_and_nothing_is_trained(tmp_path: Path) -> None:
    source = tmp_path / "iris.csv"
    iris_frame().to_csv(source, index=False)
    validated = _profile(source, tmp_path, tmp_path / "p")
    stored = _snapshot_dir(tmp_path, validated.digest or "") / "data" / "iris.csv"
    stored.write_bytes(stored.read_bytes() + b"5.0,3.0,1.0,0.2,0,red\n")
    with pytest.raises(RuntimeFailureError) as failure:
        _train_on(source, validated, tmp_path / "model")
    assert failure.value.reason == contract.REASON_SNAPSHOT_CORRUPT
    assert failure.value.exit_code == contract.EXIT_INVALID_INPUT
    assert "iris.csv has sha256" in failure.value.message
    assert not (tmp_path / "model").exists()
    assert list(tmp_path.glob(".model.tmp-*")) == []


def test_a_pinned_digest_without_a_snapshot_is_missing(tmp_path: Path) -> None:
    absent = "sha256:" + "0" * 64
    req = iris_request(
        Path("/unused"),
        tmp_path / "model",
        snapshot={"uri": contract.snapshot_location(str(tmp_path), absent), "digest": absent},
    )
    with pytest.raises(RuntimeFailureError) as failure:
        train(contract.TrainRequest.model_validate(req))
    assert failure.value.reason == contract.REASON_SNAPSHOT_MISSING
    assert absent in failure.value.message
    assert not (tmp_path / "model").exists()


def _partitioned(directory: Path) -> Path:
    """iris as hive partitions: day=1/part-0.parquet, day=2/part-0.parquet (+ a marker)."""
    frame = iris_frame()[[*IRIS_FEATURES, "target"]]
    for day, part in enumerate((frame.iloc[::2], frame.iloc[1::2]), start=1):
        sub = directory / f"day={day}"
        sub.mkdir(parents=True)
        part.to_parquet(sub / "part-0.parquet", index=False)
    (directory / "_SUCCESS").write_bytes(b"")
    return directory


def test_a_prefix_of_parquet_files_is_one_version(tmp_path: Path) -> None:
    source = _partitioned(tmp_path / "lake")
    result = _profile(source, tmp_path, tmp_path / "p")
    files = {
        rel: hashlib.sha256((source / rel).read_bytes()).hexdigest()
        for rel in ("day=1/part-0.parquet", "day=2/part-0.parquet")
    }
    listing = "".join(f"{files[rel]}  {rel}\n" for rel in sorted(files))
    assert result.digest == "sha256:" + hashlib.sha256(listing.encode()).hexdigest()
    assert result.rows == len(iris_frame())
    assert result.columns == len(IRIS_FEATURES) + 2  # the partition column "day"
    stored = _snapshot_dir(tmp_path, result.digest or "")
    assert sorted(json.loads((stored / contract.MANIFEST_FILE).read_text())["files"]) == sorted(
        files
    )
    trained = _train_on(source, result, tmp_path / "model")
    assert (trained.dataset_digest, trained.rows) == (result.digest, len(iris_frame()))


def test_a_prefix_without_files_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "lake"
    (empty / "day=1").mkdir(parents=True)
    (empty / "day=1" / "notes.csv").write_text("x\n1\n")
    with pytest.raises(ValidationFailedError) as failure:
        _profile(empty, tmp_path, tmp_path / "p")
    assert failure.value.rule == ValidationRule.no_files.value
    assert "holds no Parquet file" in failure.value.message
    assert not (tmp_path / "snapshots" / "sha256").exists()
    assert _leftovers(tmp_path) == []


def test_files_of_a_prefix_with_different_schemas_are_refused(tmp_path: Path) -> None:
    source = _partitioned(tmp_path / "lake")
    odd = pd.read_parquet(source / "day=2" / "part-0.parquet")
    odd["sepal_length"] = odd["sepal_length"].astype(str)
    odd.to_parquet(source / "day=2" / "part-0.parquet", index=False)
    with pytest.raises(ValidationFailedError) as failure:
        _profile(source, tmp_path, tmp_path / "p")
    assert failure.value.rule == ValidationRule.schema_mismatch.value
    assert (
        "day=2/part-0.parquet has column 'sepal_length' as large_string, not double"
        in failure.value.message
    )
    assert not (tmp_path / "snapshots" / "sha256").exists()
    assert not (tmp_path / "p").exists()
    assert _leftovers(tmp_path) == []


def test_refused_data_leaves_no_snapshot(tmp_path: Path) -> None:
    source = tmp_path / "iris.csv"
    iris_frame().head(3).to_csv(source, index=False)
    with pytest.raises(ValidationFailedError):
        _profile(source, tmp_path, tmp_path / "p", validation={"minRows": 10})
    assert not (tmp_path / "snapshots" / "sha256").exists()
    assert _leftovers(tmp_path) == []


def test_skops_files_are_byte_stable(tmp_path: Path) -> None:
    from sklearn.ensemble import RandomForestClassifier

    frame = iris_frame()
    x, y = frame[IRIS_FEATURES].to_numpy(), frame["target"].to_numpy()
    digests = set()
    for i in range(2):
        model = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y)
        artifacts.dump_model(model, tmp_path / f"m{i}.skops")
        digests.add(artifacts.sha256_file(tmp_path / f"m{i}.skops"))
    assert len(digests) == 1
    loaded = artifacts.load_model(tmp_path / "m0.skops")
    assert (loaded.predict(x) == model.predict(x)).all()


# --------------------------------------------------------------------------- #
# The profile's streamed pass
# --------------------------------------------------------------------------- #


def _spec(source: Path, **extra: Any) -> contract.DatasetSpec:
    return contract.DatasetSpec.model_validate(
        {
            "source": str(source),
            "features": [{"name": n} for n in IRIS_FEATURES]
            + [{"name": "color", "type": "categorical"}],
            "target": "target",
            **extra,
        }
    )


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_the_streamed_profile_equals_the_in_memory_one(
    suffix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from driftloop_runtime import data, profile, snapshot, stream

    monkeypatch.setattr(stream, "BATCH_ROWS", 7)  # 150 rows: 22 batches
    frame = iris_frame()
    frame.loc[3, "sepal_width"] = None
    source = tmp_path / f"iris.{suffix}"
    frame.to_csv(source, index=False) if suffix == "csv" else frame.to_parquet(source)
    spec = _spec(source, validation={"maxNullRatio": 0.1})
    staged = snapshot.stage(str(source), tmp_path / "staged")
    streamed, rows, columns = stream.profile_staged(staged, suffix, spec)

    loaded, _ = data.load_staged(staged, suffix)
    x, _ = data.feature_matrix(spec, loaded.frame)
    features = [(f.name, f.type is contract.FeatureType.categorical) for f in spec.features]
    in_memory = profile.build(features, x)
    # Only a model's reference profile (training) carries drift calibration.
    del in_memory["calibration"]
    assert streamed == in_memory
    assert (rows, columns) == (150, 6)


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_the_streamed_training_columns_equal_the_whole_file_ones(
    suffix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Training keeps its columns batch by batch (codes per category, joined at the
    end): the same values as the whole-file path, whatever the batches hold."""
    import numpy as np

    from driftloop_runtime import data, snapshot, stream

    monkeypatch.setattr(stream, "BATCH_ROWS", 7)  # 150 rows: 22 batches
    frame = iris_frame()
    frame.loc[3, "sepal_width"] = None
    frame.loc[5, "color"] = None  # a missing category, in the first batch only
    frame.loc[140, "color"] = "violet"  # a category first seen in a late batch
    source = tmp_path / f"iris.{suffix}"
    frame.to_csv(source, index=False) if suffix == "csv" else frame.to_parquet(source)
    staged = snapshot.stage(str(source), tmp_path / "staged")
    whole, _ = data.load_staged(staged, suffix)

    spec = _spec(source, validation={"maxNullRatio": 0.1})
    got = stream.training_data(staged, suffix, spec, contract.Task.classification)
    want, has_cat = data.feature_matrix(spec, whole.frame)
    assert has_cat
    assert got.has_categorical
    assert got.rows == 150
    for j in range(len(spec.features)):
        assert np.array_equal(
            np.asarray(got.features[j]), want[j].to_numpy(), equal_nan=j < len(IRIS_FEATURES)
        ), spec.features[j].name
    assert set(got.features[4]) == {"red", "green", "blue", "violet", data.MISSING_CATEGORY}
    assert got.target.tolist() == whole.frame["target"].tolist()

    numeric = contract.DatasetSpec.model_validate(
        {**spec.model_dump(by_alias=True), "features": [{"name": n} for n in IRIS_FEATURES]}
    )
    matrix = stream.training_data(staged, suffix, numeric, contract.Task.classification)
    assert not matrix.has_categorical
    assert np.array_equal(
        matrix.features, data.feature_matrix(numeric, whole.frame)[0], equal_nan=True
    )


def test_above_the_reservoir_the_moments_stay_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np

    from driftloop_runtime import snapshot, stream

    monkeypatch.setattr(stream, "BATCH_ROWS", 1000)
    monkeypatch.setattr(stream, "RESERVOIR", 2000)
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({n: rng.normal(5, 2, 20_000) for n in IRIS_FEATURES})
    frame["color"] = rng.choice(["red", "blue"], 20_000)
    frame["target"] = rng.integers(0, 2, 20_000)
    source = tmp_path / "big.parquet"
    frame.to_parquet(source)
    staged = snapshot.stage(str(source), tmp_path / "staged")
    prof, rows, _ = stream.profile_staged(staged, "parquet", _spec(source))
    entry = prof["features"][0]
    values = frame[IRIS_FEATURES[0]]
    assert rows == 20_000
    assert entry["mean"] == pytest.approx(values.mean(), rel=1e-12)
    assert entry["std"] == pytest.approx(values.std(ddof=0), rel=1e-9)
    assert (entry["min"], entry["max"]) == (values.min(), values.max())
    true_edges = np.quantile(values, np.linspace(0, 1, 11))[1:-1]
    assert np.allclose(entry["edges"], true_edges, atol=0.15)  # from a 2000-value sample
    assert prof["features"][-1]["categories"] == sorted(
        ["red", "blue"], key=lambda c: -(frame["color"] == c).sum()
    )


def test_a_defect_in_a_later_batch_is_named_by_its_row_in_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from driftloop_runtime import snapshot, stream

    monkeypatch.setattr(stream, "BATCH_ROWS", 10)
    frame = iris_frame()
    frame["sepal_length"] = frame["sepal_length"].astype(object)
    frame.loc[96, "sepal_length"] = "abc"  # row 97, in the tenth batch
    source = tmp_path / "iris.csv"
    frame.to_csv(source, index=False)
    staged = snapshot.stage(str(source), tmp_path / "staged")
    with pytest.raises(ValidationFailedError) as failure:
        stream.profile_staged(staged, "csv", _spec(source))
    assert failure.value.rule == ValidationRule.numeric_type.value
    assert "'abc' in row 97" in failure.value.message


def test_sampling_trains_on_a_stratified_seeded_sample(tmp_path: Path) -> None:
    from driftloop_runtime import artifacts as arts

    source = tmp_path / "iris.csv"
    iris_frame().to_csv(source, index=False)
    results = []
    for out in ("a", "b"):
        req = iris_request(tmp_path, tmp_path / out, sampling={"maxRows": 60})
        req["dataset"]["source"] = str(source)
        results.append(train(contract.TrainRequest.model_validate(req)))
    first, second = results
    assert first.rows == 60
    assert (first.sha256, first.metrics) == (second.sha256, second.metrics)
    manifest = arts.read_manifest(tmp_path / "a")
    assert manifest["rowsRead"] == 150
    classes = json.loads((tmp_path / "a" / contract.PROFILE_FILE).read_text())["prediction"]
    assert classes["categories"] == ["0", "1", "2"]


def test_a_gzip_csv_named_csv_is_read_by_its_bytes(tmp_path: Path) -> None:
    import gzip

    source = tmp_path / "iris.csv"
    source.write_bytes(gzip.compress(iris_frame().to_csv(index=False).encode()))
    result = _profile(source, tmp_path, tmp_path / "p")
    assert result.rows == 150
    trained = _train_on(source, result, tmp_path / "model")
    assert trained.rows == 150
