"""Shared pytest configuration for all test layers."""

# Cluster fixtures (kubeconfig, kube_api, kubectl, namespace, test_image); the plugin
# imports nothing heavy until a cluster test asks for a fixture.
pytest_plugins = ["tests.support.cluster", "tests.support.driftloop"]
