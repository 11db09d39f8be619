"""OperatorConfig.from_env: the S3 artifact mode and its consistency checks."""

from __future__ import annotations

import pytest

import driftloop_contract as contract
from driftloop.config import OperatorConfig


def test_pvc_mode_by_default() -> None:
    config = OperatorConfig.from_env({})
    assert not config.s3
    assert config.artifact_root == contract.ARTIFACT_MOUNT
    assert config.artifact_pvc == "driftloop-artifacts"


def test_s3_mode_reads_the_chart_environment() -> None:
    config = OperatorConfig.from_env(
        {
            "DRIFTLOOP_ARTIFACT_S3_ENDPOINT": "http://minio.storage:9000",
            "DRIFTLOOP_ARTIFACT_S3_BUCKET": "models",
            "DRIFTLOOP_ARTIFACT_S3_SECRET": "driftloop-s3",
        }
    )
    assert config.s3
    assert config.artifact_root == "s3://models"
    assert config.artifact_s3_endpoint == "http://minio.storage:9000"
    assert config.artifact_s3_secret == "driftloop-s3"


def test_s3_without_an_endpoint_means_aws() -> None:
    config = OperatorConfig.from_env(
        {"DRIFTLOOP_ARTIFACT_S3_BUCKET": "models", "DRIFTLOOP_ARTIFACT_S3_SECRET": "s"}
    )
    assert config.s3
    assert config.artifact_s3_endpoint is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DRIFTLOOP_ARTIFACT_S3_BUCKET": "models"}, "DRIFTLOOP_ARTIFACT_S3_SECRET"),
        ({"DRIFTLOOP_ARTIFACT_S3_ENDPOINT": "http://minio:9000"}, "BUCKET is not"),
        (
            {"DRIFTLOOP_ARTIFACT_S3_BUCKET": "Models_1", "DRIFTLOOP_ARTIFACT_S3_SECRET": "s"},
            "not a bucket name",
        ),
    ],
)
def test_half_an_s3_configuration_fails_at_start(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        OperatorConfig.from_env(env)
