"""``kubectl driftloop`` on a real cluster, run through kubectl's own plugin lookup.

The operator runs as a subprocess watching the test namespace (as in test_operator.py);
the artifact claim comes from the default StorageClass (the embedded cluster's
local-path provisioner).  One flow: upload the data, train and serve, then ``status``,
``reject``/``approve`` and ``retrain``, checking each against the objects - and that no
user object's spec was written.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from driftloop.cli.lineage import short_digest
from driftloop_testkit.data import drift_loop_deployment, iris_csv
from driftloop_testkit.driftloop import (
    OperatorProcess,
    get_cr,
    kubectl_driftloop,
    wait_cr,
)
from driftloop_testkit.scenarios import IRIS_SOURCE, train_then_serve

pytestmark = pytest.mark.cluster

#: How long the plugin waits for the operator (a bound, not a measurement: the machine is
#: shared, and a busy operator answers late).
WAIT = "180"


def test_upload_status_approval_and_retraining(
    operator: OperatorProcess,
    kubeconfig: str,
    namespace: str,
    custom: Any,
    tmp_path: Path,
) -> None:
    def plugin(*args: str, check: bool = True) -> Any:
        return kubectl_driftloop(kubeconfig, namespace, *args, check=check)

    csv = tmp_path / "iris.csv"
    csv.write_text(iris_csv())
    out = plugin("upload", str(csv), "--to", "data/iris.csv").stdout
    assert f"wrote {csv.stat().st_size} bytes to {IRIS_SOURCE}" in out
    assert f"Dataset source: {IRIS_SOURCE}" in out

    # The uploaded file is what the Dataset reads: 150 rows, Ready.
    served = train_then_serve(
        custom, namespace, IRIS_SOURCE, drift_loop_deployment(channel="latestApproved")
    )
    assert served.dataset["status"]["rows"] == 150
    specs = {
        kind: get_cr(custom, namespace, kind, name)["spec"]  # type: ignore[index]
        for kind, name in (("ModelVersion", "iris-v1"), ("Deployment", "iris"))
    }

    tree = plugin("status", "iris").stdout
    digest = short_digest(served.dataset["status"]["version"])
    assert f"Dataset iris  Ready  version {digest}  150 rows x 5 columns" in tree, tree
    assert f"TrainingRun iris-1  Succeeded  on {digest}" in tree, tree
    assert re.search(
        r"ModelVersion iris-v1  v1  approved \(GatesPassed\)  accuracy=\S+ .*"
        r"<- serving in Deployment iris",
        tree,
    ), tree
    assert "Deployment iris  Ready  serving v1 (iris-v1)  previous -  1/1 ready" in tree, tree
    assert "last retraining: none" in tree, tree

    out = plugin("reject", "iris-v1", "--wait", WAIT).stdout
    assert "iris-v1: rejected (SetByUser)" in out, out
    out = plugin("approve", "iris-v1", "--wait", WAIT).stdout
    assert "iris-v1: approved (SetByUser)" in out, out
    mv = get_cr(custom, namespace, "ModelVersion", "iris-v1")
    assert mv is not None
    assert mv["metadata"]["annotations"]["driftloop.dev/approval"] == "approved"

    out = plugin("retrain", "iris", "--wait", WAIT).stdout
    started = re.search(r"started TrainingRun (iris-manual-\d+)", out)
    assert started, out
    run = get_cr(custom, namespace, "TrainingRun", started.group(1))
    assert run is not None
    assert run["metadata"]["labels"]["driftloop.dev/trigger"] == "manual"
    assert run["spec"]["model"] == "iris"
    # A second request, with that run in flight (maxConcurrent 1) and inside the 30m
    # cooldown: refused, as a trigger would be.
    again = plugin("retrain", "iris", "--wait", WAIT, check=False)
    assert again.returncode == 1, again
    assert re.search(r"(MaxConcurrent|Cooldown): retrain request", again.stdout), again.stdout
    dep = wait_cr(
        custom,
        namespace,
        "Deployment",
        "iris",
        lambda o: bool((o.get("status") or {}).get("retrainHistory")),
        timeout=60,
    )
    assert dep["status"]["retrainHistory"][0]["trainingRun"] == started.group(1)

    tree = plugin("status", "iris").stdout
    assert f"TrainingRun {started.group(1)}" in tree
    assert "retraining of iris (manual)" in tree
    assert f"last retraining: {started.group(1)} (manual) at" in tree, tree

    # The plugin wrote annotations only, never a spec.
    for kind, name in (("ModelVersion", "iris-v1"), ("Deployment", "iris")):
        assert get_cr(custom, namespace, kind, name)["spec"] == specs[kind]  # type: ignore[index]


def test_errors_name_what_is_missing(
    operator: OperatorProcess, kubeconfig: str, namespace: str
) -> None:
    out = kubectl_driftloop(kubeconfig, namespace, "approve", "nope-v1", check=False)
    assert out.returncode == 1
    assert f"ModelVersion nope-v1 not found in {namespace}" in out.stderr
    out = kubectl_driftloop(
        kubeconfig, namespace, "upload", "/etc/hostname", "--to", "../x", check=False
    )
    assert out.returncode == 1
    assert "not a file path inside the artifact volume" in out.stderr
