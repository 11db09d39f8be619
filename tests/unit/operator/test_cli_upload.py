"""``kubectl driftloop upload``: paths, and the ConfigMaps and Job of the PVC mode (pure)."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest

from driftloop.cli.upload import (
    CHUNK,
    MAX_CHUNKS,
    SCRIPT,
    UploadError,
    dataset_source,
    pvc_upload,
    split_s3,
    volume_path,
)


@pytest.mark.parametrize(
    ("to", "path"),
    [
        ("data/iris.csv", "data/iris.csv"),
        ("/artifacts/data/iris.csv", "data/iris.csv"),
        ("./data//iris.csv", "data/iris.csv"),
        ("a/../b.csv", "b.csv"),
    ],
)
def test_paths_inside_the_volume(to: str, path: str) -> None:
    assert volume_path(to) == path
    assert dataset_source(to) == f"/artifacts/{path}"


@pytest.mark.parametrize("to", ["../etc/passwd", "/etc/passwd", "/artifactsx/a", "", "/artifacts"])
def test_paths_that_leave_the_volume_are_refused(to: str) -> None:
    with pytest.raises(UploadError):
        volume_path(to)


def test_s3_uris() -> None:
    assert split_s3("s3://models/data/iris.csv") == ("models", "data/iris.csv")
    assert dataset_source("s3://models/data/iris.csv") == "s3://models/data/iris.csv"
    for bad in ("s3://models", "s3:///key", "http://x/y"):
        with pytest.raises(UploadError):
            split_s3(bad)


def test_a_small_file_is_one_configmap_and_a_restricted_job() -> None:
    plan = pvc_upload("up-1", "ml", "driftloop-artifacts", "img:1", "data/x.csv", b"a,b\n1,2\n")
    assert plan.target == "/artifacts/data/x.csv"
    [cm] = plan.config_maps
    assert cm["metadata"] == {
        "name": "up-1-0",
        "namespace": "ml",
        "labels": {
            "app.kubernetes.io/managed-by": "kubectl-driftloop",
            "app.kubernetes.io/component": "upload",
        },
    }
    assert base64.b64decode(cm["binaryData"]["part"]) == b"a,b\n1,2\n"
    pod = plan.job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["command"][3:] == ["/artifacts/data/x.csv", "/parts/0/part"]
    assert container["image"] == "img:1"
    # Pod Security "restricted".
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert {"name": "artifacts", "persistentVolumeClaim": {"claimName": "driftloop-artifacts"}} in (
        pod["volumes"]
    )


def test_a_larger_file_is_split_in_order() -> None:
    data = bytes(range(256)) * ((CHUNK * 2 + 10) // 256 + 1)
    plan = pvc_upload("up-2", "ml", "c", "img", "big.bin", data)
    parts = [base64.b64decode(cm["binaryData"]["part"]) for cm in plan.config_maps]
    assert len(parts) == 3
    assert b"".join(parts) == data
    assert all(len(p) <= CHUNK for p in parts)
    command = plan.job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[4:] == ["/parts/0/part", "/parts/1/part", "/parts/2/part"]


def test_too_large_for_configmaps() -> None:
    with pytest.raises(UploadError, match="S3 mode"):
        pvc_upload("up", "ml", "c", "img", "f", b"x" * (CHUNK * MAX_CHUNKS + 1))


def test_the_jobs_script_joins_the_parts_and_renames(tmp_path: Path) -> None:
    parts = []
    for i, chunk in enumerate([b"hello ", b"world"]):
        part = tmp_path / "parts" / str(i) / "part"
        part.parent.mkdir(parents=True)
        part.write_bytes(chunk)
        parts.append(str(part))
    target = tmp_path / "artifacts" / "data" / "x.txt"
    subprocess.run([sys.executable, "-c", SCRIPT, str(target), *parts], check=True)
    assert target.read_bytes() == b"hello world"
    assert not target.with_name("x.txt.upload").exists()
