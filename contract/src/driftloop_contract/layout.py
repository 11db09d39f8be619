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
