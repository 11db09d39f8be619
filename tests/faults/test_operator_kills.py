"""The operator SIGKILLed at random moments through whole lifecycles, and the operator down
while objects are created, changed and deleted (events it never sees).

A lifecycle: a Dataset, three TrainingRuns of one model, a Deployment of the model's
latestApproved channel whose trigger (a PromQL query on the real Prometheus that is
always beyond its threshold) retrains once per cooldown, each retrained version promoted.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import pytest

from driftloop_testkit.data import (
    dataset_manifest,
    drift_loop_deployment,
    iris_csv,
    training_run_manifest,
)
from driftloop_testkit.driftloop import GROUP, PLURALS, VERSION, OperatorProcess, create_cr
from driftloop_testkit.faults import FaultRun, fault_scale
from driftloop_testkit.invariants import Breach, Snapshot
from driftloop_testkit.scenarios import IRIS_SOURCE, train_then_serve

pytestmark = [pytest.mark.faults, pytest.mark.cluster, pytest.mark.e2e]

#: A trigger that fires on every evaluation: drift is not what this suite tests (the e2e
#: suite does), the operator's retraining under faults is.
ALWAYS_FIRING = {"name": "drift", "query": "vector(1)", "threshold": 0.5, "for": "4s"}
COOLDOWN = "45s"
SIGKILL = "operator SIGKILL"


class Killer(threading.Thread):
    """SIGKILLs and restarts the operator ``kills`` times at random gaps; after most
    restarts it measures recovery with a canary (a new object the operator must judge),
    the rest let the next kill land while the operator is still starting."""

    def __init__(self, operator: OperatorProcess, faults: FaultRun, kills: int, label: str):
        super().__init__(daemon=True)
        self.operator, self.faults, self.kills, self.label = operator, faults, kills, label
        self.done = 0
        self.last_kill = time.monotonic()
        self.error: BaseException | None = None
        self.stopping = threading.Event()

    def run(self) -> None:
        scale = fault_scale()
        try:
            for i in range(self.kills):
                if self.stopping.wait(self.faults.rng.uniform(*scale.kill_gap)):
                    return
                self.operator.restart()
                self.last_kill = time.monotonic()
                self.done += 1
                self.faults.log.fault(SIGKILL)
                if self.faults.rng.random() < 0.6:
                    self.faults.log.recovered(SIGKILL, self.faults.canary(f"{self.label}-{i}"))
        except BaseException as error:
            self.error = error

    def finish(self) -> None:
        self.join()
        if self.error is not None:
            raise self.error


def _served_retrained(deployment: dict[str, Any]) -> int:
    """How many retrained versions have registered (the retrain history's outcomes)."""
    history = (deployment.get("status") or {}).get("retrainHistory") or []
    return sum(1 for record in history if str(record.get("outcome", "")).startswith("registered"))


def test_lifecycles_survive_operator_kills(
    operator: OperatorProcess, faults: FaultRun, prometheus: str, stage: Any
) -> None:
    scale = fault_scale()
    stage("data/iris.csv", iris_csv())
    for lifecycle in range(scale.lifecycles):
        name = f"life{lifecycle}"
        killer = Killer(operator, faults, scale.kills_per_lifecycle, name)
        killer.start()
        create_cr(faults.custom, faults.namespace, dataset_manifest(name, IRIS_SOURCE))
        for run in "abc":
            create_cr(
                faults.custom,
                faults.namespace,
                training_run_manifest(f"{name}-{run}", name, model=name),
            )
        deployment = drift_loop_deployment(
            name,
            model=name,
            dataset=name,
            prometheus=prometheus,
            rollout_deadline="5m",
            cooldown=COOLDOWN,
            maxConcurrent=1,
            triggers=[ALWAYS_FIRING],
        )
        # The trigger has its own query: the drift statistics' settings play no part.
        del deployment["spec"]["monitoring"]
        create_cr(faults.custom, faults.namespace, deployment)
        # Two retrained versions registered and the Deployment serving the latest.
        faults.wait_cr(
            "Deployment",
            name,
            lambda o: _served_retrained(o) >= 2,
            what=f"two retrained versions of {name} under operator kills",
            timeout=900,
        )
        killer.finish()
        # Stop retraining so the lifecycle can settle, then nothing may be stuck.
        faults.custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            faults.namespace,
            PLURALS["Deployment"],
            name,
            {"spec": {"retraining": {"enabled": False}}},
        )
        settled = faults.settle(
            f"after {killer.done} operator kills in lifecycle {lifecycle}",
            kind="lifecycle after the last kill",
            since=killer.last_kill,
        )
        mine = [v for v in settled.versions if v["spec"]["model"] == name]
        assert len(mine) >= 5, f"seed {faults.seed}: {[v['metadata']['name'] for v in mine]}"


def test_changes_made_while_the_operator_is_down(
    operator: OperatorProcess, faults: FaultRun, stage: Any
) -> None:
    stage("data/iris.csv", iris_csv())
    train_then_serve(faults.custom, faults.namespace)
    custom, ns = faults.custom, faults.namespace

    operator.stop(signal.SIGKILL)
    faults.log.fault("operator down")
    create_cr(custom, ns, training_run_manifest("iris-2", "iris"))  # created
    custom.patch_namespaced_custom_object(  # changed
        GROUP, VERSION, ns, PLURALS["Deployment"], "iris", {"spec": {"replicas": 2}}
    )
    custom.delete_namespaced_custom_object(  # deleted (kopf's finalizer holds it)
        GROUP, VERSION, ns, PLURALS["TrainingRun"], "iris-1"
    )
    create_cr(custom, ns, dataset_manifest("gone", IRIS_SOURCE))  # created and deleted
    custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURALS["Dataset"], "gone")
    time.sleep(faults.rng.uniform(5, 20))
    started = time.monotonic()
    operator.start()

    def changes_applied(snapshot: Snapshot) -> list[Breach]:
        names = {r["metadata"]["name"] for r in snapshot.runs} | {
            d["metadata"]["name"] for d in snapshot.datasets
        }
        deployment = next(d for d in snapshot.deployments if d["metadata"]["name"] == "iris")
        breaches = [
            Breach("deleted", f"{n} still exists", (f"TrainingRun/{n}",))
            for n in ("iris-1", "gone")
            if n in names
        ]
        if (deployment.get("status") or {}).get("replicas") != 2:
            breaches.append(
                Breach(
                    "changed", "Deployment iris does not report 2 replicas", ("Deployment/iris",)
                )
            )
        return breaches

    settled = faults.settle(
        "after the operator was down", kind="operator down", since=started, extra=changes_applied
    )
    assert {v["metadata"]["name"] for v in settled.versions} == {"iris-v1", "iris-v2"}
