"""What the operator depends on fails: Prometheus stops while a trigger fires, the
artifact store is unavailable (MinIO stopped in S3 mode, the PVC missing in PVC mode)
during training and while a predictor starts, and predictor pods are killed mid-rollout.

While each outage lasts, a condition must name it; after it, everything settles."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from driftloop_runtime import store
from driftloop_testkit.cluster import STATE, Kubectl, wait_for
from driftloop_testkit.data import (
    dataset_manifest,
    deployment_manifest,
    drift_loop_deployment,
    iris_csv,
    training_run_manifest,
)
from driftloop_testkit.driftloop import (
    GROUP,
    PLURALS,
    VERSION,
    OperatorProcess,
    create_artifact_store,
    create_cr,
    delete_artifact_store,
    running_operator,
)
from driftloop_testkit.faults import FaultRun, fault_scale, service_down
from driftloop_testkit.invariants import condition, outage_named
from driftloop_testkit.s3 import S3Server
from driftloop_testkit.scenarios import (
    IRIS_SOURCE,
    first_version,
    in_phase,
    is_serving,
    ready_dataset,
    serve,
    trained,
)

pytestmark = [pytest.mark.faults, pytest.mark.cluster]


def _deployment_status(faults: FaultRun) -> dict[str, Any]:
    obj = faults.custom.get_namespaced_custom_object(
        GROUP, VERSION, faults.namespace, PLURALS["Deployment"], "iris"
    )
    return dict(obj.get("status") or {})


def _retraining_runs(faults: FaultRun) -> list[str]:
    items = faults.custom.list_namespaced_custom_object(
        GROUP,
        VERSION,
        faults.namespace,
        PLURALS["TrainingRun"],
        label_selector="driftloop.dev/deployment=iris",
    )["items"]
    return [r["metadata"]["name"] for r in items]


@pytest.mark.e2e
@pytest.mark.faults_long
def test_prometheus_outage_while_a_trigger_fires(
    operator: OperatorProcess, faults: FaultRun, prometheus: str, kubeconfig: str, stage: Any
) -> None:
    stage("data/iris.csv", iris_csv())
    first_version(faults.custom, faults.namespace)
    trigger = {"name": "drift", "query": "vector(1)", "threshold": 0.5, "for": "30s"}
    deployment = drift_loop_deployment(prometheus=prometheus, enabled=False, triggers=[trigger])
    serve(faults.custom, faults.namespace, deployment)
    faults.custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        faults.namespace,
        PLURALS["Deployment"],
        "iris",
        {"spec": {"retraining": {"enabled": True}}},
    )
    faults.wait_cr(
        "Deployment",
        "iris",
        lambda o: any(d.get("firingSince") for d in (o.get("status") or {}).get("drift") or []),
        what="the trigger to start firing",
    )

    outage = fault_scale().outage_seconds + faults.rng.uniform(0, 30)
    with service_down("prometheus.sh", kubeconfig):
        faults.log.fault("Prometheus down")
        ends = time.monotonic() + outage
        faults.wait_cr(
            "Deployment",
            "iris",
            lambda o: not outage_named(o, "DriftMonitoring", {"PrometheusUnreachable"}),
            what="DriftMonitoring to name the Prometheus outage",
            timeout=60,
        )
        while time.monotonic() < ends:
            faults.check_always("while Prometheus is down")
            assert _retraining_runs(faults) == [], (
                f"seed {faults.seed}: a run started while no query could succeed"
            )
            time.sleep(2)
    back = time.monotonic()
    faults.wait_cr(
        "Deployment",
        "iris",
        lambda o: condition(o, "DriftMonitoring").get("status") == "True",
        what="DriftMonitoring after Prometheus is back",
    )
    faults.log.recovered("Prometheus down", time.monotonic() - back)
    faults.wait_cr("Deployment", "iris", is_serving(2), what="the retrained version served")
    faults.settle("after the Prometheus outage")
    assert len(_retraining_runs(faults)) == 1, f"seed {faults.seed}: {_retraining_runs(faults)}"


@pytest.fixture
def s3_operator(
    kubeconfig: str,
    namespace: str,
    crds: None,
    runtime_image: str,
    s3: S3Server,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    with running_operator(
        kubeconfig, namespace, runtime_image, tmp_path_factory.mktemp("op"), **s3.operator_env()
    ) as proc:
        yield proc


@pytest.mark.s3
@pytest.mark.faults_long
def test_minio_outage_during_training_and_predictor_start(
    s3_operator: OperatorProcess,
    s3_secret: str,
    s3_env: S3Server,
    faults: FaultRun,
    tmp_path: Path,
) -> None:
    custom, ns = faults.custom, faults.namespace
    local = tmp_path / "iris.csv"
    local.write_text(iris_csv())
    source = f"s3://{s3_env.bucket}/{ns}/data/iris.csv"
    store.put_file(local, source)
    ready_dataset(custom, ns, source)

    outage = fault_scale().outage_seconds
    with service_down("s3.sh"):
        faults.log.fault("MinIO down")
        ends = time.monotonic() + outage
        create_cr(custom, ns, training_run_manifest("iris-1", "iris"))
        run = faults.wait_cr(
            "TrainingRun", "iris-1", in_phase("Failed", "Succeeded"), what="iris-1 without S3"
        )
        status = run["status"]
        assert status["phase"] == "Failed", f"seed {faults.seed}: trained without a store"
        assert status.get("failureReason"), status
        assert status.get("failureMessage"), status
        time.sleep(max(0.0, ends - time.monotonic()))
    back = time.monotonic()
    trained(custom, ns, "iris-2")
    faults.log.recovered("MinIO down", time.monotonic() - back)

    with service_down("s3.sh"):
        faults.log.fault("MinIO down")
        ends = time.monotonic() + outage
        create_cr(custom, ns, deployment_manifest())
        faults.wait_cr(
            "Deployment",
            "iris",
            lambda o: (
                condition(o).get("status") == "False"
                and condition(o).get("reason") not in (None, "RollingOut")
                and bool(condition(o).get("message"))
            ),
            what="Ready to name why the predictor cannot start",
        )
        time.sleep(max(0.0, ends - time.monotonic()))
    back = time.monotonic()
    faults.wait_cr("Deployment", "iris", is_serving(1), what="serving once MinIO is back")
    faults.log.recovered("MinIO down", time.monotonic() - back)
    faults.settle("after the MinIO outages")


@pytest.mark.faults_long
def test_missing_artifact_pvc(
    kubeconfig: str,
    namespace: str,
    crds: None,
    runtime_image: str,
    kube_api: Any,
    kubectl: Kubectl,
    faults: FaultRun,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    custom = faults.custom
    pv_name: str | None = None
    # Not the `operator` fixture: that one makes the PVC first.
    with running_operator(kubeconfig, namespace, runtime_image, tmp_path_factory.mktemp("op")):
        try:
            # No PVC while the Dataset is created: nothing starts, Ready says why.
            create_cr(custom, namespace, dataset_manifest("iris", IRIS_SOURCE))
            faults.log.fault("artifact PVC missing")
            faults.wait_cr(
                "Dataset",
                "iris",
                lambda o: not outage_named(o, "Ready", {"ArtifactStoreMissing"}),
                what="Ready to name the missing PVC",
            )
            # The data is on the node's disk before the claim appears (a hostPath volume,
            # whose data outlives the claim), so the first profile attempt can read it.
            host_dir = STATE / "volumes" / namespace
            (host_dir / "data").mkdir(parents=True, exist_ok=True)
            (host_dir / "data" / "iris.csv").write_text(iris_csv())
            pv_name = create_artifact_store(kube_api, namespace, host_path=True)
            back = time.monotonic()
            faults.wait_cr(
                "Dataset",
                "iris",
                lambda o: condition(o).get("status") == "True",
                what="the Dataset once the PVC exists",
            )
            faults.log.recovered("artifact PVC missing", time.monotonic() - back)
            trained(custom, namespace)

            # The PVC goes away (the data stays on the node) before the predictor starts.
            # Finished pods still count as its users: they go first, as pod GC would.
            for phase in ("Succeeded", "Failed"):
                kubectl(
                    "delete", "pods", "-n", namespace, f"--field-selector=status.phase=={phase}"
                )
            kubectl("delete", "pvc", "driftloop-artifacts", "-n", namespace, "--wait=false")
            try:
                wait_for(
                    lambda: (
                        kubectl(
                            "get", "pvc", "driftloop-artifacts", "-n", namespace, check=False
                        ).returncode
                        != 0
                    ),
                    timeout=240,
                    what="the PVC to go",
                )
            except TimeoutError:
                users = kubectl("get", "pods", "-n", namespace, "-o", "wide", check=False)
                raise AssertionError(f"the PVC stayed; pods:\n{users.stdout}") from None
            kubectl("delete", "pv", str(pv_name), "--wait=true")
            faults.log.fault("artifact PVC missing")
            create_cr(custom, namespace, deployment_manifest())
            faults.wait_cr(
                "Deployment",
                "iris",
                lambda o: (
                    condition(o).get("status") == "False"
                    and condition(o).get("reason") == "PodUnschedulable"
                    and "driftloop-artifacts" in str(condition(o).get("message"))
                ),
                what="Ready to name the missing claim",
            )
            pv_name = create_artifact_store(kube_api, namespace, host_path=True)
            back = time.monotonic()
            faults.wait_cr("Deployment", "iris", is_serving(1), what="serving once the PVC is back")
            faults.log.recovered("artifact PVC missing", time.monotonic() - back)
            faults.settle("after the PVC came back")
        finally:
            delete_artifact_store(kube_api, namespace, pv_name)


@pytest.mark.faults_long
def test_predictor_pods_killed_during_a_rollout(
    operator: OperatorProcess, faults: FaultRun, kubectl: Kubectl, stage: Any
) -> None:
    stage("data/iris.csv", iris_csv())
    first_version(faults.custom, faults.namespace)
    serve(
        faults.custom, faults.namespace, deployment_manifest(channel="latestApproved", replicas=2)
    )
    create_cr(faults.custom, faults.namespace, training_run_manifest("iris-2", "iris"))
    faults.wait_cr(
        "Deployment",
        "iris",
        lambda o: (o.get("status") or {}).get("desiredVersion") == 2,
        what="the rollout of version 2 to start",
    )
    last = time.monotonic()
    for _ in range(faults.rng.randint(2, 4)):
        pods = wait_for(
            lambda: kubectl.json(
                "get", "pods", "-n", faults.namespace, "-l", "app.kubernetes.io/instance=iris"
            )["items"],
            timeout=60,
            what="predictor pods",
        )
        # Prefer a pod of the new version: its loss is what a rollout must survive.
        new = [p for p in pods if p["metadata"]["labels"].get("driftloop.dev/model-version") == "2"]
        victim = faults.rng.choice(new or pods)["metadata"]["name"]
        kubectl("delete", "pod", victim, "-n", faults.namespace, "--grace-period=0", "--force")
        faults.log.fault("predictor pod killed")
        last = time.monotonic()
        faults.check_always(f"after killing pod {victim}")
        time.sleep(faults.rng.uniform(1, 8))
    faults.wait_cr("Deployment", "iris", is_serving(2), what="version 2 served after the kills")
    faults.log.recovered("predictor pod killed", time.monotonic() - last)
    faults.settle("after the predictor pod kills")
