"""Drift-triggered retraining, through the Deployment reconcile - one named case each.

Each case serves version 1 of ``iris`` (retraining off), then turns retraining on
with the case's policy, seeds the status an earlier reconcile left (``drift``,
``retrainHistory``) and the TrainingRuns, and runs one reconcile whose Prometheus
answers from a table.  It compares the observations, the DriftMonitoring and
Retraining conditions, the history, the queries sent, the writes and the events.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest

from driftloop.api import API_VERSION
from driftloop.config import OperatorConfig
from driftloop.fake import FakeKube
from driftloop.prometheus import PrometheusError
from driftloop.retraining import pooled_query
from driftloop_contract import DriftMethod

from .deploy_harness import (
    conditions_of,
    deployment_status,
    edit_spec,
    message_of,
    run,
    serve,
    set_status,
)
from .harness import CONFIG, NOW, NS, deployment, events, later, model_version, seeded, text

Obj = dict[str, Any]

ADDRESS = "http://prometheus.monitoring:9090"
#: A drift trigger with a fixed threshold (most cases): PSI of the bin counters pooled
#: over every pod (1000-row window: 100 rows at least; spec.monitoring.range 5m).
FIXED = {"name": "drift", "threshold": 0.1}
SELECTOR = 'namespace="ml",deployment="iris",version="1"'
QUERY = pooled_query(SELECTOR, DriftMethod.psi, "300s", 100)
#: The default trigger (no triggers): the same, relative to the calibrated thresholds.
#: (200 rows at least: from there on the threshold for 1000 rows rescales to the range's.)
CALIBRATED_QUERY = pooled_query(SELECTOR, DriftMethod.psi, "300s", 200, window=1000)
TEMPLATE = {"datasetRef": {"name": "iris"}, "estimator": {"type": "RandomForestClassifier"}}
#: NOW // 30m (the default cooldown): the retraining run's name suffix.
WINDOW = 997800
RUN = f"iris-drift-{WINDOW}"
PATCH = "patch_status Deployment/iris"
CREATE_RUN = f"create TrainingRun/{RUN}"
FIRED = f"trigger drift: value 0.3 beyond 0.1 since {text(later(-60))}; started TrainingRun {RUN}"


class Answers:
    """A Prometheus answering each query from a table; an exception value is raised."""

    def __init__(self, default: float | PrometheusError, **by_query: float | PrometheusError):
        self.default = default
        self.by_query = by_query
        self.queries: list[tuple[str, str, str | None]] = []

    def __call__(self, address: str, query: str, token: str | None) -> float:
        self.queries.append((address, query, token))
        value = self.by_query.get(query, self.default)
        if isinstance(value, PrometheusError):
            raise value
        return value


def retraining(**policy: Any) -> Obj:
    return {
        "prometheus": {"address": ADDRESS},
        "template": TEMPLATE,
        "triggers": [FIXED],
        **policy,
    }


def observation(value: float | None, at: datetime = NOW, since: datetime | None = None) -> Obj:
    obs: Obj = {"trigger": "drift", "value": value, "threshold": 0.1, "time": text(at)}
    if since is not None:
        obs["firingSince"] = text(since)
    return obs


CALIBRATED: Obj = {
    "trigger": "drift",
    "value": 0.6,
    "threshold": 1.0,
    "calibrated": True,
    "time": text(NOW),
}
SINCE = text(later(-60))
CALIBRATED_FIRED = f"trigger drift: value 1.5 beyond 1 since {SINCE}; started TrainingRun {RUN}"

#: A reading 30s ago, beyond the threshold since a minute ago: it fires when due.
FIRING = observation(0.2, later(-30), since=later(-60))


def training_run(
    name: str, created: datetime, phase: str | None = None, *, labelled: bool = True, **status: Any
) -> Obj:
    obj: Obj = {
        "apiVersion": API_VERSION,
        "kind": "TrainingRun",
        "metadata": {
            "name": name,
            "namespace": NS,
            "creationTimestamp": text(created),
            "labels": {"driftloop.dev/deployment": "iris"} if labelled else {},
        },
        "spec": {"model": "iris", **TEMPLATE},
    }
    if phase is not None:
        obj["status"] = {"phase": phase, **status}
    return obj


def record(run_name: str, outcome: str | None = None, value: float = 0.3) -> Obj:
    rec: Obj = {"trainingRun": run_name, "trigger": "drift", "value": value, "time": text(NOW)}
    if outcome is not None:
        rec["outcome"] = outcome
    return rec


@dataclass(frozen=True)
class Case:
    name: str
    policy: Obj
    value: float | PrometheusError = 0.05
    by_query: dict[str, float | PrometheusError] = field(default_factory=dict)
    spec: Obj = field(default_factory=dict)
    #: Status an earlier reconcile left.
    drift: tuple[Obj, ...] = ()
    history: tuple[Obj, ...] = ()
    objects: tuple[Obj, ...] = ()
    serving: bool = True
    config: OperatorConfig = CONFIG
    # What the reconcile under test must do.
    queries: tuple[tuple[str, str, str | None], ...] = ((ADDRESS, QUERY, None),)
    observations: tuple[Obj, ...] | None = (observation(0.05),)
    monitoring: tuple[str, str] | None = ("True", "Observed")
    monitoring_message: str = "Prometheus queries succeed"
    retraining: tuple[str, str, str] | None = None
    retrain_history: tuple[Obj, ...] | None = ()
    writes: tuple[str, ...] = (PATCH,)
    events: tuple[tuple[str, str, str], ...] = ()


#: A second trigger with its own query, firing at once (``for: 0s``).
TWO_TRIGGERS = [
    {"name": "drift", "threshold": 0.1},
    {"name": "errors", "query": "errors()", "threshold": 0.5, "for": "0s"},
]
TWO_FIRING = (
    observation(0.3, since=later(-60)),
    {
        "trigger": "errors",
        "value": 0.9,
        "threshold": 0.5,
        "time": text(NOW),
        "firingSince": text(NOW),
    },
)
#: The window index with ``cooldown: 0s`` (windows of one second).
NOW_WINDOW = int(NOW.timestamp())
ERRORS_FIRED = (
    f"trigger errors: value 0.9 beyond 0.5 since {text(NOW)}; started TrainingRun iris-errors-"
)


FIRES = Case(
    "crossed for the `for` duration: a TrainingRun from the template",
    policy=retraining(),
    value=0.3,
    drift=(FIRING,),
    observations=(observation(0.3, since=later(-60)),),
    retraining=("True", "DriftDetected", FIRED),
    retrain_history=(record(RUN),),
    writes=(CREATE_RUN, PATCH),
    events=(("Normal", "RetrainingStarted", FIRED),),
)


CASES = [
    # ------------------------------------------------------------ reading
    Case(
        "no Prometheus address anywhere",
        policy={"template": TEMPLATE},
        queries=(),
        observations=None,
        monitoring=("False", "NoPrometheus"),
        monitoring_message=(
            "no Prometheus address (spec.retraining.prometheus.address or Helm value)"
        ),
    ),
    Case(
        "the operator-wide Prometheus address",
        policy={"template": TEMPLATE, "triggers": [FIXED]},
        config=dataclasses.replace(CONFIG, prometheus_url="http://prom.default:9090"),
        queries=(("http://prom.default:9090", QUERY, None),),
    ),
    Case("below the threshold", policy=retraining()),
    Case(
        "bearer token from a Secret",
        policy=retraining(
            prometheus={
                "address": ADDRESS,
                "bearerTokenSecretRef": {"name": "prom-token", "key": "token"},
            }
        ),
        objects=(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "prom-token", "namespace": NS},
                "stringData": {"token": "s3cret"},
            },
        ),
        queries=((ADDRESS, QUERY, "s3cret"),),
    ),
    Case(
        "bearer token Secret missing: the query goes without one",
        policy=retraining(
            prometheus={
                "address": ADDRESS,
                "bearerTokenSecretRef": {"name": "prom-token", "key": "token"},
            }
        ),
    ),
    Case(
        "interval not due: the previous reading is kept; no query, no verdict on Prometheus",
        policy=retraining(interval="30s"),
        drift=(observation(0.3, later(-29), since=later(-29)),),
        queries=(),
        observations=(observation(0.3, later(-29), since=later(-29)),),
        monitoring=None,
    ),
    Case(
        "interval due: read again",
        policy=retraining(interval="30s"),
        drift=(observation(0.04, later(-30)),),
    ),
    Case(
        "not serving yet: the query has no version",
        policy=retraining(),
        serving=False,
        writes=("create Service/iris-predictor", "apply Deployment/iris-predictor", PATCH),
        queries=(
            (
                ADDRESS,
                pooled_query('namespace="ml",deployment="iris"', DriftMethod.psi, "300s", 100),
                None,
            ),
        ),
    ),
    Case(
        "the default trigger is calibrated: the pooled score relative to the thresholds",
        policy=retraining(triggers=[]),
        value=0.6,
        queries=((ADDRESS, CALIBRATED_QUERY, None),),
        observations=(CALIBRATED,),
    ),
    Case(
        "calibrated, above 1 for the `for` duration: a TrainingRun",
        policy=retraining(triggers=[]),
        value=1.5,
        drift=({**CALIBRATED, "value": 1.2, "time": text(later(-30)), "firingSince": SINCE},),
        queries=((ADDRESS, CALIBRATED_QUERY, None),),
        observations=({**CALIBRATED, "value": 1.5, "firingSince": SINCE},),
        retraining=("True", "DriftDetected", CALIBRATED_FIRED),
        retrain_history=(record(RUN, value=1.5),),
        writes=(CREATE_RUN, PATCH),
        events=(("Normal", "RetrainingStarted", CALIBRATED_FIRED),),
    ),
    Case(
        "KS, calibrated: each pod's 1 - p over its Sidak level, or the fixed 0.95 without one",
        policy=retraining(triggers=[]),
        spec={"monitoring": {"method": "ks"}},
        value=0.5,
        queries=(
            (
                ADDRESS,
                f'max(driftloop_feature_drift_score{{{SELECTOR},method="ks"}} / '
                f'driftloop_feature_drift_threshold{{{SELECTOR},method="ks"}} or '
                f'driftloop_feature_drift_score{{{SELECTOR},method="ks"}} / 0.95)',
                None,
            ),
        ),
        observations=({**CALIBRATED, "value": 0.5},),
    ),
    Case(
        "KS with a fixed threshold: the max of each pod's score",
        policy=retraining(triggers=[{"name": "drift", "threshold": 0.95}]),
        spec={"monitoring": {"method": "ks"}},
        value=0.5,
        queries=((ADDRESS, f'max(driftloop_feature_drift_score{{{SELECTOR},method="ks"}})', None),),
        observations=({"trigger": "drift", "value": 0.5, "threshold": 0.95, "time": text(NOW)},),
    ),
    Case(
        "Prometheus unreachable",
        policy=retraining(),
        value=PrometheusError("PrometheusUnreachable", "connection refused"),
        observations=(observation(None),),
        monitoring=("False", "PrometheusUnreachable"),
        monitoring_message="connection refused",
    ),
    Case(
        "a firing trigger with no samples does not fire",
        policy=retraining(),
        value=PrometheusError("EmptyResult", "no samples"),
        drift=(FIRING,),
        observations=(observation(None),),
        monitoring=("False", "EmptyResult"),
        monitoring_message="no samples",
    ),
    Case(
        "two triggers, the second fails: its error is reported",
        policy=retraining(
            triggers=[
                {"name": "drift", "threshold": 0.1},
                {"name": "errors", "query": "errors()", "threshold": 0.5},
            ]
        ),
        by_query={"errors()": PrometheusError("QueryError", "bad query")},
        queries=((ADDRESS, QUERY, None), (ADDRESS, "errors()", None)),
        observations=(
            observation(0.05),
            {"trigger": "errors", "value": None, "threshold": 0.5, "time": text(NOW)},
        ),
        monitoring=("False", "QueryError"),
        monitoring_message="bad query",
    ),
    # ------------------------------------------------------------- firing
    Case(
        "crossed: firing starts, not held for long enough",
        policy=retraining(),
        value=0.3,
        observations=(observation(0.3, since=NOW),),
    ),
    Case(
        "back under the threshold: firing ends",
        policy=retraining(),
        drift=(FIRING,),
        value=0.05,
    ),
    FIRES,
    Case(
        "a '<' trigger with its own query fires at once with for: 0s",
        policy=retraining(
            triggers=[
                {
                    "name": "accuracy",
                    "query": "avg(driftloop_live_score)",
                    "operator": "<",
                    "threshold": 0.8,
                    "for": "0s",
                }
            ],
            cooldown="1h",
        ),
        value=0.7,
        queries=((ADDRESS, "avg(driftloop_live_score)", None),),
        observations=(
            {
                "trigger": "accuracy",
                "value": 0.7,
                "threshold": 0.8,
                "time": text(NOW),
                "firingSince": text(NOW),
            },
        ),
        retraining=(
            "True",
            "DriftDetected",
            f"trigger accuracy: value 0.7 beyond 0.8 since {text(NOW)}; "
            f"started TrainingRun iris-accuracy-{WINDOW // 2}",
        ),
        retrain_history=(
            {
                "trainingRun": f"iris-accuracy-{WINDOW // 2}",
                "trigger": "accuracy",
                "value": 0.7,
                "time": text(NOW),
            },
        ),
        writes=(f"create TrainingRun/iris-accuracy-{WINDOW // 2}", PATCH),
        events=(
            (
                "Normal",
                "RetrainingStarted",
                f"trigger accuracy: value 0.7 beyond 0.8 since {text(NOW)}; "
                f"started TrainingRun iris-accuracy-{WINDOW // 2}",
            ),
        ),
    ),
    Case(
        "the history keeps the newest 20",
        policy=retraining(),
        value=0.3,
        drift=(FIRING,),
        history=tuple(record(f"old-{i}", "registered iris-v1") for i in range(20)),
        observations=(observation(0.3, since=later(-60)),),
        retraining=("True", "DriftDetected", FIRED),
        retrain_history=(
            record(RUN),
            *(record(f"old-{i}", "registered iris-v1") for i in range(19)),
        ),
        writes=(CREATE_RUN, PATCH),
        events=(("Normal", "RetrainingStarted", FIRED),),
    ),
    # ---------------------------------------------------------- admission
    Case(
        "cooldown: the last run is too young",
        policy=retraining(),
        value=0.3,
        drift=(FIRING,),
        objects=(training_run("iris-drift-1", later(-600), "Succeeded", modelVersion="iris-v2"),),
        observations=(observation(0.3, since=later(-60)),),
        retraining=("False", "Cooldown", "cooldown: 1200s left"),
    ),
    Case(
        "maxConcurrent: a run is still in flight",
        policy=retraining(),
        value=0.3,
        drift=(FIRING,),
        objects=(training_run("iris-drift-1", later(-7200)),),
        observations=(observation(0.3, since=later(-60)),),
        retraining=("False", "MaxConcurrent", "1 retraining run(s) in flight"),
    ),
    Case(
        "maxConcurrent 2: one in flight past the cooldown, another starts",
        policy=retraining(maxConcurrent=2),
        value=0.3,
        drift=(FIRING,),
        objects=(training_run("iris-drift-1", later(-7200), "Running"),),
        observations=(observation(0.3, since=later(-60)),),
        retraining=("True", "DriftDetected", FIRED),
        retrain_history=(record(RUN),),
        writes=(CREATE_RUN, PATCH),
        events=(("Normal", "RetrainingStarted", FIRED),),
    ),
    Case(
        "two triggers fire in one pass: the run the first started is in flight for the second",
        policy=retraining(triggers=TWO_TRIGGERS),
        value=0.3,
        by_query={"errors()": 0.9},
        drift=(FIRING,),
        queries=((ADDRESS, QUERY, None), (ADDRESS, "errors()", None)),
        observations=TWO_FIRING,
        retraining=("True", "DriftDetected", FIRED),
        retrain_history=(record(RUN),),
        writes=(CREATE_RUN, PATCH),
        events=(("Normal", "RetrainingStarted", FIRED),),
    ),
    Case(
        "two triggers fire in one pass, maxConcurrent 2: the first's run starts the cooldown",
        policy=retraining(triggers=TWO_TRIGGERS, maxConcurrent=2),
        value=0.3,
        by_query={"errors()": 0.9},
        drift=(FIRING,),
        queries=((ADDRESS, QUERY, None), (ADDRESS, "errors()", None)),
        observations=TWO_FIRING,
        retraining=("True", "DriftDetected", FIRED),
        retrain_history=(record(RUN),),
        writes=(CREATE_RUN, PATCH),
        events=(("Normal", "RetrainingStarted", FIRED),),
    ),
    Case(
        "two triggers fire in one pass without a cooldown, maxConcurrent 2: two runs",
        policy=retraining(triggers=TWO_TRIGGERS, maxConcurrent=2, cooldown="0s"),
        value=0.3,
        by_query={"errors()": 0.9},
        drift=(FIRING,),
        queries=((ADDRESS, QUERY, None), (ADDRESS, "errors()", None)),
        observations=TWO_FIRING,
        retraining=("True", "DriftDetected", f"{ERRORS_FIRED}{NOW_WINDOW}"),
        retrain_history=(
            {**record(f"iris-errors-{NOW_WINDOW}", value=0.9), "trigger": "errors"},
            record(f"iris-drift-{NOW_WINDOW}"),
        ),
        writes=(
            f"create TrainingRun/iris-drift-{NOW_WINDOW}",
            f"create TrainingRun/iris-errors-{NOW_WINDOW}",
            PATCH,
        ),
        events=(
            ("Normal", "RetrainingStarted", f"{FIRED[: -len(RUN)]}iris-drift-{NOW_WINDOW}"),
            ("Normal", "RetrainingStarted", f"{ERRORS_FIRED}{NOW_WINDOW}"),
        ),
    ),
    Case(
        "this window's run exists (a retry after a lost status write): nothing new",
        policy=retraining(),
        value=0.3,
        drift=(FIRING,),
        objects=(training_run(RUN, NOW, labelled=False),),
        observations=(observation(0.3, since=later(-60)),),
    ),
    # ------------------------------------------------------------- history
    Case(
        "history outcomes filled in once runs finish",
        policy=retraining(),
        history=(
            record("run-ok"),
            record("run-failed"),
            record("run-running"),
            record("run-settled", "registered iris-v1"),
            record("run-deleted"),
        ),
        objects=(
            training_run("run-ok", later(-7200), "Succeeded", modelVersion="iris-v3"),
            training_run("run-failed", later(-7200), "Failed", failureReason="GatesFailed"),
            training_run("run-running", later(-7200), "Running"),
            training_run("run-settled", later(-7200), "Failed", failureReason="JobFailed"),
        ),
        retrain_history=(
            record("run-ok", "registered iris-v3"),
            record("run-failed", "failed: GatesFailed"),
            record("run-running"),
            record("run-settled", "registered iris-v1"),
            record("run-deleted"),
        ),
    ),
    Case(
        "retraining turned off: Prometheus is not asked",
        policy=retraining(enabled=False),
        value=0.9,
        queries=(),
        observations=None,
        monitoring=None,
        retrain_history=None,
        writes=(PATCH,),  # the spec edit's observedGeneration
    ),
]


def _given(case: Case) -> FakeKube:
    kube = seeded(deployment(**case.spec), model_version(1), *case.objects)
    if case.serving:
        serve(kube)
    edit_spec(retraining=case.policy)(kube)
    extra: Obj = {}
    if case.drift:
        extra["drift"] = list(case.drift)
    if case.history:
        extra["retrainHistory"] = list(case.history)
    if extra:
        set_status(**extra)(kube)
    kube.writes.clear()
    return kube


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_evaluate_retraining(case: Case) -> None:
    kube = _given(case)
    prometheus = Answers(case.value, **case.by_query)

    outcome = run(kube, prometheus=prometheus, config=case.config)

    status = deployment_status(kube)
    found = conditions_of(status)
    assert prometheus.queries == list(case.queries)
    assert status.get("drift") == (
        list(case.observations) if case.observations is not None else None
    )
    assert found.get("DriftMonitoring") == case.monitoring
    if case.monitoring is not None:
        assert message_of(status, "DriftMonitoring") == case.monitoring_message
    retraining_condition = found.get("Retraining")
    if case.retraining is None:
        assert retraining_condition is None
    else:
        assert (*retraining_condition, message_of(status, "Retraining")) == case.retraining  # type: ignore[misc]
    assert status.get("retrainHistory") == (
        list(case.retrain_history) if case.retrain_history is not None else None
    )
    assert [repr(w) for w in kube.writes] == list(case.writes)
    assert events(outcome) == list(case.events)
    if case.serving:  # retraining never disturbs serving
        assert found["Ready"] == ("True", "Serving")
        assert outcome.phase == "Serving"


def test_an_outage_stays_named_between_readings() -> None:
    """Found by tests/faults (test_prometheus_outage_while_a_trigger_fires): a pass in
    which no trigger was due said "Prometheus queries succeed", so during an outage
    DriftMonitoring flipped False/True with every reconcile, and a write each time."""
    kube = seeded(deployment(), model_version(1))
    serve(kube)
    edit_spec(retraining=retraining(interval="30s"))(kube)
    kube.writes.clear()
    down = PrometheusError("PrometheusUnreachable", "connection refused")
    run(kube, prometheus=Answers(down))
    assert conditions_of(deployment_status(kube))["DriftMonitoring"] == (
        "False",
        "PrometheusUnreachable",
    )
    written = len(kube.writes)

    prometheus = Answers(0.05)
    run(kube, now=later(10), prometheus=prometheus)  # no trigger due: nothing is read
    assert prometheus.queries == []
    status = deployment_status(kube)
    assert conditions_of(status)["DriftMonitoring"] == ("False", "PrometheusUnreachable")
    assert message_of(status, "DriftMonitoring") == "connection refused"
    assert len(kube.writes) == written

    run(kube, now=later(30), prometheus=prometheus)  # due: read, and it succeeds
    assert conditions_of(deployment_status(kube))["DriftMonitoring"] == ("True", "Observed")


def test_the_retraining_run_comes_from_the_template() -> None:
    kube = _given(FIRES)
    run(kube, prometheus=Answers(0.3))
    created = next(w.body for w in kube.writes if w.verb == "create")
    meta = created["metadata"]
    assert meta["name"] == RUN
    assert meta["labels"]["driftloop.dev/deployment"] == "iris"
    assert meta["labels"]["driftloop.dev/trigger"] == "drift"
    assert meta["labels"]["driftloop.dev/model"] == "iris"
    assert [(r["kind"], r["name"], r["uid"]) for r in meta["ownerReferences"]] == [
        ("Deployment", "iris", "iris-uid")
    ]
    assert created["spec"]["model"] == "iris"
    assert created["spec"]["datasetRef"] == {"name": "iris"}
    assert created["spec"]["estimator"]["type"] == "RandomForestClassifier"


def test_a_retry_within_the_window_finds_the_run_instead_of_starting_another() -> None:
    """Fires, then fires again within the same window: one run, one event, one status write."""
    kube = seeded(deployment(), model_version(1))
    serve(kube)
    edit_spec(retraining=retraining(interval="0s", maxConcurrent=3, cooldown="0s"))(kube)
    set_status(drift=[FIRING])(kube)
    kube.writes.clear()

    first = run(kube, prometheus=Answers(0.3))
    # cooldown 0s: windows of one second.
    name = f"iris-drift-{int(NOW.timestamp())}"
    assert [repr(w) for w in kube.writes] == [f"create TrainingRun/{name}", PATCH]
    assert [e.reason for e in first.events] == ["RetrainingStarted"]

    prometheus = Answers(0.3)
    again = run(kube, now=NOW.replace(microsecond=500_000), prometheus=prometheus)
    assert len(prometheus.queries) == 1  # due again and firing again
    assert again.events == []
    assert [repr(w) for w in kube.writes] == [f"create TrainingRun/{name}", PATCH]
    assert [r["trainingRun"] for r in deployment_status(kube)["retrainHistory"]] == [name]


def test_a_run_whose_record_was_lost_is_recorded_from_the_run_itself() -> None:
    """The reconcile that created the run failed to write its status (a conflict, a crash).
    The retry is refused by the cooldown, so the history comes from the run: its trigger
    label and creation time; the value that fired it went with the lost write."""
    kube = seeded(deployment(), model_version(1))
    serve(kube)
    edit_spec(retraining=retraining(interval="1m", cooldown="30m"))(kube)
    set_status(drift=[FIRING])(kube)
    lost = training_run(RUN, later(-5))
    lost["metadata"]["labels"]["driftloop.dev/trigger"] = "drift"
    kube.add(lost)
    kube.add(training_run("manual", later(-3), labelled=False))  # no trigger: not retraining
    kube.writes.clear()

    run(kube, prometheus=Answers(0.3))
    assert deployment_status(kube)["retrainHistory"] == [
        {"trainingRun": RUN, "trigger": "drift", "value": None, "time": text(later(-5))}
    ]
    assert [repr(w) for w in kube.writes] == [PATCH]  # no second run: the cooldown holds
