"""A profile Job removes the profiles of its Dataset's earlier versions once its own is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from obstore.store import MemoryStore

import driftloop_contract as contract
from driftloop_runtime import store
from driftloop_runtime.errors import ValidationFailedError
from driftloop_runtime.train import run_profile

DATA = b"x,color,label\n1.5,red,a\n2.5,blue,b\n3.5,red,a\n"


def _request(source: Path, output_dir: str, root: str | None, **dataset: Any) -> Any:
    spec: dict[str, Any] = {
        "source": str(source),
        "features": [{"name": "x"}, {"name": "color", "type": "categorical"}],
        "target": "label",
        **dataset,
    }
    return contract.ProfileRequest.model_validate(
        {"dataset": spec, "outputDir": output_dir, "supersededProfilesRoot": root}
    )


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "data.csv"
    path.write_bytes(DATA)
    return path


def _earlier_profiles(root: Path) -> None:
    for name in ("g1-r0", "g1-r1", "g2-r0"):
        (root / name).mkdir(parents=True)
        (root / name / contract.PROFILE_FILE).write_text("{}")
    (root / "stray-file").write_text("x")
    (root / ".staging-1234").mkdir()  # another writer's work in progress


def test_earlier_profiles_go_once_the_new_one_is_written(source: Path, tmp_path: Path) -> None:
    root = tmp_path / "datasets" / "iris-0123abcd"
    _earlier_profiles(root)
    result = run_profile(_request(source, str(root / "g2-r1"), str(root)))
    assert result.ok
    assert sorted(p.name for p in root.iterdir()) == [".staging-1234", "g2-r1"]
    assert (root / "g2-r1" / contract.PROFILE_FILE).stat().st_size > 2


def test_a_refused_version_removes_nothing(source: Path, tmp_path: Path) -> None:
    root = tmp_path / "datasets" / "iris-0123abcd"
    _earlier_profiles(root)
    before = sorted(p.name for p in root.iterdir())
    with pytest.raises(ValidationFailedError):
        run_profile(_request(source, str(root / "g3-r0"), str(root), validation={"minRows": 10}))
    assert sorted(p.name for p in root.iterdir()) == before


def test_without_a_root_nothing_is_removed(source: Path, tmp_path: Path) -> None:
    root = tmp_path / "datasets" / "iris-0123abcd"
    _earlier_profiles(root)
    run_profile(_request(source, str(root / "g2-r1"), None))
    assert "g1-r0" in {p.name for p in root.iterdir()}


def test_earlier_profiles_go_from_an_object_store(
    source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    memory = MemoryStore()
    monkeypatch.setattr(store, "client", lambda bucket: memory)
    import obstore

    for key in ("datasets/iris-1/g1-r0/profile.json", "datasets/iris-1/g1-r1/profile.json"):
        obstore.put(memory, key, b"{}")
    obstore.put(memory, "datasets/iris-10/g1-r0/profile.json", b"{}")  # another Dataset
    root = "s3://bucket/datasets/iris-1"
    assert run_profile(_request(source, f"{root}/g2-r0", root)).ok
    assert store.listdir(root) == ["g2-r0"]
    assert store.listdir("s3://bucket/datasets") == ["iris-1", "iris-10"]
    assert store.delete_tree("s3://bucket/datasets/iris-10") == 1
    assert store.listdir("s3://bucket/datasets") == ["iris-1"]


@pytest.mark.parametrize(
    "output_dir",
    ["/a/datasets/other/g1-r0", "/a/datasets/iris-1/g1-r0/deeper", "/a/datasets/iris-1"],
)
def test_the_output_must_be_directly_under_the_root(output_dir: str, source: Path) -> None:
    with pytest.raises(ValueError, match="not directly under supersededProfilesRoot"):
        _request(source, output_dir, "/a/datasets/iris-1")
