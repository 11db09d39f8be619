"""Chart tests: the helm binary comes from hack/helm.sh (built once, cached)."""

from __future__ import annotations

import pytest

from driftloop_testkit.helm import helm_binary


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "helm: needs the helm binary (hack/helm.sh ensure)")


@pytest.fixture(scope="session")
def helm_bin() -> str:
    """The helm binary, built on first use (minutes on a cold cache, then cached)."""
    return helm_binary()
