"""Specs the runtime would refuse, which admission refuses instead.

One table for two suites: the unit tests check that the models refuse each spec and
that the generated CRDs carry the constraint; the cluster test applies each to the
real API server and checks it is refused with the message named here.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from driftloop_testkit.data import (
    dataset_manifest,
    deployment_manifest,
    model_version_manifest,
    training_run_manifest,
    training_template,
)

#: What the API server says for a list or map with items where only a scalar may go.
NOT_A_SCALAR = "must have at most 0 items"
#: The CEL messages (the rules in driftloop.api.trainingrun).
METRICS_OF_TASK = "evaluation.metrics must be metrics of the estimator's task"
GATES_OF_TASK = "evaluation.minScores keys must be metrics of the estimator's task"
GATES_COMPUTED = "evaluation.minScores keys must be among evaluation.metrics"
#: The CEL messages of driftloop.api.deployment.
WINDOW_TOO_SMALL = "psi, jensen_shannon and chi2 need at least 100 rows"
QUERY_WITHOUT_THRESHOLD = "a trigger with a query needs a threshold"


@dataclass(frozen=True)
class AdmissionRefusal:
    name: str
    manifest: dict[str, Any]
    #: The same object with the defect put right: admitted.
    fixed: dict[str, Any]
    #: Texts the API server's refusal contains (field path and message).
    server: tuple[str, ...]
    #: A text the pydantic model's refusal contains.
    model: str

    @property
    def kind(self) -> str:
        return str(self.manifest["kind"])


def _run(hyperparameters: Any = None, **spec: Any) -> dict[str, Any]:
    manifest = training_run_manifest("refused", "iris")
    manifest["spec"].update(copy.deepcopy(spec))
    if hyperparameters is not None:
        manifest["spec"]["estimator"]["hyperparameters"] = hyperparameters
    return manifest


def _retraining(hyperparameters: Any = None, **template: Any) -> dict[str, Any]:
    spec = {**training_template(), **copy.deepcopy(template)}
    if hyperparameters is not None:
        spec["estimator"] = {**spec["estimator"], "hyperparameters": hyperparameters}
    return deployment_manifest(
        "refused",
        "iris",
        retraining={"template": spec, "triggers": [{"name": "drift", "threshold": 0.2}]},
    )


def _canary(weights: list[int], **promotion: Any) -> dict[str, Any]:
    steps = [{"weight": w, "pause": "10s"} for w in weights]
    return deployment_manifest(
        "refused",
        "iris",
        promotion={"strategy": "canary", "steps": steps, **copy.deepcopy(promotion)},
    )


#: The canary rules (driftloop.api.deployment.Promotion).
STEPS_INCREASING = "spec.promotion.steps: weights must be strictly increasing"
CANARY_NEEDS_STEPS = "spec.promotion: strategy canary needs at least one step"
POST_PROMOTION_NEEDS_ANALYSIS = "spec.promotion.postPromotion needs spec.promotion.analysis"
ANALYSIS = {"metrics": [{"name": "errors", "query": "vector(0)", "threshold": 0.1}]}


def _scheduled(**retraining: Any) -> dict[str, Any]:
    """A Deployment retraining on a schedule (and the default drift trigger)."""
    return deployment_manifest(
        "refused", "iris", retraining={"template": training_template(), **retraining}
    )


#: The CEL messages of the schedule's rules (driftloop.api.deployment).
TIME_ZONE_NEEDS_SCHEDULE = "spec.retraining.timeZone needs spec.retraining.schedule"
DEADLINE_NEEDS_SCHEDULE = "spec.retraining.startingDeadline needs spec.retraining.schedule"
RESERVED_TRIGGER = "the names 'schedule' and 'manual' are reserved"
SHADOW_NEEDS_STRATEGY = "spec.promotion.shadow needs spec.promotion.strategy: shadow"


def _dataset(**spec: Any) -> dict[str, Any]:
    manifest = dataset_manifest("refused", "/artifacts/data/iris.csv")
    manifest["spec"].update(copy.deepcopy(spec))
    return manifest


def _categorical(allowed: list[str]) -> dict[str, Any]:
    return _dataset(
        features=[
            {"name": "sepal_length"},
            {"name": "kind", "type": "categorical", "allowedValues": allowed},
        ]
    )


def _artifact(uri: str) -> dict[str, Any]:
    manifest = model_version_manifest("refused-v1", model="refused")
    manifest["spec"]["artifact"]["uri"] = uri
    return manifest


def _monitoring(monitoring: dict[str, Any], **trigger: Any) -> dict[str, Any]:
    return deployment_manifest(
        "refused",
        "iris",
        monitoring=monitoring,
        retraining={"template": training_template(), "triggers": [{"name": "drift", **trigger}]},
    )


#: The CEL messages of the fairness rules (driftloop.api.dataset, .trainingrun).
USE_AS_INPUT = (
    "spec.sensitiveFeatures[].useAsInput must be true exactly when the column is also "
    "listed in spec.features"
)
SENSITIVE_TARGET = "spec.target must not also be listed in spec.sensitiveFeatures"
BINS_INCREASING = "spec.sensitiveFeatures[].bins must be strictly increasing"
CLASSIFIER_FAIRNESS = (
    "evaluation.fairness: maxDemographicParityDifference, minDemographicParityRatio and "
    "maxEqualizedOddsDifference apply to classifiers only"
)
SPREAD_OF_TASK = "evaluation.fairness.maxMetricDifference keys must be metrics of the"

#: What the API server says when a pattern does not match.
PATTERN = "should match"

ADMISSION_REFUSALS = [
    AdmissionRefusal(
        "a hyperparameter value that is a map",
        _run({"class_weight": {"setosa": 2}}),
        _run({"class_weight": "balanced"}),
        ("spec.estimator.hyperparameters.class_weight", NOT_A_SCALAR),
        "estimator.hyperparameters.class_weight",
    ),
    AdmissionRefusal(
        "a hyperparameter value that is a list",
        _run({"monotonic_cst": [1, 0, -1, 0]}),
        _run({"max_depth": None, "bootstrap": False, "max_features": 0.5}),
        ("spec.estimator.hyperparameters.monotonic_cst", NOT_A_SCALAR),
        "estimator.hyperparameters.monotonic_cst",
    ),
    AdmissionRefusal(
        "a hyperparameter value that is a list, in a Deployment's retraining template",
        _retraining({"max_depth": [3, 5]}),
        _retraining({"max_depth": 3}),
        ("spec.retraining.template.estimator.hyperparameters.max_depth", NOT_A_SCALAR),
        "retraining.template.estimator.hyperparameters.max_depth",
    ),
    AdmissionRefusal(
        "a regression metric for a classifier",
        _run(evaluation={"metrics": ["r2"]}),
        _run(evaluation={"metrics": ["accuracy"]}),
        (METRICS_OF_TASK,),
        METRICS_OF_TASK,
    ),
    AdmissionRefusal(
        "a classification gate for a regressor",
        _run(estimator={"type": "Ridge"}, evaluation={"minScores": {"accuracy": 0.9}}),
        _run(estimator={"type": "Ridge"}, evaluation={"minScores": {"r2": 0.9}}),
        (GATES_OF_TASK,),
        GATES_OF_TASK,
    ),
    AdmissionRefusal(
        "a gate on a metric not computed",
        _run(evaluation={"metrics": ["accuracy"], "minScores": {"f1": 0.5}}),
        _run(evaluation={"metrics": ["accuracy", "f1"], "minScores": {"f1": 0.5}}),
        (GATES_COMPUTED,),
        GATES_COMPUTED,
    ),
    AdmissionRefusal(
        "a gate of the wrong task in a Deployment's retraining template",
        _retraining(evaluation={"minScores": {"rmse": 0.5}}),
        _retraining(evaluation={"minScores": {"f1": 0.5}}),
        (GATES_OF_TASK,),
        GATES_OF_TASK,
    ),
    AdmissionRefusal(
        "a schedule of four cron fields",
        _scheduled(schedule="0 3 * *"),
        _scheduled(schedule="0 3 * * *"),
        ("spec.retraining.schedule", PATTERN),
        "retraining.schedule",
    ),
    AdmissionRefusal(
        "a schedule with a time zone prefix (timeZone is the field for it)",
        _scheduled(schedule="CRON_TZ=UTC 0 3 * * *"),
        _scheduled(schedule="0 3 * * *", timeZone="UTC"),
        ("spec.retraining.schedule", PATTERN),
        "retraining.schedule",
    ),
    AdmissionRefusal(
        "a macro cron does not have",
        _scheduled(schedule="@every 5m"),
        _scheduled(schedule="@hourly"),
        ("spec.retraining.schedule", PATTERN),
        "retraining.schedule",
    ),
    AdmissionRefusal(
        "a time zone that is not a zone name",
        _scheduled(schedule="0 3 * * *", timeZone="Europe/Berlin; rm"),
        _scheduled(schedule="0 3 * * *", timeZone="Europe/Berlin"),
        ("spec.retraining.timeZone", PATTERN),
        "retraining.timeZone",
    ),
    AdmissionRefusal(
        "a time zone without a schedule",
        _scheduled(timeZone="Europe/Berlin"),
        _scheduled(timeZone="Europe/Berlin", schedule="@daily"),
        (TIME_ZONE_NEEDS_SCHEDULE,),
        TIME_ZONE_NEEDS_SCHEDULE,
    ),
    AdmissionRefusal(
        "a starting deadline without a schedule",
        _scheduled(startingDeadline="5m"),
        _scheduled(startingDeadline="5m", schedule="*/10 * * * *"),
        (DEADLINE_NEEDS_SCHEDULE,),
        DEADLINE_NEEDS_SCHEDULE,
    ),
    AdmissionRefusal(
        "a trigger named as the schedule's runs",
        _scheduled(triggers=[{"name": "schedule", "threshold": 0.2}]),
        _scheduled(triggers=[{"name": "drift", "threshold": 0.2}]),
        (RESERVED_TRIGGER,),
        RESERVED_TRIGGER,
    ),
    AdmissionRefusal(
        "a shadow analysis without the shadow strategy",
        deployment_manifest("refused", "iris", promotion={"shadow": {"window": "1m"}}),
        deployment_manifest(
            "refused", "iris", promotion={"strategy": "shadow", "shadow": {"window": "1m"}}
        ),
        (SHADOW_NEEDS_STRATEGY,),
        SHADOW_NEEDS_STRATEGY,
    ),
    AdmissionRefusal(
        "an empty allowedValues list",
        _categorical([]),
        _categorical(["a", "b"]),
        ("spec.features[1].allowedValues", "should have at least 1 items"),
        "allowedValues",
    ),
    AdmissionRefusal(
        "a task that is not one",
        _dataset(task="clustering"),
        _dataset(task="regression"),
        ("spec.task", 'Unsupported value: "clustering"'),
        "task",
    ),
    AdmissionRefusal(
        "an s3 source without a key",
        _dataset(source="s3://datasets"),
        _dataset(source="s3://datasets/iris.csv"),
        ("spec.source", PATTERN),
        "source",
    ),
    AdmissionRefusal(
        "an s3 source without a bucket",
        _dataset(source="s3:///iris.csv"),
        _dataset(source="s3://d/iris.csv"),
        ("spec.source", PATTERN),
        "source",
    ),
    AdmissionRefusal(
        "an http source without a host",
        _dataset(source="https:///iris.csv"),
        _dataset(source="https://example.com/iris.csv"),
        ("spec.source", PATTERN),
        "source",
    ),
    AdmissionRefusal(
        "a file source without a path",
        _dataset(source="file://iris.csv"),
        _dataset(source="file:///artifacts/iris.csv"),
        ("spec.source", PATTERN),
        "source",
    ),
    AdmissionRefusal(
        "a relative artifact path",
        _artifact("file://models/iris/v1"),
        _artifact("file:///artifacts/models/iris/v1"),
        ("spec.artifact.uri", PATTERN),
        "artifact.uri",
    ),
    AdmissionRefusal(
        "an artifact in no bucket",
        _artifact("s3://"),
        _artifact("s3://models/iris/v1"),
        ("spec.artifact.uri", PATTERN),
        "artifact.uri",
    ),
    AdmissionRefusal(
        "canary weights that do not rise",
        _canary([20, 50, 50]),
        _canary([20, 50, 80]),
        ("spec.promotion", STEPS_INCREASING),
        STEPS_INCREASING,
    ),
    AdmissionRefusal(
        "canary weights that fall",
        _canary([50, 20]),
        _canary([20, 50]),
        ("spec.promotion", STEPS_INCREASING),
        STEPS_INCREASING,
    ),
    AdmissionRefusal(
        "a canary weight above 100",
        _canary([50, 150]),
        _canary([50, 100]),
        ("spec.promotion.steps[1].weight", "should be less than or equal to 100"),
        "weight",
    ),
    AdmissionRefusal(
        "a canary weight of 0",
        _canary([0, 50]),
        _canary([10, 50]),
        ("spec.promotion.steps[0].weight", "should be greater than or equal to 1"),
        "weight",
    ),
    AdmissionRefusal(
        "a canary without steps",
        _canary([]),
        _canary([50]),
        ("spec.promotion", CANARY_NEEDS_STEPS),
        CANARY_NEEDS_STEPS,
    ),
    AdmissionRefusal(
        "a post-promotion window without analysis",
        _canary([50], postPromotion={"window": "1m"}),
        _canary([50], postPromotion={"window": "1m"}, analysis=ANALYSIS),
        ("spec.promotion", POST_PROMOTION_NEEDS_ANALYSIS),
        POST_PROMOTION_NEEDS_ANALYSIS,
    ),
    AdmissionRefusal(
        "an analysis operator that is not one",
        _canary(
            [50],
            analysis={"metrics": [{"name": "e", "query": "x", "operator": "!=", "threshold": 1}]},
        ),
        _canary(
            [50],
            analysis={"metrics": [{"name": "e", "query": "x", "operator": "<=", "threshold": 1}]},
        ),
        ("spec.promotion.analysis.metrics[0].operator", 'Unsupported value: "!="'),
        "operator",
    ),
    AdmissionRefusal(
        "a canary with autoscaling",
        {
            **_canary([50]),
            "spec": {**_canary([50])["spec"], "autoscaling": {"maxReplicas": 3}},
        },
        {
            **_canary([50]),
            "spec": {
                **_canary([50])["spec"],
                "autoscaling": {"maxReplicas": 3},
                "promotion": {"strategy": "rolling"},
            },
        },
        ("spec", "spec.promotion.strategy canary splits fixed replicas: not with autoscaling"),
        "not with autoscaling",
    ),
    AdmissionRefusal(
        "a PSI window too small for its ten bins",
        _monitoring({"method": "psi", "window": 60}),
        _monitoring({"method": "ks", "window": 60}),
        ("spec.monitoring", WINDOW_TOO_SMALL),
        WINDOW_TOO_SMALL,
    ),
    AdmissionRefusal(
        "a chi2 window too small for its ten bins",
        _monitoring({"method": "chi2", "window": 99}),
        _monitoring({"method": "chi2", "window": 100}),
        ("spec.monitoring", WINDOW_TOO_SMALL),
        WINDOW_TOO_SMALL,
    ),
    AdmissionRefusal(
        "a drift row budget below 100 rows a second",
        _monitoring({"maxRowsPerSecond": 10}),
        _monitoring({"maxRowsPerSecond": 100}),
        ("spec.monitoring.maxRowsPerSecond", "should be greater than or equal to 100"),
        "maxRowsPerSecond",
    ),
    AdmissionRefusal(
        "a trigger with its own query and no threshold",
        _monitoring({}, query="vector(1)"),
        _monitoring({}, query="vector(1)", threshold=0.5),
        ("spec.retraining.triggers[0]", QUERY_WITHOUT_THRESHOLD),
        QUERY_WITHOUT_THRESHOLD,
    ),
    AdmissionRefusal(
        "a pinned dataset version that is not a sha256 digest",
        _run(datasetRef={"name": "iris", "version": "v1"}),
        _run(datasetRef={"name": "iris", "version": "sha256:" + "ab" * 32}),
        ("spec.datasetRef.version", PATTERN),
        "datasetRef.version",
    ),
    AdmissionRefusal(
        "a rerun of a ModelVersion name that is not a name",
        _run(reproduce={"modelVersion": "Iris_v1"}),
        _run(reproduce={"modelVersion": "iris-v1"}),
        ("spec.reproduce.modelVersion", PATTERN),
        "reproduce.modelVersion",
    ),
    AdmissionRefusal(
        "a sample of fewer than two rows",
        _run(sampling={"maxRows": 1}),
        _run(sampling={"maxRows": 100000, "stratified": False}),
        ("spec.sampling.maxRows", "should be greater than or equal to 2"),
        "sampling.maxRows",
    ),
    AdmissionRefusal(
        "a sensitive feature listed as an input without useAsInput",
        _dataset(sensitiveFeatures=[{"name": "sepal_length"}]),
        _dataset(sensitiveFeatures=[{"name": "sepal_length", "useAsInput": True}]),
        (USE_AS_INPUT,),
        USE_AS_INPUT,
    ),
    AdmissionRefusal(
        "a sensitive feature with useAsInput that is not an input",
        _dataset(sensitiveFeatures=[{"name": "sex", "useAsInput": True}]),
        _dataset(sensitiveFeatures=[{"name": "sex"}]),
        (USE_AS_INPUT,),
        USE_AS_INPUT,
    ),
    AdmissionRefusal(
        "the target as a sensitive feature",
        _dataset(sensitiveFeatures=[{"name": "species"}]),
        _dataset(sensitiveFeatures=[{"name": "region"}]),
        (SENSITIVE_TARGET,),
        SENSITIVE_TARGET,
    ),
    AdmissionRefusal(
        "sensitive bins that do not increase",
        _dataset(sensitiveFeatures=[{"name": "age", "bins": [50, 30]}]),
        _dataset(sensitiveFeatures=[{"name": "age", "bins": [30, 50]}]),
        (BINS_INCREASING,),
        BINS_INCREASING,
    ),
    AdmissionRefusal(
        "a classification fairness gate for a regressor",
        _run(
            estimator={"type": "Ridge"},
            evaluation={"fairness": {"maxDemographicParityDifference": 0.1}},
        ),
        _run(
            estimator={"type": "Ridge"},
            evaluation={"fairness": {"maxMetricDifference": {"mae": 5}}},
        ),
        (CLASSIFIER_FAIRNESS,),
        CLASSIFIER_FAIRNESS,
    ),
    AdmissionRefusal(
        "a fairness spread of a metric of the other task",
        _run(evaluation={"fairness": {"maxMetricDifference": {"mae": 0.1}}}),
        _run(evaluation={"fairness": {"maxMetricDifference": {"accuracy": 0.1}}}),
        (SPREAD_OF_TASK,),
        SPREAD_OF_TASK,
    ),
    AdmissionRefusal(
        "a demographic parity difference above 1",
        _run(evaluation={"fairness": {"maxDemographicParityDifference": 1.5}}),
        _run(evaluation={"fairness": {"maxDemographicParityDifference": 0.1, "minGroupSize": 50}}),
        (
            "spec.evaluation.fairness.maxDemographicParityDifference",
            "should be less than or equal to 1",
        ),
        "evaluation.fairness.maxDemographicParityDifference",
    ),
]
