"""pytest plugin: a real S3-compatible server (MinIO, started by ``hack/s3.sh up``).

Fixtures
  s3          (session) the server: host and pod endpoints, bucket and keys.  Builds
              MinIO once (~3 min cold, cached in ~/.cache/driftloop) and reuses a
              running server.
  s3_env      (function) the AWS_* variables of the host endpoint in this process's
              environment, so driftloop_runtime.store talks to the server.
  s3_prefix   (function) a fresh ``s3://<bucket>/<random>`` prefix for one test.
  s3_secret   (function) the credentials Secret (S3_SECRET) in the test namespace.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from driftloop_testkit.cluster import hack, hack_up

#: Name of the credentials Secret the S3-mode operator is configured with in tests.
S3_SECRET = "driftloop-s3"


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # as the host (and `docker run --network host`) reaches it
    pod_endpoint: str  # as the embedded cluster's pods reach it
    bucket: str
    access_key: str
    secret_key: str

    def env(self, endpoint: str | None = None) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": endpoint or self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
        }

    def operator_env(self) -> dict[str, str]:
        """The operator's S3 artifact mode on this server (credentials: the S3_SECRET Secret)."""
        return {
            "DRIFTLOOP_ARTIFACT_S3_BUCKET": self.bucket,
            "DRIFTLOOP_ARTIFACT_S3_ENDPOINT": self.pod_endpoint,
            "DRIFTLOOP_ARTIFACT_S3_SECRET": S3_SECRET,
        }


@pytest.fixture(scope="session")
def s3() -> S3Server:
    hack_up("s3.sh")
    values: dict[str, str] = {}
    for line in hack("s3.sh", "env").splitlines():
        if line.startswith("export "):
            key, _, value = line.removeprefix("export ").partition("=")
            values[key] = value
    return S3Server(
        endpoint=values["AWS_ENDPOINT_URL"],
        pod_endpoint=values["DRIFTLOOP_S3_POD_ENDPOINT"],
        bucket=values["DRIFTLOOP_S3_BUCKET"],
        access_key=values["AWS_ACCESS_KEY_ID"],
        secret_key=values["AWS_SECRET_ACCESS_KEY"],
    )


@pytest.fixture
def s3_env(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    return s3


@pytest.fixture
def s3_prefix(s3: S3Server) -> str:
    return f"s3://{s3.bucket}/test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def s3_secret(s3: S3Server, kube_api: Any, namespace: str) -> str:
    from kubernetes import client

    client.CoreV1Api(kube_api).create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=S3_SECRET),
            string_data={
                "AWS_ACCESS_KEY_ID": s3.access_key,
                "AWS_SECRET_ACCESS_KEY": s3.secret_key,
            },
        ),
    )
    return S3_SECRET
