"""pytest plugin: a real Kubernetes cluster for tests.

Register with ``pytest_plugins = ["driftloop_testkit.cluster"]`` (tests/conftest.py does).

Fixtures
  kubeconfig      (session) path of a kubeconfig for a reachable cluster: ``$KUBECONFIG``
                  when it answers, else the embedded cluster started by ``hack/cluster.sh up``.
  kube_api        (session) a ``kubernetes.client.ApiClient`` for it.
  kubectl         (session) a callable running OUR kubectl (built with the control plane)
                  with that kubeconfig: ``kubectl("get", "pods", "-n", ns)``.
  namespace       (function) a throw-away namespace enforcing Pod Security "restricted",
                  deleted after the test.
  test_image      (session) an image with python3 present on the node (the local base image
                  on the embedded cluster; ``$DRIFTLOOP_TEST_IMAGE`` overrides).
  prometheus      (session) the URL of a real Prometheus discovering the cluster's pods
                  (``hack/prometheus.sh up``).

``hack(script, *args)`` runs a hack/ script (the fixtures start their services with it).

Nothing here imports the Kubernetes client at import time, so unit-test runs that load
this plugin need neither the client nor a cluster.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

#: The checkout (this file is tests/support/src/driftloop_testkit/cluster.py in it).
REPO = Path(__file__).resolve().parents[4]
HACK = REPO / "hack"


def _versions() -> dict[str, str]:
    """hack/versions.env as a dict (the single place versions and image names are pinned)."""
    out: dict[str, str] = {}
    for line in (HACK / "versions.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip().strip('"')
    return out


VERSIONS = _versions()
STATE = Path(os.environ.get("DRIFTLOOP_STATE", "/var/lib/driftloop-cluster"))
CACHE = Path(os.environ.get("DRIFTLOOP_CACHE", Path.home() / ".cache" / "driftloop"))
EMBEDDED_KUBECONFIG = STATE / "kubeconfig"
RESTRICTED_LABELS = {
    f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn", "audit")
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "cluster: needs a real Kubernetes cluster (driftloop_testkit.cluster)"
    )


# ---------------------------------------------------------------------------
# helpers usable without fixtures
# ---------------------------------------------------------------------------
def kubectl_binary() -> str:
    """Our kubectl (same version as the control plane); PATH's only when ours is not built."""
    if os.environ.get("DRIFTLOOP_KUBECTL"):
        return os.environ["DRIFTLOOP_KUBECTL"]
    ours = CACHE / f"k8s-v{VERSIONS['K8S_VERSION']}" / "bin" / "kubectl"
    if ours.exists():
        return str(ours)
    found = shutil.which("kubectl")
    if not found:
        raise RuntimeError(f"kubectl not built yet ({ours}); run hack/cluster.sh up")
    return found


class Kubectl:
    """``kubectl(*args)`` bound to one kubeconfig; returns CompletedProcess (text)."""

    def __init__(self, kubeconfig: str):
        self.kubeconfig = kubeconfig
        self.binary = kubectl_binary()

    def __call__(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        cmd = [self.binary, "--kubeconfig", self.kubeconfig, *args]
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({proc.returncode}):\n"
                f"{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-o", "json").stdout)


def wait_for(
    predicate: Callable[[], Any], timeout: float = 120, interval: float = 0.5, what: str = ""
) -> Any:
    """Poll ``predicate`` until it returns a truthy value and return that.

    Exceptions count as "not yet"."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:
            last = exc
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"timed out after {timeout}s waiting for {what or predicate}; last error: {last!r}"
            )
        time.sleep(interval)


def _reachable(kubeconfig: str) -> bool:
    from kubernetes import client, config

    try:
        api = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call,unused-ignore]
        try:
            client.VersionApi(api).get_code(_request_timeout=5)
        finally:
            api.close()
        return True
    except Exception:
        return False


def hack(script: str, *args: str, timeout: float = 1200) -> str:
    """``bash hack/<script> <args>``; its stdout, or a test failure showing its output."""
    proc = subprocess.run(
        ["bash", str(HACK / script), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        pytest.fail(
            f"hack/{script} {' '.join(args)} failed ({proc.returncode}):\n"
            f"{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
        )
    return proc.stdout


def hack_up(script: str, *args: str, timeout: float = 1200) -> str:
    """``hack/<script> up <args>``: start (or reuse) a service; the last line it prints
    (the scripts end ``up`` with the service's address)."""
    out = hack(script, "up", *args, timeout=timeout).strip()
    return out.splitlines()[-1] if out else ""


def _is_embedded(kubeconfig: str) -> bool:
    try:
        return Path(kubeconfig).resolve() == EMBEDDED_KUBECONFIG.resolve()
    except OSError:
        return False


# ---------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------
@pytest.fixture(scope="session")
def kubeconfig() -> str:
    pytest.importorskip(
        "kubernetes", reason="pip install kubernetes (the dev extra) for cluster tests"
    )
    env = os.environ.get("KUBECONFIG")
    if env and ":" not in env and _reachable(env):
        return env
    if EMBEDDED_KUBECONFIG.exists() and _reachable(str(EMBEDDED_KUBECONFIG)):
        return str(EMBEDDED_KUBECONFIG)
    if os.geteuid() != 0:
        pytest.skip(
            "no reachable $KUBECONFIG and the embedded cluster needs root (hack/cluster.sh up)"
        )
    # Cold: builds Kubernetes from source (tens of minutes); warm: ~30 s.
    hack("cluster.sh", "up", timeout=int(os.environ.get("DRIFTLOOP_CLUSTER_UP_TIMEOUT", "3600")))
    return str(EMBEDDED_KUBECONFIG)


@pytest.fixture(scope="session")
def kube_api(kubeconfig: str) -> Iterator[Any]:
    from kubernetes import config

    api = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call,unused-ignore]
    yield api
    api.close()


@pytest.fixture(scope="session")
def kubectl(kubeconfig: str) -> Kubectl:
    return Kubectl(kubeconfig)


@pytest.fixture(scope="session")
def test_image(kubeconfig: str) -> str:
    """An image with python3 that the node has (imagePullPolicy: IfNotPresent/Never)."""
    image = os.environ.get("DRIFTLOOP_TEST_IMAGE")
    if image:
        return image
    image = VERSIONS["BASE_IMAGE"]
    if _is_embedded(kubeconfig) and os.geteuid() == 0:
        # Cached after the first run: debootstrap only when the base image is missing.
        hack("images.sh", "base", timeout=1800)
        hack("images.sh", "load", image, timeout=600)
    return image


@pytest.fixture
def namespace(kube_api: Any) -> Iterator[str]:
    """A fresh namespace enforcing Pod Security "restricted", deleted (in the background) after."""
    from kubernetes import client

    core = client.CoreV1Api(kube_api)
    name = f"dl-test-{uuid.uuid4().hex[:8]}"
    core.create_namespace(
        client.V1Namespace(
            metadata=client.V1ObjectMeta(
                name=name,
                labels={**RESTRICTED_LABELS, "app.kubernetes.io/part-of": "driftloop-tests"},
            )
        )
    )
    # Pods need the namespace's default ServiceAccount (made by the controller-manager).
    wait_for(
        lambda: core.read_namespaced_service_account("default", name), timeout=60, what="default SA"
    )
    yield name
    try:
        core.delete_namespace(name, propagation_policy="Background")
    except client.ApiException as exc:
        if exc.status != 404:
            raise


@pytest.fixture(scope="session")
def prometheus(kubeconfig: str) -> str:
    """A real Prometheus (hack/prometheus.sh: Debian's package) discovering the
    cluster's pods; its URL."""
    return hack_up("prometheus.sh", kubeconfig, timeout=600)


def restricted_security_context(read_only_root: bool = True) -> dict[str, Any]:
    """A container securityContext meeting Pod Security "restricted" (as a plain dict)."""
    return {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": read_only_root,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
