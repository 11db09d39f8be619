"""Shared pytest configuration for all test layers."""

# Cluster fixtures (kubeconfig, kube_api, kubectl, namespace, test_image) and the S3
# server (s3, s3_env, s3_secret); the plugins import nothing heavy until a test asks.
pytest_plugins = ["tests.support.cluster", "tests.support.driftloop", "tests.support.s3"]
