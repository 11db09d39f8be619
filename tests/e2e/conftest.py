from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests.support.cluster import HACK


@pytest.fixture(scope="session")
def prometheus(kubeconfig: str) -> Iterator[str]:
    """A real Prometheus (Debian package) discovering the cluster's pods; its URL."""
    proc = subprocess.run(
        ["bash", str(HACK / "prometheus.sh"), "up", kubeconfig],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=600,
    )
    if proc.returncode != 0:
        pytest.fail(f"hack/prometheus.sh up failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout.strip().splitlines()[-1]
