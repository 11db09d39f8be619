"""Shared pytest configuration for all test layers."""

import pytest

# The kit's scenario helpers assert on behalf of the tests: show their values on failure.
pytest.register_assert_rewrite("driftloop_testkit")

# Cluster fixtures (kubeconfig, kube_api, kubectl, namespace, test_image), driftloop on
# the cluster (crds, artifact_store, stage, operator, custom) and the S3 server (s3,
# s3_env, s3_secret): the plugins import nothing heavy until a test asks.
pytest_plugins = [
    "driftloop_testkit.cluster",
    "driftloop_testkit.driftloop",
    "driftloop_testkit.s3",
]
