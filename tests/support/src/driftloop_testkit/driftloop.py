"""Fixtures for running driftloop itself on a real cluster.

* ``crds``            (session) our CRDs applied and Established.
* ``runtime_image``   (session) the runtime image name (built and loaded by ``make images``).
* ``artifact_store``  (function) the ``driftloop-artifacts`` PVC in the test namespace: a
                      dynamic claim of the default StorageClass (the embedded cluster's
                      local-path provisioner, kind's), else (a cluster without one) a
                      hostPath PersistentVolume on the node.
* ``stage``           (function) ``stage(path, text)`` writes a file into the artifact store
                      as ``kubectl driftloop upload`` does (ConfigMaps and a Job): any cluster.
* ``kubectl_driftloop`` (helper) runs the plugin through kubectl's plugin lookup.
* ``operator``        (function) the operator as a subprocess watching the test namespace;
                      ``operator.restart()`` kills and starts it again
                      (``running_operator`` is the same as a context manager).
* ``custom``          (session) a ``CustomObjectsApi``; ``get_cr`` / ``wait_cr`` helpers.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from driftloop_testkit.cluster import REPO, STATE, VERSIONS, Kubectl, kubectl_binary, wait_for

GROUP, VERSION = "driftloop.dev", "v1alpha1"
PLURALS = {
    "Dataset": "datasets",
    "TrainingRun": "trainingruns",
    "ModelVersion": "modelversions",
    "Deployment": "deployments",
}
ARTIFACT_PVC = "driftloop-artifacts"


def install_crds(kubectl: Kubectl) -> None:
    """Apply the generated CRDs and wait until the API server serves them."""
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    for plural in PLURALS.values():
        kubectl("wait", "--for=condition=Established", f"crd/{plural}.{GROUP}", "--timeout=60s")


@pytest.fixture(scope="session")
def crds(kubectl: Kubectl) -> None:
    install_crds(kubectl)


@pytest.fixture(scope="session")
def runtime_image() -> str:
    return os.environ.get("DRIFTLOOP_RUNTIME_IMAGE", VERSIONS["RUNTIME_IMAGE"])


@pytest.fixture(scope="session")
def custom(kube_api: Any) -> Any:
    from kubernetes import client

    return client.CustomObjectsApi(kube_api)


def get_cr(custom: Any, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
    from kubernetes.client.exceptions import ApiException

    try:
        return custom.get_namespaced_custom_object(  # type: ignore[no-any-return]
            GROUP, VERSION, namespace, PLURALS[kind], name
        )
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def create_cr(custom: Any, namespace: str, manifest: dict[str, Any]) -> None:
    custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURALS[manifest["kind"]], manifest
    )


def profile_jobs(kubectl: Kubectl, namespace: str, dataset: str) -> list[str]:
    """Names of the profile Jobs the operator runs for ``dataset``."""
    selector = f"app.kubernetes.io/component=profiling,{GROUP}/dataset={dataset}"
    jobs = kubectl.json("get", "jobs", "-n", namespace, "-l", selector)
    return [job["metadata"]["name"] for job in jobs["items"]]


def delete_crs(kubectl: Kubectl, namespace: str) -> None:
    """Delete every driftloop object in ``namespace`` and wait (needs a running operator:
    it lifts kopf's finalizers)."""
    kubectl(
        "delete",
        ",".join(f"{p}.{GROUP}" for p in PLURALS.values()),
        "--all",
        "-n",
        namespace,
        "--wait=true",
        "--timeout=90s",
        check=False,
        timeout=120,
    )


def ready_predictor_url(
    kubectl: Kubectl, namespace: str, name: str, version: int, timeout: float = 120
) -> str:
    """OIP infer URL of a ready, not terminating predictor pod serving ``version`` (of
    the model its ``driftloop.dev/model`` label names)."""

    def find() -> str | None:
        pods = kubectl.json(
            "get",
            "pods",
            "-n",
            namespace,
            "-l",
            f"app.kubernetes.io/instance={name},driftloop.dev/model-version={version}",
        )
        for pod in pods["items"]:
            ready = any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in pod["status"].get("conditions", [])
            )
            if ready and not pod["metadata"].get("deletionTimestamp"):
                model = pod["metadata"]["labels"][f"{GROUP}/model"]
                return f"http://{pod['status']['podIP']}:8080/v2/models/{model}/infer"
        return None

    return wait_for(find, timeout=timeout, what=f"a ready pod serving version {version}")  # type: ignore[no-any-return]


def condition(obj: dict[str, Any] | None, type_: str = "Ready") -> dict[str, Any]:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return cond  # type: ignore[no-any-return]
    return {}


def wait_cr(
    custom: Any,
    namespace: str,
    kind: str,
    name: str,
    predicate: Callable[[dict[str, Any]], bool],
    timeout: float = 300,
    what: str = "",
) -> dict[str, Any]:
    """Wait until the object exists and ``predicate(obj)`` holds; show its status on timeout."""
    last: dict[str, Any] = {}

    def check() -> dict[str, Any] | None:
        nonlocal last
        obj = get_cr(custom, namespace, kind, name)
        last = obj or {}
        return obj if obj is not None and predicate(obj) else None

    try:
        return wait_for(check, timeout=timeout, interval=1, what=what or f"{kind}/{name}")  # type: ignore[no-any-return]
    except TimeoutError as error:
        raise AssertionError(
            f"{error}\nlast status of {kind}/{name}: {last.get('status')}"
        ) from None


def create_artifact_store(kube_api: Any, namespace: str, *, host_path: bool = False) -> str | None:
    """Create the ``driftloop-artifacts`` PVC; returns the hostPath PV's name if one was made.

    A dynamic claim where the cluster has a default StorageClass (the embedded
    cluster's local-path provisioner, kind's standard class). A hostPath
    PersistentVolume with ``host_path`` (data that outlives the claim, as the fault
    suite needs) or on a cluster without a default class (say an embedded cluster
    started before hack/local-path.sh existed): on a single node a host directory is
    a real shared disk.
    """
    from kubernetes import client

    core: Any = client.CoreV1Api(kube_api)  # Any: it takes plain dict bodies
    storage: Any = client.StorageV1Api(kube_api)  # Any: it takes plain dict bodies
    default_class = any(
        (sc.metadata.annotations or {}).get("storageclass.kubernetes.io/is-default-class") == "true"
        for sc in storage.list_storage_class().items
    )
    pv_name = None
    claim: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": ARTIFACT_PVC},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    if host_path or not default_class:
        host_dir = STATE / "volumes" / namespace
        host_dir.mkdir(parents=True, exist_ok=True)
        host_dir.chmod(0o777)  # pods run as 65532; hostPath ignores fsGroup
        pv_name = f"{namespace}-artifacts"
        core.create_persistent_volume(
            host_path_volume(
                pv_name,
                host_dir,
                namespace,
                access_modes=["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany"],
            )
        )
        claim["spec"].update(storageClassName="", volumeName=pv_name)
    core.create_namespaced_persistent_volume_claim(namespace, claim)
    return pv_name


def host_path_volume(
    name: str,
    host_dir: Path,
    namespace: str,
    *,
    storage_class: str = "",
    access_modes: list[str] | None = None,
    path_type: str = "Directory",
) -> dict[str, Any]:
    """A PersistentVolume on the node's ``host_dir``, bound to ``namespace``'s artifact claim."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "driftloop-tests"}},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": access_modes or ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": storage_class,
            "hostPath": {"path": str(host_dir), "type": path_type},
            "claimRef": {"namespace": namespace, "name": ARTIFACT_PVC},
        },
    }


def delete_artifact_store(kube_api: Any, namespace: str, pv_name: str | None) -> None:
    from kubernetes import client

    if pv_name:
        with contextlib.suppress(client.ApiException):
            client.CoreV1Api(kube_api).delete_persistent_volume(pv_name)
        shutil.rmtree(STATE / "volumes" / namespace, ignore_errors=True)


def stage_file(kube_api: Any, namespace: str, image: str, path: str, text: str) -> None:
    """Write ``text`` to ``/artifacts/<path>`` as ``kubectl driftloop upload`` does: through
    ConfigMaps and a Job (any cluster)."""
    from kubernetes import client

    from driftloop.cli.main import upload_to_claim

    upload_to_claim(
        client.CoreV1Api(kube_api),
        client.BatchV1Api(kube_api),
        namespace,
        ARTIFACT_PVC,
        image,
        path,
        text.encode(),
        timeout=180,
    )


def kubectl_driftloop(
    kubeconfig: str,
    namespace: str,
    *args: str,
    check: bool = True,
    env: dict[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """``kubectl driftloop ARGS -n NAMESPACE`` as a user runs it: kubectl finds the
    ``kubectl-driftloop`` script of this Python environment on PATH (its plugin lookup)."""
    scripts = str(Path(sys.executable).parent)
    base = env if env is not None else dict(os.environ)
    run_env = {**base, "KUBECONFIG": kubeconfig, "PATH": f"{scripts}:{base.get('PATH', '')}"}
    proc = subprocess.run(
        [kubectl_binary(), "driftloop", *args, "-n", namespace],
        env=run_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"kubectl driftloop {' '.join(args)} exited {proc.returncode}:\n"
            f"{proc.stdout}\n{proc.stderr}"
        )
    return proc


@pytest.fixture
def artifact_store(kube_api: Any, namespace: str) -> Iterator[str]:
    pv_name = create_artifact_store(kube_api, namespace)
    yield ARTIFACT_PVC
    delete_artifact_store(kube_api, namespace, pv_name)


@pytest.fixture
def stage(
    kube_api: Any, namespace: str, artifact_store: str, runtime_image: str
) -> Callable[[str, str], None]:
    """``stage(path, text)`` writes a file into the test namespace's artifact store."""
    return lambda path, text: stage_file(kube_api, namespace, runtime_image, path, text)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: The operator's settings in tests (and the demo): local images and the test artifact PVC.
TEST_SETTINGS = {
    "DRIFTLOOP_IMAGE_PULL_POLICY": "IfNotPresent",
    "DRIFTLOOP_ARTIFACT_PVC": ARTIFACT_PVC,
}


class OperatorProcess:
    """The operator in a subprocess (as a developer runs it: ``python -m driftloop``),
    logging to ``log_dir/<log_name>`` (default ``operator-<namespace>.log``)."""

    def __init__(
        self,
        kubeconfig: str,
        namespace: str,
        image: str,
        log_dir: Path,
        *,
        log_name: str | None = None,
        settings: dict[str, str] = TEST_SETTINGS,
        args: Sequence[str] = (),
    ) -> None:
        self.namespace = namespace
        self.args = list(args)
        self.log_path = log_dir / (log_name or f"operator-{namespace}.log")
        self.metrics_port = _free_port()
        self.env = {
            **os.environ,
            "KUBECONFIG": kubeconfig,
            "DRIFTLOOP_RUNTIME_IMAGE": image,
            **settings,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, **extra_env: str) -> None:
        self.env.update(extra_env)
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "driftloop",
                    "--namespace",
                    self.namespace,
                    "--metrics-port",
                    str(self.metrics_port),
                    "--liveness",
                    "",
                    *self.args,
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop(signal.SIGKILL)  # as a crash would: no graceful cleanup
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@contextlib.contextmanager
def running_operator(
    kubeconfig: str, namespace: str, image: str, log_dir: Path, **env: str
) -> Iterator[OperatorProcess]:
    """The operator (``env``: more of its settings) running for the block; after it, every
    driftloop object in ``namespace`` is deleted and the operator stopped."""
    proc = OperatorProcess(kubeconfig, namespace, image, log_dir)
    proc.start(**env)
    try:
        yield proc
    finally:
        # Delete our objects while the operator runs: it removes kopf's finalizers, so
        # the namespace can go afterwards instead of hanging in Terminating.
        if proc.process is None:
            proc.start()
        delete_crs(Kubectl(kubeconfig), namespace)
        proc.stop()
        if os.environ.get("DRIFTLOOP_SHOW_OPERATOR_LOG"):
            print(proc.log()[-20000:])


@pytest.fixture
def operator(
    kubeconfig: str,
    namespace: str,
    crds: None,
    artifact_store: str,
    runtime_image: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    with running_operator(
        kubeconfig, namespace, runtime_image, tmp_path_factory.mktemp("operator")
    ) as proc:
        yield proc
