"""Putting a local file on the artifact store: the objects that do it (pure).

* PVC mode: the file's bytes go into ConfigMaps (``binaryData``, at most
  :data:`CHUNK` bytes each, :data:`MAX_CHUNKS` of them) and a Job that mounts them and
  the artifact claim writes ``/artifacts/<path>`` (through a temporary name and a
  rename, so a Dataset never reads half a file).  It works on any cluster: it needs
  no exec, no node access, only the rights to create ConfigMaps and Jobs.
* S3 mode: a direct PUT from the client (see :mod:`driftloop.cli.main`); here only
  the ``s3://`` URI is parsed.

The Job's pod meets Pod Security "restricted", as the operator's own pods do.
"""

from __future__ import annotations

import base64
import posixpath
from dataclasses import dataclass
from typing import Any

import driftloop_contract as contract
from driftloop.builders.common import container_security_context, pod_security_context

Manifest = dict[str, Any]

#: Where the Job mounts the artifact claim; Dataset sources on the PVC start with it.
MOUNT = "/artifacts"
#: Bytes per ConfigMap: under the API server's 1 MiB object limit with room for metadata.
CHUNK = 900 * 1024
#: ConfigMaps per upload: files up to ``CHUNK * MAX_CHUNKS`` (~7 MiB) go through the API
#: server; larger data belongs in S3 mode (or an ``http(s)://`` source).
MAX_CHUNKS = 8
MANAGED_BY = "kubectl-driftloop"
#: Copies the parts, in order, to a temporary name next to the target, then renames it.
SCRIPT = (
    "import os,sys\n"
    "target, parts = sys.argv[1], sys.argv[2:]\n"
    "os.makedirs(os.path.dirname(target), exist_ok=True)\n"
    "with open(target + '.upload', 'wb') as out:\n"
    "    for part in parts:\n"
    "        with open(part, 'rb') as f: out.write(f.read())\n"
    "os.replace(target + '.upload', target)\n"
    "print(f'wrote {os.path.getsize(target)} bytes to {target}')\n"
)


class UploadError(ValueError):
    """The upload cannot be done as asked (bad path, too large)."""


def volume_path(to: str) -> str:
    """The path inside the artifact volume: ``data/iris.csv`` or ``/artifacts/data/iris.csv``
    both give ``data/iris.csv``; nothing may leave the volume."""
    path = to.strip()
    if path.startswith("/"):
        if not (path == MOUNT or path.startswith(MOUNT + "/")):
            raise UploadError(f"{to}: an absolute path must be under {MOUNT}/")
        path = path[len(MOUNT) :]
    path = posixpath.normpath(path.lstrip("/"))
    if path in ("", ".") or path == ".." or path.startswith("../"):
        raise UploadError(f"{to}: not a file path inside the artifact volume")
    return path


def dataset_source(to: str) -> str:
    """What a Dataset's ``spec.source`` says to read the uploaded file."""
    if to.startswith(contract.S3_SCHEME):
        return to
    return f"{MOUNT}/{volume_path(to)}"


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` -> ("bucket", "some/key")."""
    bucket, _, key = uri.removeprefix(contract.S3_SCHEME).partition("/")
    key = key.strip("/")
    if not uri.startswith(contract.S3_SCHEME) or not bucket or not key:
        raise UploadError(f"{uri}: expected s3://<bucket>/<key>")
    return bucket, key


@dataclass(frozen=True)
class PvcUpload:
    """The ConfigMaps (create them first) and the Job that writes the file."""

    config_maps: list[Manifest]
    job: Manifest
    target: str


def pvc_upload(
    name: str, namespace: str, claim: str, image: str, to: str, data: bytes
) -> PvcUpload:
    """The objects that write ``data`` to ``/artifacts/<to>`` on the claim ``claim``.

    ``name`` names the Job and, with ``-<n>`` suffixes, its ConfigMaps; the image needs
    ``python3`` (the runtime image has it).
    """
    target = f"{MOUNT}/{volume_path(to)}"
    chunks = [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)] or [b""]
    if len(chunks) > MAX_CHUNKS:
        raise UploadError(
            f"{len(data)} bytes is more than {CHUNK * MAX_CHUNKS} (what fits in "
            f"{MAX_CHUNKS} ConfigMaps): use the S3 mode or an http(s):// source"
        )
    labels = {"app.kubernetes.io/managed-by": MANAGED_BY, "app.kubernetes.io/component": "upload"}
    parts = [f"{name}-{i}" for i in range(len(chunks))]
    config_maps = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": part, "namespace": namespace, "labels": labels},
            "binaryData": {"part": _b64(chunk)},
        }
        for part, chunk in zip(parts, chunks, strict=True)
    ]
    mounts = [{"name": "artifacts", "mountPath": MOUNT}] + [
        {"name": f"part-{i}", "mountPath": f"/parts/{i}", "readOnly": True}
        for i in range(len(parts))
    ]
    volumes: list[Manifest] = [
        {"name": "artifacts", "persistentVolumeClaim": {"claimName": claim}}
    ] + [{"name": f"part-{i}", "configMap": {"name": part}} for i, part in enumerate(parts)]
    container = {
        "name": "upload",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": [
            "python3",
            "-c",
            SCRIPT,
            target,
            *[f"/parts/{i}/part" for i in range(len(parts))],
        ],
        "securityContext": container_security_context(),
        "volumeMounts": mounts,
        "resources": {
            "requests": {"cpu": "50m", "memory": "64Mi"},
            "limits": {"memory": "256Mi"},
        },
    }
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "backoffLimit": 1,
            "activeDeadlineSeconds": 600,
            "ttlSecondsAfterFinished": 300,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "securityContext": pod_security_context(),
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }
    return PvcUpload(config_maps, job, target)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
