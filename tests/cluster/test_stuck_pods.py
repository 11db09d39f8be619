"""Pods that cannot run, made for real: the owner's Ready (or Promoted) says why, and clears.

Each case creates the condition on the cluster (an unbound claim, a quota of no pods, an
image that does not exist, a Secret without a key, a server that keeps exiting) and waits
a bounded time for the reason the operator reports, then fixes the cause where a user
could and waits for the reason to go. The operator runs as a subprocess, as in
test_operator.py, and reacts to the pods', Jobs' and FailedCreate Events' watch events.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from driftloop_testkit.cluster import EMBEDDED_KUBECONFIG, STATE, Kubectl, wait_for
from driftloop_testkit.data import (
    dataset_manifest,
    deployment_manifest,
    iris_csv,
    model_version_manifest,
    training_run_manifest,
)
from driftloop_testkit.driftloop import (
    ARTIFACT_PVC,
    GROUP,
    PLURALS,
    VERSION,
    OperatorProcess,
    condition,
    create_cr,
    host_path_volume,
    running_operator,
    wait_cr,
)
from driftloop_testkit.s3 import S3_SECRET, S3Server
from driftloop_testkit.scenarios import (
    has_reason,
    in_phase,
    is_ready,
    is_rolled_back,
    ready_dataset,
)

pytestmark = pytest.mark.cluster

#: How long a stuck pod may take to show in Ready: the Job or ReplicaSet controller, the
#: scheduler or kubelet, then the operator's reconcile on their watch event.
REPORTED = 90
#: An image reference that resolves nowhere (.invalid is reserved): the pull fails fast.
NO_IMAGE = "registry.invalid/driftloop/no-such-image:0"
#: A storage class no provisioner serves: a claim of it stays Pending.
NO_CLASS = "driftloop-test-no-provisioner"


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def warnings(kubectl: Kubectl, namespace: str, kind: str, name: str, reason: str) -> int:
    """How many Warning events with ``reason`` the operator posted about one object."""
    selector = f"involvedObject.kind={kind},involvedObject.name={name},reason={reason}"
    events = kubectl.json("get", "events", "-n", namespace, "--field-selector", selector)
    return sum(1 for e in events["items"] if e.get("type") == "Warning")


def waiting_on(obj: dict[str, Any], reason: str) -> None:
    """``reason`` is a waiting reason: mirrored into Reconciling, not Stalled."""
    assert condition(obj, "Reconciling").get("reason") == reason, obj["status"]
    assert condition(obj, "Stalled") == {}, obj["status"]


def announced_once(kubectl: Kubectl, namespace: str, kind: str, name: str, reason: str) -> None:
    """Several reconciles after the report (the pod's status keeps changing), still one
    event: not one per reconcile."""
    time.sleep(8)
    assert warnings(kubectl, namespace, kind, name, reason) == 1


def reason_is_not(*reasons: str) -> Any:
    return lambda obj: (
        bool(condition(obj).get("reason")) and condition(obj)["reason"] not in reasons
    )


def patch_spec(custom: Any, namespace: str, kind: str, name: str, spec: dict[str, Any]) -> None:
    """A user's edit of the spec (a JSON merge patch)."""
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURALS[kind], name, {"spec": spec}
    )


def ghost(custom: Any, namespace: str, name: str = "ghost", **spec: Any) -> None:
    """A hand-registered version whose artifact does not exist, and a Deployment of it.

    Its server refuses to serve a missing artifact and exits: the container crash-loops.
    """
    version = model_version_manifest(f"{name}-v1", model=name)
    version["metadata"]["labels"] = {f"{GROUP}/model": name}
    create_cr(custom, namespace, version)
    create_cr(custom, namespace, deployment_manifest(name, name, version=1, **spec))


# ---------------------------------------------------------------------------
# an unbound claim: PodUnschedulable until it binds
# ---------------------------------------------------------------------------
@pytest.fixture
def unbound_claim(kubeconfig: str, kube_api: Any, namespace: str) -> Iterator[Any]:
    """The namespace's artifact claim, of a storage class nothing provisions: Pending.

    Yields ``bind()``, which makes a hostPath PersistentVolume of that class for it (with
    iris.csv in it when this machine is the node, as on the embedded cluster).
    """
    from kubernetes import client

    core: Any = client.CoreV1Api(kube_api)  # Any: it takes plain dict bodies
    core.create_namespaced_persistent_volume_claim(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": ARTIFACT_PVC},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": NO_CLASS,
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    )
    host_dir = STATE / "volumes" / f"{namespace}-late"
    pv_name = f"{namespace}-late-artifacts"

    def bind() -> bool:
        """Bind the claim; True when the data is on the volume."""
        staged = Path(kubeconfig).resolve() == EMBEDDED_KUBECONFIG.resolve()
        if staged:  # this machine is the node: the volume's directory is here
            data = host_dir / "data"
            data.mkdir(parents=True, exist_ok=True)
            for path in (host_dir, data):
                path.chmod(0o777)  # pods run as 65532; hostPath ignores fsGroup
            (data / "iris.csv").write_text(iris_csv())
        core.create_persistent_volume(
            host_path_volume(
                pv_name,
                host_dir,
                namespace,
                storage_class=NO_CLASS,
                path_type="DirectoryOrCreate",
            )
        )
        return staged

    yield bind
    with contextlib.suppress(client.ApiException):
        core.delete_persistent_volume(pv_name)
    shutil.rmtree(host_dir, ignore_errors=True)


def test_an_unbound_claim_is_reported_until_it_binds(
    kubeconfig: str,
    namespace: str,
    crds: None,
    runtime_image: str,
    unbound_claim: Any,
    custom: Any,
    kubectl: Kubectl,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with running_operator(
        kubeconfig, namespace, runtime_image, tmp_path_factory.mktemp("operator")
    ):
        # The claim exists, so the profile Job starts; its pod cannot be scheduled.
        create_cr(custom, namespace, dataset_manifest("iris", "/artifacts/data/iris.csv"))
        stuck = wait_cr(
            custom, namespace, "Dataset", "iris", has_reason("PodUnschedulable"), REPORTED
        )
        assert "unbound immediate PersistentVolumeClaims" in condition(stuck)["message"]
        assert stuck["status"]["phase"] == "Validating"
        waiting_on(stuck, "PodUnschedulable")
        announced_once(kubectl, namespace, "Dataset", "iris", "PodUnschedulable")

        staged = unbound_claim()
        # Bound: the pod is scheduled and runs; the profile's own outcome comes back.
        ran = wait_cr(
            custom,
            namespace,
            "Dataset",
            "iris",
            reason_is_not("PodUnschedulable", "Validating"),
            timeout=300,
        )
        if staged:  # the data is on the volume: the Dataset is Ready
            ran = wait_cr(custom, namespace, "Dataset", "iris", is_ready, timeout=120)
        else:  # another cluster's node: an empty volume, but the pod ran
            assert condition(ran)["reason"] in ("Validated", "DataUnavailable"), ran["status"]


# ---------------------------------------------------------------------------
# a quota of no pods: QuotaExceeded (a Job's events, the predictor's ReplicaFailure)
# ---------------------------------------------------------------------------
def test_a_quota_of_no_pods_is_reported_until_it_is_lifted(
    operator: OperatorProcess,
    custom: Any,
    kubectl: Kubectl,
    kube_api: Any,
    namespace: str,
    stage: Any,
) -> None:
    from kubernetes import client

    core = client.CoreV1Api(kube_api)
    stage("data/iris.csv", iris_csv())
    ready_dataset(custom, namespace)
    core.create_namespaced_resource_quota(
        namespace,
        client.V1ResourceQuota(
            metadata=client.V1ObjectMeta(name="no-pods"),
            spec=client.V1ResourceQuotaSpec(hard={"pods": "0"}),
        ),
    )
    # Until the quota controller has counted, the API server refuses pods with "status
    # unknown for quota" instead of "exceeded quota".
    wait_for(
        lambda: core.read_namespaced_resource_quota("no-pods", namespace).status.hard or {},
        timeout=60,
        what="the quota's status",
    )

    # A training Job's pods are refused: only the Job's FailedCreate events say so.
    create_cr(custom, namespace, training_run_manifest("iris-1", "iris"))
    run = wait_cr(custom, namespace, "TrainingRun", "iris-1", has_reason("QuotaExceeded"), REPORTED)
    assert "exceeded quota: no-pods" in condition(run)["message"]
    assert run["status"]["phase"] == "Running"
    waiting_on(run, "QuotaExceeded")

    # A predictor's pods are refused: its ReplicaFailure condition says so.
    ghost(custom, namespace)
    deployment = wait_cr(
        custom, namespace, "Deployment", "ghost", has_reason("QuotaExceeded"), REPORTED
    )
    assert "exceeded quota: no-pods" in condition(deployment)["message"]
    waiting_on(deployment, "QuotaExceeded")
    announced_once(kubectl, namespace, "TrainingRun", "iris-1", "QuotaExceeded")
    assert warnings(kubectl, namespace, "Deployment", "ghost", "QuotaExceeded") == 1

    core.delete_namespaced_resource_quota("no-pods", namespace)
    # The controllers retry with back-off: the pods come, and the reasons go.
    run = wait_cr(
        custom, namespace, "TrainingRun", "iris-1", in_phase("Succeeded", "Failed"), timeout=600
    )
    assert run["status"]["phase"] == "Succeeded", run["status"]
    wait_cr(custom, namespace, "Deployment", "ghost", reason_is_not("QuotaExceeded"), timeout=300)


# ---------------------------------------------------------------------------
# an image that does not exist: ImagePullFailed; then a server that exits: CrashLooping
# ---------------------------------------------------------------------------
def test_an_image_that_does_not_exist_is_reported(
    operator: OperatorProcess,
    custom: Any,
    kubectl: Kubectl,
    namespace: str,
    stage: Any,
    runtime_image: str,
) -> None:
    stage("data/iris.csv", iris_csv())
    ready_dataset(custom, namespace)

    create_cr(custom, namespace, training_run_manifest("no-image", "iris", image=NO_IMAGE))
    run = wait_cr(
        custom, namespace, "TrainingRun", "no-image", has_reason("ImagePullFailed"), REPORTED
    )
    assert NO_IMAGE in condition(run)["message"]
    assert run["status"]["phase"] == "Running"
    # An image may yet be pushed: waiting, although the reason ends in "Failed".
    waiting_on(run, "ImagePullFailed")
    announced_once(kubectl, namespace, "TrainingRun", "no-image", "ImagePullFailed")

    # A predictor with that image; the user fixes the image (a Deployment's spec is
    # mutable), and the server then starts - and exits, as its artifact does not exist.
    ghost(custom, namespace, image=NO_IMAGE)
    deployment = wait_cr(
        custom, namespace, "Deployment", "ghost", has_reason("ImagePullFailed"), REPORTED
    )
    assert NO_IMAGE in condition(deployment)["message"]
    patch_spec(custom, namespace, "Deployment", "ghost", {"image": runtime_image})
    crashing = wait_cr(
        custom, namespace, "Deployment", "ghost", has_reason("CrashLooping"), timeout=180
    )
    assert "restarting after exit code" in condition(crashing)["message"]
    waiting_on(crashing, "CrashLooping")
    announced_once(kubectl, namespace, "Deployment", "ghost", "CrashLooping")


# ---------------------------------------------------------------------------
# a Secret without a key: ConfigError until the key is added (S3 mode)
# ---------------------------------------------------------------------------
@pytest.mark.s3
def test_a_missing_secret_key_is_reported_until_it_is_added(
    kubeconfig: str,
    namespace: str,
    crds: None,
    runtime_image: str,
    s3_env: S3Server,
    custom: Any,
    kube_api: Any,
    kubectl: Kubectl,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from kubernetes import client

    from driftloop_runtime import store

    s3 = s3_env
    local = tmp_path / "iris.csv"
    local.write_text(iris_csv())
    source = f"s3://{s3.bucket}/{namespace}/data/iris.csv"
    store.put_file(local, source)
    core = client.CoreV1Api(kube_api)
    # The Secret exists (so the operator starts the Job) but lacks the secret key.
    core.create_namespaced_secret(
        namespace,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name=S3_SECRET),
            string_data={"AWS_ACCESS_KEY_ID": s3.access_key},
        ),
    )
    with running_operator(
        kubeconfig,
        namespace,
        runtime_image,
        tmp_path_factory.mktemp("operator"),
        **s3.operator_env(),
    ):
        create_cr(custom, namespace, dataset_manifest("iris", source))
        stuck = wait_cr(custom, namespace, "Dataset", "iris", has_reason("ConfigError"), REPORTED)
        assert "AWS_SECRET_ACCESS_KEY" in condition(stuck)["message"]
        waiting_on(stuck, "ConfigError")
        announced_once(kubectl, namespace, "Dataset", "iris", "ConfigError")

        core.patch_namespaced_secret(
            S3_SECRET, namespace, {"stringData": {"AWS_SECRET_ACCESS_KEY": s3.secret_key}}
        )
        # The kubelet retries the container with the key: the profile runs, Ready.
        wait_cr(custom, namespace, "Dataset", "iris", is_ready, timeout=300)


# ---------------------------------------------------------------------------
# a new version whose server exits, next to the one serving: Promoted says so
# ---------------------------------------------------------------------------
def test_a_crash_looping_version_is_reported_next_to_the_serving_one(
    operator: OperatorProcess, custom: Any, kubectl: Kubectl, namespace: str, stage: Any
) -> None:
    from driftloop_testkit.scenarios import train_then_serve

    stage("data/iris.csv", iris_csv())
    train_then_serve(custom, namespace)  # iris-v1 serves

    broken = model_version_manifest("iris-v9", model="iris", version=9)
    broken["metadata"]["labels"] = {f"{GROUP}/model": "iris"}
    create_cr(custom, namespace, broken)
    patch_spec(
        custom,
        namespace,
        "Deployment",
        "iris",
        # Pin version 9 (null drops the channel: a merge patch keeps unnamed fields).
        {
            "model": {"name": "iris", "version": 9, "channel": None},
            "promotion": {"rolloutDeadline": "60s"},
        },
    )
    rolling = wait_cr(
        custom,
        namespace,
        "Deployment",
        "iris",
        has_reason("CrashLooping", "Promoted"),
        timeout=180,
    )
    # The old version still serves: Ready stays True and its message tells the story.
    assert condition(rolling)["status"] == "True"
    assert "CrashLooping" in condition(rolling)["message"]
    assert condition(rolling, "Promoted")["status"] == "Unknown"
    assert "restarting after exit code" in condition(rolling, "Promoted")["message"]
    announced_once(kubectl, namespace, "Deployment", "iris", "CrashLooping")

    # The rollout deadline ends it: rolled back, the crash no longer the news.
    rolled_back = wait_cr(
        custom,
        namespace,
        "Deployment",
        "iris",
        is_rolled_back,
        timeout=180,
    )
    assert "CrashLooping" not in condition(rolled_back)["message"]
    assert rolled_back["status"]["servingVersion"] == 1
