"""The pydantic models accept the examples and reject bad specs with clear messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

import driftloop_contract as contract
from driftloop import api

EXAMPLES = sorted((Path(__file__).parents[3] / "docs" / "examples").glob("*.yaml"))
SPEC_MODELS: dict[str, type[BaseModel]] = {k.kind: k.spec for k in api.ALL_KINDS}

DATASET: dict[str, Any] = {
    "source": "/artifacts/data/iris.csv",
    "features": [{"name": "a"}, {"name": "b", "type": "categorical", "allowedValues": ["x"]}],
    "target": "y",
}
RUN: dict[str, Any] = {
    "model": "iris",
    "datasetRef": {"name": "iris"},
    "estimator": {"type": "RandomForestClassifier"},
}
DEPLOYMENT: dict[str, Any] = {"model": {"name": "iris", "channel": "latestApproved"}}


def _examples() -> list[dict[str, Any]]:
    docs = [doc for path in EXAMPLES for doc in yaml.safe_load_all(path.read_text()) if doc]
    return [doc for doc in docs if str(doc.get("apiVersion", "")).startswith("driftloop.dev/")]


@pytest.mark.parametrize("doc", _examples(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_examples_round_trip(doc: dict[str, Any]) -> None:
    model = SPEC_MODELS[doc["kind"]].model_validate(doc["spec"])
    again = SPEC_MODELS[doc["kind"]].model_validate(model.model_dump(by_alias=True))
    assert again == model


def test_examples_exist() -> None:
    kinds = {doc["kind"] for doc in _examples()}
    assert {"Dataset", "TrainingRun", "Deployment"} <= kinds


def test_defaults_are_filled() -> None:
    spec = api.DeploymentSpec.model_validate(DEPLOYMENT)
    assert spec.replicas == 1
    assert spec.monitoring.method == "psi"
    assert spec.promotion.mode == "auto"
    assert spec.retraining is None


def test_wire_form_is_camel_case_without_nulls() -> None:
    wire = api.TrainingRunSpec.model_validate(RUN).to_wire()
    assert wire["datasetRef"] == {"name": "iris"}
    assert wire["activeDeadlineSeconds"] == 3600
    assert "image" not in wire


def _with(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``base`` with the dotted ``path`` set to ``value``."""
    doc: dict[str, Any] = yaml.safe_load(yaml.safe_dump(base))
    *parents, leaf = path.split(".")
    node = doc
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return doc


INVALID: list[tuple[str, type[BaseModel], dict[str, Any], str]] = [
    ("negative replicas", api.DeploymentSpec, _with(DEPLOYMENT, "replicas", -1), "replicas"),
    ("empty model name", api.DeploymentSpec, _with(DEPLOYMENT, "model.name", ""), "model.name"),
    (
        "pinned and channel",
        api.DeploymentSpec,
        _with(DEPLOYMENT, "model.version", 3),
        "set either version or channel, not both",
    ),
    (
        "unknown estimator",
        api.TrainingRunSpec,
        _with(RUN, "estimator.type", "TotallyMadeUp"),
        "estimator.type",
    ),
    (
        "unknown gate metric",
        api.TrainingRunSpec,
        _with(RUN, "evaluation.minScores", {"precision": 0.5}),
        "minScores keys must be metric names",
    ),
    ("test size of 1", api.TrainingRunSpec, _with(RUN, "evaluation.testSize", 1.0), "testSize"),
    ("negative backoff", api.TrainingRunSpec, _with(RUN, "backoffLimit", -1), "backoffLimit"),
    ("bad model name", api.TrainingRunSpec, _with(RUN, "model", "Iris_Model"), "model"),
    ("unknown field", api.TrainingRunSpec, _with(RUN, "estimater", {}), "estimater"),
    (
        "min rows above max rows",
        api.DatasetSpec,
        _with(DATASET, "validation", {"minRows": 10, "maxRows": 5}),
        "minRows must not exceed spec.validation.maxRows",
    ),
    (
        "target among features",
        api.DatasetSpec,
        _with(DATASET, "target", "a"),
        "spec.target must not also be listed",
    ),
    (
        "allowed values on numeric",
        api.DatasetSpec,
        _with(DATASET, "features", [{"name": "a", "allowedValues": ["x"]}]),
        "only valid for categorical",
    ),
    ("relative source", api.DatasetSpec, _with(DATASET, "source", "data.csv"), "source"),
    (
        "null ratio above 1",
        api.DatasetSpec,
        _with(DATASET, "validation.maxNullRatio", 2),
        "maxNullRatio",
    ),
    (
        "bad refresh interval",
        api.DatasetSpec,
        _with(DATASET, "refreshInterval", "soon"),
        "refreshInterval",
    ),
    (
        "threshold out of range",
        api.DeploymentSpec,
        _with(
            DEPLOYMENT,
            "retraining",
            {
                "template": {k: v for k, v in RUN.items() if k != "model"},
                "triggers": [{"name": "drift", "threshold": 1e13}],
            },
        ),
        "threshold",
    ),
    (
        "retraining without template",
        api.DeploymentSpec,
        _with(DEPLOYMENT, "retraining", {"triggers": []}),
        "retraining.template",
    ),
]


@pytest.mark.parametrize(
    ("model", "spec", "expected"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid_specs_are_rejected(
    model: type[BaseModel], spec: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ValidationError) as error:
        model.model_validate(spec)
    text = str(error.value)
    assert expected in text, text


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1h30m", 5400), ("250ms", 0.25), ("1.5h", 5400)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert api.parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "5", "m", "1d", "-5s"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        api.parse_duration(text)


def test_dataset_converts_to_the_runtime_contract() -> None:
    spec = api.DatasetSpec.model_validate(
        {**DATASET, "refreshInterval": "1h", "validation": {"minRows": 10, "maxNullRatio": 0.5}}
    )
    dataset = spec.to_contract()
    assert isinstance(dataset, contract.DatasetSpec)
    wire = dataset.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert wire == {
        **DATASET,
        "format": "auto",
        "features": [
            {"name": "a", "type": "numeric"},
            {"name": "b", "type": "categorical", "allowedValues": ["x"]},
        ],
        "sensitiveFeatures": [],
        "validation": {"minRows": 10, "maxNullRatio": 0.5},
    }


def test_evaluation_converts_to_the_runtime_contract() -> None:
    spec = api.TrainingRunSpec.model_validate(
        {**RUN, "evaluation": {"testSize": 0.3, "metrics": ["f1"], "minScores": {"f1": 0.9}}}
    )
    evaluation = spec.evaluation.to_contract()
    assert evaluation == contract.Evaluation(
        test_size=0.3, metrics=[contract.Metric.f1], min_scores={"f1": 0.9}
    )
    # The defaults of both sides agree.
    assert api.Evaluation().to_contract() == contract.Evaluation()
    assert api.DatasetSpec.model_validate(DATASET).to_contract().validation == (
        contract.ValidationRules()
    )
