"""What the event-driven engine promises, on the real cluster: an idle operator sends no
request however many objects wait, and a finished run's Job is deleted after the
retention (its result is in status)."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from driftloop_testkit.cluster import Kubectl, wait_for
from driftloop_testkit.data import iris_csv, training_run_manifest
from driftloop_testkit.driftloop import (
    GROUP,
    VERSION,
    OperatorProcess,
    create_cr,
    get_cr,
    running_operator,
    wait_cr,
)
from driftloop_testkit.scenarios import has_reason, in_phase, ready_dataset

pytestmark = pytest.mark.cluster


def api_requests(operator: OperatorProcess) -> float:
    """Requests the reconcilers sent so far (the operator's own counter)."""
    text = requests.get(f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("driftloop_operator_api_requests_total{")
    )


def test_an_idle_operator_sends_no_requests_while_runs_wait(
    operator: OperatorProcess, custom: Any, kubectl: Kubectl, namespace: str, stage: Any
) -> None:
    """Twenty runs whose Jobs a quota keeps from starting: once each says so, the
    operator goes quiet (the polling engine read every run's Job every few seconds)."""
    stage("data/iris.csv", iris_csv())
    ready_dataset(custom, namespace)
    kubectl(
        "create",
        "quota",
        "no-pods",
        "--hard=pods=0",
        "-n",
        namespace,
    )
    runs = [f"quiet-{i}" for i in range(20)]
    for run in runs:
        create_cr(custom, namespace, training_run_manifest(run, "iris"))
    for run in runs:
        wait_cr(custom, namespace, "TrainingRun", run, has_reason("QuotaExceeded"), timeout=180)

    window = 15.0
    last = [api_requests(operator)]

    def quiet_for_a_window() -> bool:
        time.sleep(window)
        now = api_requests(operator)
        quiet = now == last[0]
        last[0] = now
        return quiet

    # A bound, not a timing claim: an operator that keeps asking never gets a quiet window.
    wait_for(quiet_for_a_window, timeout=180, interval=0, what="a window without requests")


def test_a_finished_runs_job_goes_after_the_retention(
    kubeconfig: str,
    namespace: str,
    crds: None,
    artifact_store: str,
    runtime_image: str,
    custom: Any,
    kubectl: Kubectl,
    stage: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with running_operator(
        kubeconfig,
        namespace,
        runtime_image,
        tmp_path_factory.mktemp("operator"),
        DRIFTLOOP_FINISHED_JOB_RETENTION="5",
    ):
        stage("data/iris.csv", iris_csv())
        ready_dataset(custom, namespace)
        create_cr(custom, namespace, training_run_manifest("short-lived", "iris"))
        done = wait_cr(
            custom, namespace, "TrainingRun", "short-lived", in_phase("Succeeded"), timeout=600
        )
        job = done["status"]["jobName"]
        wait_for(
            lambda: (
                not kubectl.json(
                    "get", "jobs", "-n", namespace, "-l", f"{GROUP}/training-run=short-lived"
                )["items"]
            ),
            timeout=120,
            what=f"Job {job} deleted after the retention",
        )
        # The result stays in status, the version stays registered, and no Job comes back.
        time.sleep(5)
        run = get_cr(custom, namespace, "TrainingRun", "short-lived")
        assert run is not None
        assert run["status"]["phase"] == "Succeeded"
        assert run["status"]["modelVersion"] == "iris-v1"
        assert get_cr(custom, namespace, "ModelVersion", "iris-v1") is not None
        assert kubectl("get", "job", job, "-n", namespace, check=False).returncode != 0
        versions = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "modelversions")
        assert len(versions["items"]) == 1
