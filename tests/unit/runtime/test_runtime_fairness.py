"""Per-group evaluation and fairness gates: proven on data with a known disparity.

``groups_csv(gap)`` makes a binary task whose group A scores ``gap`` higher than
group B: gap 2 gives a selection-rate gap of about 0.6 (biased), gap 0 none (fair).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import driftloop_contract as contract
from driftloop_runtime import data, fairness
from driftloop_runtime.errors import ValidationFailedError
from driftloop_runtime.train import train
from driftloop_testkit.data import GROUPS_FEATURES, GROUPS_TARGET, groups_csv

#: Rows of the generated data: 400 held-out rows per group keep the sampling noise of a
#: selection rate near 0.025, far below the gates' 0.2.
ROWS = 4000


def _request(tmp_path: Path, gap: float, gates: dict[str, Any], **dataset: Any) -> dict[str, Any]:
    source = tmp_path / f"groups-{gap}.csv"
    source.write_text(groups_csv(gap, rows=ROWS))
    return {
        "modelName": "loans",
        "dataset": {
            "source": str(source),
            "features": [{"name": f} for f in GROUPS_FEATURES],
            "target": GROUPS_TARGET,
            "sensitiveFeatures": [{"name": "group"}, {"name": "age", "bins": [30, 50]}],
            **dataset,
        },
        "estimator": "LogisticRegression",
        "evaluation": {"fairness": gates},
        "outputDir": str(tmp_path / "out"),
    }


@pytest.mark.parametrize(
    ("gap", "gates", "failed"),
    [
        (2.0, {"maxDemographicParityDifference": 0.2}, ["group: demographicParityDifference"]),
        (2.0, {"minDemographicParityRatio": 0.8}, ["group: demographicParityRatio"]),
        (0.0, {"maxDemographicParityDifference": 0.2, "minDemographicParityRatio": 0.6}, []),
        (0.0, {"maxEqualizedOddsDifference": 0.2, "maxMetricDifference": {"accuracy": 0.1}}, []),
    ],
)
def test_a_gate_fails_on_biased_data_for_the_biased_feature_only(
    tmp_path: Path, gap: float, gates: dict[str, Any], failed: list[str]
) -> None:
    result = train(contract.TrainRequest.model_validate(_request(tmp_path, gap, gates)))
    assert result.ok
    by_feature = {f.feature: f for f in result.fairness}
    assert set(by_feature) == {"group", "age"}
    lines = [line for f in result.fairness for line in f.failed_gates]
    assert [line.split(" ", 2)[0] + " " + line.split(" ", 2)[1] for line in lines] == failed
    assert result.gates_passed is (not failed)
    assert result.failed_gates == []  # the minScores gates: none asked for
    group = by_feature["group"]
    assert group.positive_class == "yes"
    assert {g.group for g in group.groups} == {"A", "B"}
    rates = {g.group: g.metrics[contract.SELECTION_RATE] for g in group.groups}
    spread = group.disparities[contract.DEMOGRAPHIC_PARITY_DIFFERENCE]
    assert spread == pytest.approx(abs(rates["A"] - rates["B"]), abs=1e-3)
    if failed:  # the message names the groups and their rates, highest first
        assert "(A 0." in lines[0]
        assert ", B 0." in lines[0]
        assert spread > 0.4
    else:
        assert spread < 0.1
    # The independent age bins are never the reason.
    assert not by_feature["age"].failed_gates
    assert {g.group for g in by_feature["age"].groups} == {"<30", "[30, 50)", ">=50"}


def test_the_full_report_is_an_artifact_and_the_group_column_is_not_an_input(
    tmp_path: Path,
) -> None:
    request = _request(tmp_path, 2.0, {"maxDemographicParityDifference": 0.2})
    result = train(contract.TrainRequest.model_validate(request))
    out = tmp_path / "out"
    report = json.loads((out / contract.FAIRNESS_FILE).read_text())
    assert [f["feature"] for f in report] == ["group", "age"]
    manifest = json.loads((out / contract.MANIFEST_FILE).read_text())
    assert contract.FAIRNESS_FILE in manifest["files"]  # digested like the model
    assert [f["name"] for f in manifest["features"]] == GROUPS_FEATURES
    assert manifest["result"]["fairness"] == [
        f.model_dump(mode="json", by_alias=True, exclude_none=True) for f in result.fairness
    ]


def test_a_missing_sensitive_column_fails_validation_with_its_name(tmp_path: Path) -> None:
    import pandas as pd

    spec = contract.DatasetSpec.model_validate(
        {
            "source": "/x.csv",
            "features": [{"name": "score"}],
            "target": GROUPS_TARGET,
            "sensitiveFeatures": [{"name": "sex"}],
        }
    )
    frame = pd.DataFrame({"score": [1.0, 2.0], GROUPS_TARGET: ["yes", "no"]})
    with pytest.raises(ValidationFailedError) as error:
        data.validate(spec, frame)
    assert (error.value.rule, error.value.column) == (contract.ValidationRule.missing_column, "sex")
    assert "sensitive feature column 'sex' is not in the data" in str(error.value)


def test_a_binned_sensitive_column_must_be_numeric() -> None:
    import pandas as pd

    spec = contract.DatasetSpec.model_validate(
        {
            "source": "/x.csv",
            "features": [{"name": "score"}],
            "target": GROUPS_TARGET,
            "sensitiveFeatures": [{"name": "age", "bins": [30]}],
        }
    )
    frame = pd.DataFrame({"score": [1.0, 2.0], "age": ["old", 3], GROUPS_TARGET: ["yes", "no"]})
    with pytest.raises(ValidationFailedError) as error:
        data.validate(spec, frame)
    assert (error.value.rule, error.value.column) == (contract.ValidationRule.numeric_type, "age")


@pytest.mark.parametrize(
    ("values", "bins", "labels"),
    [
        (["a", "b", None], None, ["a", "b", contract.MISSING_GROUP]),
        ([1, 2, 1], None, ["1", "2", "1"]),
        ([10.0, 30.0, 49.9, 50.0, None], [30, 50], ["<30", "[30, 50)", "[30, 50)", ">=50"]),
        ([0.5, 2.5], [1.5], ["<1.5", ">=1.5"]),
    ],
)
def test_group_labels(values: list[Any], bins: list[float] | None, labels: list[str]) -> None:
    feature = contract.SensitiveFeature(name="x", bins=bins)
    got = list(fairness.group_labels(values, feature))
    if bins is not None and None in values:
        labels = [*labels, contract.MISSING_GROUP]
    assert got == labels


def _evaluate(
    task: contract.Task,
    y_true: Any,
    y_pred: Any,
    groups: list[str],
    classes: list[str] | None,
    **gates: Any,
) -> contract.FeatureFairness:
    import pandas as pd

    (report,) = fairness.evaluate(
        task,
        np.asarray(y_true),
        np.asarray(y_pred),
        {"g": pd.Categorical(groups)},
        [],
        contract.FairnessGates.model_validate(gates),
        classes,
    )
    return report


def test_regression_gates_the_spread_of_the_error_metric() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(0, 1, 400)
    noise = np.where(np.arange(400) < 200, 0.1, 1.0)  # group B's errors are 10x larger
    pred = y + rng.normal(0, 1, 400) * noise
    groups = ["A"] * 200 + ["B"] * 200
    report = _evaluate(
        contract.Task.regression, y, pred, groups, None, maxMetricDifference={"mae": 0.3}
    )
    mae = {g.group: g.metrics["mae"] for g in report.groups}
    assert report.disparities["maeDifference"] == pytest.approx(mae["B"] - mae["A"], abs=1e-3)
    assert report.failed_gates
    assert report.failed_gates[0].startswith("g: maeDifference 0.")
    assert "> max 0.3 (B " in report.failed_gates[0]
    fair = _evaluate(
        contract.Task.regression, y, y + 0.01, groups, None, maxMetricDifference={"mae": 0.3}
    )
    assert fair.failed_gates == []


def _with_small_group(min_group_size: int) -> contract.FeatureFairness:
    """Groups A and B of 50 rows at parity; group C, 5 rows, is never selected."""
    return _evaluate(
        contract.Task.classification,
        ["1", "0"] * 50 + ["1"] * 5,
        ["1", "0"] * 50 + ["0"] * 5,
        ["A"] * 50 + ["B"] * 50 + ["C"] * 5,
        ["0", "1"],
        maxDemographicParityDifference=0.1,
        minGroupSize=min_group_size,
    )


def test_small_groups_are_reported_but_not_gated() -> None:
    report = _with_small_group(30)
    assert [(g.group, g.size, g.gated) for g in report.groups] == [
        ("A", 50, True),
        ("B", 50, True),
        ("C", 5, False),
    ]
    assert report.groups[2].metrics[contract.SELECTION_RATE] == 0.0
    assert report.disparities[contract.DEMOGRAPHIC_PARITY_DIFFERENCE] == 0.0
    assert report.failed_gates == []
    # One gated group is no comparison: a gate asked for fails rather than passes.
    alone = _with_small_group(51)
    assert alone.disparities == {}
    assert alone.failed_gates == [
        "g: demographicParityDifference: not computed (needs two groups of at least "
        "minGroupSize rows)"
    ]


def test_multiclass_parity_is_the_worst_class_one_vs_rest() -> None:
    # Class "c" is predicted for every B row and no A row; "a" and "b" split A evenly.
    y_true = ["a", "b"] * 50 + ["c"] * 100
    y_pred = ["a", "b"] * 50 + ["c"] * 100
    groups = ["A"] * 100 + ["B"] * 100
    report = _evaluate(
        contract.Task.classification,
        y_true,
        y_pred,
        groups,
        ["a", "b", "c"],
        maxDemographicParityDifference=0.5,
    )
    assert report.positive_class is None
    assert report.disparities[contract.DEMOGRAPHIC_PARITY_DIFFERENCE] == 1.0
    assert report.failed_gates == [
        "g: demographicParityDifference 1 > max 0.5 (class 'c' vs rest: B 1, A 0)"
    ]


def test_a_large_report_is_bounded_to_the_termination_message() -> None:
    many = [
        contract.GroupMetrics(
            group=f"{'x' * 40}{i}", size=100 - i, gated=True, metrics={"accuracy": 0.5, "f1": 0.5}
        )
        for i in range(contract.MAX_REPORTED_GROUPS)
    ]
    features = [
        contract.FeatureFairness(
            feature=f"feature{n}",
            groups=many,
            disparities={contract.DEMOGRAPHIC_PARITY_DIFFERENCE: 0.5},
            failed_gates=[f"feature{n}: demographicParityDifference 0.5 > max 0.1 (a 1, b 0.5)"],
        )
        for n in range(4)
    ]
    result = contract.TrainResult(ok=True, metrics={"accuracy": 0.9}, fairness=features)
    text = contract.dump_result(result)
    assert len(text.encode()) <= contract.TERMINATION_MESSAGE_LIMIT
    back = contract.TrainResult.model_validate_json(text)
    for feature in back.fairness:  # groups folded into counts; gates and disparities kept
        assert feature.other_groups + len(feature.groups) == contract.MAX_REPORTED_GROUPS
        assert feature.other_rows + sum(g.size for g in feature.groups) == sum(g.size for g in many)
        assert feature.failed_gates
        assert feature.disparities
