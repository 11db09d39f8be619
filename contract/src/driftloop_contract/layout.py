"""Where the runtime finds things: volumes, the files of an artifact set, the S3 store."""

from __future__ import annotations

from typing import Final

#: Where the shared artifact volume is mounted in every runtime container.
ARTIFACT_MOUNT: Final = "/artifacts"
#: Writable scratch directory (prometheus multiprocess files etc.); an emptyDir.
ENV_SCRATCH_DIR: Final = "DRIFTLOOP_SCRATCH_DIR"
SCRATCH_MOUNT: Final = "/tmp"

# Files of one artifact set (one trained model version).
MODEL_FILE: Final = "model.skops"
PROFILE_FILE: Final = "profile.json"
METRICS_FILE: Final = "metrics.json"
#: The full per-group report of the fairness evaluation (unbounded; the training
#: result carries a bounded copy).
FAIRNESS_FILE: Final = "fairness.json"
#: Written last: a set without it is incomplete (never served).
MANIFEST_FILE: Final = "manifest.json"
MODEL_FORMAT: Final = "skops"

# S3-compatible artifact store.  With it the operator mounts no volume: artifact
# directories are ``s3://<bucket>/...`` prefixes and the pods get these env vars
# (the credentials from a Secret).  The names are the AWS SDKs' own, so any other
# tool in the image (aws CLI, boto3) sees the same store.
S3_SCHEME: Final = "s3://"
#: Endpoint of an S3-compatible server (MinIO, Ceph RGW...); unset means AWS S3.
#: The runtime passes it to its S3 client explicitly, with path-style addressing.
ENV_S3_ENDPOINT: Final = "AWS_ENDPOINT_URL"
ENV_AWS_ACCESS_KEY_ID: Final = "AWS_ACCESS_KEY_ID"
ENV_AWS_SECRET_ACCESS_KEY: Final = "AWS_SECRET_ACCESS_KEY"
#: Keys of the credentials Secret the operator reads into the two variables above.
S3_SECRET_KEYS: Final = (ENV_AWS_ACCESS_KEY_ID, ENV_AWS_SECRET_ACCESS_KEY)

# Content-addressed dataset snapshots: the bytes a profile Job validated, stored once
# under their digest, ``<root>/snapshots/sha256/<hex>/``: ``data/<file>`` (the source
# file, or every file of a prefix at its relative path) and ``manifest.json`` (written
# last: the commit marker) = {"digest", "format", "source", "files": {path: sha256}}.
SNAPSHOTS_DIR: Final = "snapshots"
SNAPSHOT_DATA_DIR: Final = "data"
DIGEST_PREFIX: Final = "sha256:"


def snapshot_root(artifact_root: str) -> str:
    """Where snapshots of every digest live under an artifact root (path or s3://bucket)."""
    return f"{artifact_root.rstrip('/')}/{SNAPSHOTS_DIR}"


def snapshot_location(artifact_root: str, digest: str) -> str:
    """The snapshot directory (or s3:// prefix) of the content ``sha256:<hex>``."""
    hex_digest = digest.removeprefix(DIGEST_PREFIX)
    if len(hex_digest) != 64 or any(c not in "0123456789abcdef" for c in hex_digest):
        raise ValueError(f"not a sha256:<64 hex> digest: {digest!r}")
    return f"{snapshot_root(artifact_root)}/sha256/{hex_digest}"
