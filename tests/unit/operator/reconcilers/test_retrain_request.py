"""Retraining a user asked for (``driftloop.dev/retrain-request``), through the Deployment
reconcile - one named case each.

Each case serves version 1 of ``iris``, sets the case's retraining policy (drift
triggers off, so only the request can start a run), the annotation and the
TrainingRuns that exist, and runs one reconcile.  It compares the Retraining
condition, the history, the writes and the events: a request is admitted by the
same cooldown and maxConcurrent as a trigger, and one id starts one run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from driftloop import retraining
from driftloop.api import RETRAIN_REQUEST_ANNOTATION

from .deploy_harness import (
    conditions_of,
    deployment_status,
    edit_spec,
    message_of,
    run,
    serve,
    set_status,
    stored_deployment,
)
from .harness import NOW, deployment, events, later, model_version, seeded, text
from .test_drift import TEMPLATE, training_run

Obj = dict[str, Any]

REQUEST = "20261130T120000Z-a1b2"
RUN = f"iris-manual-{retraining.request_window(REQUEST)}"
PATCH = "patch_status Deployment/iris"
STARTED = f"retrain request {REQUEST}: started TrainingRun {RUN}"
RECORD = {"trainingRun": RUN, "trigger": "manual", "value": None, "time": text(NOW)}
EARLIER = {"trainingRun": "iris-drift-1", "trigger": "drift", "value": 0.3, "time": "t0"}


def policy(**fields: Any) -> Obj:
    # enabled=False: no Prometheus reading can start a run; only the request.
    return {"enabled": False, "template": TEMPLATE, **fields}


@dataclass(frozen=True)
class Case:
    name: str
    retraining: Obj | None = None
    request: str | None = REQUEST
    runs: tuple[Obj, ...] = ()
    history: tuple[Obj, ...] = ()
    # What the reconcile under test must do.
    condition: tuple[str, str, str] | None = None
    retrain_history: tuple[Obj, ...] | None = None
    writes: tuple[str, ...] = (PATCH,)
    events: tuple[tuple[str, str, str], ...] = ()
    #: A time-based wake-up asked for (seconds).
    requeue: float | None = None


CASES = [
    Case(
        "a new request starts one run from the template",
        retraining=policy(),
        condition=("True", "Requested", STARTED),
        retrain_history=(RECORD,),
        writes=(f"create TrainingRun/{RUN}", PATCH),
        events=(("Normal", "RetrainingStarted", STARTED),),
    ),
    Case(
        "the request goes first in the history",
        retraining=policy(),
        history=(EARLIER,),
        condition=("True", "Requested", STARTED),
        retrain_history=(RECORD, EARLIER),
        writes=(f"create TrainingRun/{RUN}", PATCH),
        events=(("Normal", "RetrainingStarted", STARTED),),
    ),
    Case(
        "a served request starts nothing again, even long after the cooldown",
        retraining=policy(cooldown="1m"),
        runs=(training_run(RUN, later(-3600), "Succeeded"),),
        writes=(PATCH,),  # the spec edit's observedGeneration
    ),
    Case(
        "inside the cooldown of the last run: refused, and said so",
        retraining=policy(cooldown="30m"),
        runs=(training_run("iris-drift-1", later(-600), "Succeeded"),),
        condition=("False", "Cooldown", f"retrain request {REQUEST}: cooldown: 1200s left"),
        requeue=1200,  # when the cooldown ends, nothing else would wake it
    ),
    Case(
        "maxConcurrent runs in flight: refused",
        retraining=policy(maxConcurrent=1, cooldown="1s"),
        runs=(training_run("iris-drift-1", later(-600), "Running"),),
        condition=(
            "False",
            "MaxConcurrent",
            f"retrain request {REQUEST}: 1 retraining run(s) in flight",
        ),
    ),
    Case(
        "after the cooldown: started",
        retraining=policy(cooldown="5m"),
        runs=(training_run("iris-drift-1", later(-600), "Succeeded"),),
        condition=("True", "Requested", STARTED),
        retrain_history=(RECORD,),
        writes=(f"create TrainingRun/{RUN}", PATCH),
        events=(("Normal", "RetrainingStarted", STARTED),),
    ),
    Case(
        "no spec.retraining: nothing to train from",
        retraining=None,
        condition=(
            "False",
            "NoTemplate",
            f"retrain request {REQUEST}: spec.retraining has no template to train from",
        ),
    ),
    Case(
        "no request: nothing happens",
        retraining=policy(),
        request=None,
        writes=(PATCH,),
    ),
    Case(
        "an empty request is no request",
        retraining=policy(),
        request="  ",
        writes=(PATCH,),
    ),
]


def _given(case: Case) -> Any:
    kube = seeded(deployment(), model_version(1), *case.runs)
    serve(kube)
    if case.retraining is not None:
        edit_spec(retraining=case.retraining)(kube)
    else:
        edit_spec(replicas=1)(kube)  # a spec edit all the same: the same observedGeneration write
    if case.history:
        set_status(retrainHistory=list(case.history))(kube)
    if case.request is not None:
        meta = stored_deployment(kube)["metadata"]
        meta.setdefault("annotations", {})[RETRAIN_REQUEST_ANNOTATION] = case.request
    kube.writes.clear()
    return kube


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_retrain_request(case: Case) -> None:
    kube = _given(case)

    outcome = run(kube)

    status = deployment_status(kube)
    found = conditions_of(status)
    if case.condition is None:
        assert "Retraining" not in found
    else:
        assert (*found["Retraining"], message_of(status, "Retraining")) == case.condition
    # None: the history stays as it was.
    expected = case.retrain_history if case.retrain_history is not None else case.history
    assert status.get("retrainHistory") == (list(expected) or None)
    assert [repr(w) for w in kube.writes] == list(case.writes)
    assert events(outcome) == list(case.events)
    assert outcome.requeue_after == case.requeue
    assert found["Ready"] == ("True", "Serving")  # a request never disturbs serving


def test_the_requested_run_comes_from_the_template_and_is_the_deployments() -> None:
    kube = _given(CASES[0])
    run(kube)
    created = next(w.body for w in kube.writes if w.verb == "create")
    meta = created["metadata"]
    assert meta["name"] == RUN
    assert meta["labels"]["driftloop.dev/deployment"] == "iris"
    assert meta["labels"]["driftloop.dev/trigger"] == "manual"
    assert [(r["kind"], r["name"]) for r in meta["ownerReferences"]] == [("Deployment", "iris")]
    assert created["spec"]["datasetRef"] == {"name": "iris"}
    # A second reconcile of the same request finds the run: nothing new.
    kube.writes.clear()
    run(kube)
    assert not [w for w in kube.writes if w.verb == "create"]


def test_one_request_id_one_run_name() -> None:
    assert retraining.request_window("a") == retraining.request_window("a")
    assert retraining.request_window("a") != retraining.request_window("b")
