"""What the runtime would refuse is refused at admission: the models and the CRDs.

The cluster suite (tests/cluster/test_admission.py) applies the same table to a
real API server.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from driftloop import api
from driftloop.codegen import crds as crdgen
from driftloop_testkit.refusals import (
    ADMISSION_REFUSALS,
    GATES_COMPUTED,
    GATES_OF_TASK,
    METRICS_OF_TASK,
    AdmissionRefusal,
)

SPEC_MODELS: dict[str, type[BaseModel]] = {k.kind: k.spec for k in api.ALL_KINDS}
CRDS = {k.kind: crdgen.crd_for(k) for k in api.ALL_KINDS}


def _spec_schema(kind: str) -> dict[str, Any]:
    root = CRDS[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return root["properties"]["spec"]  # type: ignore[no-any-return]


def _at(schema: dict[str, Any], *path: str) -> dict[str, Any]:
    for key in path:
        schema = schema["items"] if key == "[]" else schema["properties"][key]
    return schema


@pytest.mark.parametrize("case", ADMISSION_REFUSALS, ids=[c.name for c in ADMISSION_REFUSALS])
def test_the_model_refuses_it(case: AdmissionRefusal) -> None:
    with pytest.raises(ValidationError) as error:
        SPEC_MODELS[case.kind].model_validate(case.manifest["spec"])
    assert case.model in str(error.value)


@pytest.mark.parametrize("case", ADMISSION_REFUSALS, ids=[c.name for c in ADMISSION_REFUSALS])
def test_the_same_object_with_the_defect_put_right_is_accepted(case: AdmissionRefusal) -> None:
    """Each case fails for its defect alone."""
    assert case.fixed["kind"] == case.kind
    SPEC_MODELS[case.kind].model_validate(case.fixed["spec"])


@pytest.mark.parametrize(
    ("kind", "path"),
    [
        ("TrainingRun", ("estimator", "hyperparameters")),
        ("Deployment", ("retraining", "template", "estimator", "hyperparameters")),
        ("ModelVersion", ("lineage", "hyperparameters")),
    ],
)
def test_hyperparameter_values_may_not_be_lists_or_maps(kind: str, path: tuple[str, ...]) -> None:
    """CEL cannot see a value of no single type, so the schema itself refuses items."""
    values = _at(_spec_schema(kind), *path)["additionalProperties"]
    assert values == {
        "x-kubernetes-preserve-unknown-fields": True,
        "maxProperties": 0,
        "maxItems": 0,
    }


def _messages(schema: dict[str, Any]) -> list[str]:
    return [rule["message"] for rule in schema.get("x-kubernetes-validations", [])]


@pytest.mark.parametrize(
    ("kind", "path"), [("TrainingRun", ()), ("Deployment", ("retraining", "template"))]
)
def test_metrics_and_gates_must_fit_the_estimators_task(kind: str, path: tuple[str, ...]) -> None:
    messages = _messages(_at(_spec_schema(kind), *path))
    for expected in (METRICS_OF_TASK, GATES_OF_TASK, GATES_COMPUTED):
        assert any(m.startswith(expected) for m in messages), (expected, messages)


def test_gates_name_at_most_every_metric_once() -> None:
    """Bounded, so the API server accepts the CEL rules' cost."""
    gates = _at(_spec_schema("TrainingRun"), "evaluation", "minScores")
    assert gates["maxProperties"] == 6


def test_dataset_task_and_allowed_values() -> None:
    spec = _spec_schema("Dataset")
    assert spec["properties"]["task"]["enum"] == ["classification", "regression"]
    assert _at(spec, "features", "[]", "allowedValues")["minItems"] == 1


@pytest.mark.parametrize(
    ("estimator", "evaluation"),
    [
        ("RandomForestClassifier", {"metrics": ["accuracy", "f1", "roc_auc"]}),
        ("Ridge", {"metrics": ["r2", "rmse"], "minScores": {"rmse": 60.0}}),
        ("LogisticRegression", {"minScores": {"roc_auc": 0.8}}),
    ],
)
def test_metrics_and_gates_of_the_task_are_accepted(
    estimator: str, evaluation: dict[str, Any]
) -> None:
    api.TrainingRunSpec.model_validate(
        {
            "model": "m",
            "datasetRef": {"name": "d"},
            "estimator": {"type": estimator},
            "evaluation": evaluation,
        }
    )
