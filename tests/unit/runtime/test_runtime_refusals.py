"""Data that cannot be trained on is refused by the profile Job, each defect by name.

One case per class of defect of a real file: the rule in the result (which the
operator turns into the Dataset's Ready reason), the column, and a message naming
the line, row or value.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import driftloop_contract as contract
from driftloop_contract import ValidationRule
from driftloop_runtime.errors import ValidationFailedError
from driftloop_runtime.train import run_profile, train
from driftloop_testkit.runtime import RUNTIME

GOOD = b"x,color,label\n1.5,red,a\n2.5,blue,b\n3.5,red,a\n"


@dataclass(frozen=True)
class Refusal:
    name: str
    #: The file's bytes.
    content: bytes
    rule: ValidationRule
    column: str | None
    #: A pattern the message must contain.
    message: str
    dataset: dict[str, Any] | None = None


REFUSALS = [
    Refusal("zero bytes", b"", ValidationRule.empty_file, None, "the source file is empty"),
    Refusal("blank lines only", b"\n \n\n", ValidationRule.empty_file, None, "empty"),
    Refusal("an empty gzip", gzip.compress(b""), ValidationRule.empty_file, None, "empty"),
    Refusal(
        "a header and no rows",
        b"x,color,label\n",
        ValidationRule.no_rows,
        None,
        r"a header \(3 columns\) and no data rows",
    ),
    Refusal(
        "a row with a field too many",
        b"x,color,label\n1.5,red,a\n2.5,blue,b,extra\n",
        ValidationRule.malformed_row,
        None,
        r"line 3 has 4 fields, the header has 3: '2.5,blue,b,extra'",
    ),
    Refusal(
        "a truncated last row",
        b"x,color,label\n1.5,red,a\n2.5,bl",
        ValidationRule.malformed_row,
        None,
        r"line 3 has 2 fields, the header has 3",
    ),
    Refusal(
        "an unterminated quote",
        b'x,color,label\n1.5,"red,a\n2.5,blue,b\n',
        ValidationRule.malformed_row,
        None,
        r"cannot be parsed: unexpected end of data",
    ),
    Refusal(
        "a repeated column name",
        b"x,color,x,label\n1,red,2,a\n2,blue,3,b\n",
        ValidationRule.duplicate_column,
        "x",
        r"column 'x' appears more than once in the header \(line 1\)",
    ),
    Refusal(
        "not UTF-8",
        b"x,color,label\n1.5,r\xe9d,a\n",
        ValidationRule.readable,
        None,
        r"not UTF-8 text: byte 19 is 0xe9",
    ),
    Refusal(
        "an infinite feature value",
        b"x,color,label\n1.5,red,a\ninf,blue,b\n",
        ValidationRule.non_finite,
        "x",
        r"column 'x' has 1 infinite value\(s\) \(e\.g\. inf in row 2\)",
    ),
    Refusal(
        "a number beyond float64",
        b"x,color,label\n1.5,red,a\n-1e999,blue,b\n",
        ValidationRule.non_finite,
        "x",
        r"-inf in row 2",
    ),
    Refusal(
        "NaN where no missing value is allowed",
        b"x,color,label\n1.5,red,a\n2.5,blue,b\nNaN,red,a\n",
        ValidationRule.max_null_ratio,
        "x",
        r"column 'x' has 0\.3333 missing values \(the first in row 3\), more than maxNullRatio=0",
    ),
    Refusal(
        "a word in a numeric column",
        b"x,color,label\n1.5,red,a\nabc,blue,b\n",
        ValidationRule.numeric_type,
        "x",
        r"numeric feature 'x' has non-numeric values \(e\.g\. 'abc' in row 2\)",
    ),
    Refusal(
        "a category outside allowedValues",
        b"x,color,label\n1.5,red,a\n2.5,green,b\n",
        ValidationRule.allowed_values,
        "color",
        r"outside allowedValues: \['green'\] \(the first in row 2\)",
        {
            "features": [
                {"name": "x"},
                {"name": "color", "type": "categorical", "allowedValues": ["red", "blue"]},
            ]
        },
    ),
    Refusal(
        "no feature column",
        b"color,label\nred,a\nblue,b\n",
        ValidationRule.missing_column,
        "x",
        r"feature column 'x' is not in the data \(columns: \['color', 'label'\]\)",
    ),
    Refusal(
        "a target named with another case and a space",
        b"x,color, Label\n1.5,red,a\n2.5,blue,b\n",
        ValidationRule.missing_target,
        "label",
        r"target column 'label' is not in the data \(columns: \[' Label', 'color', 'x'\]\); "
        r"the data has ' Label'",
    ),
    Refusal(
        "fewer rows than minRows",
        GOOD,
        ValidationRule.min_rows,
        None,
        r"3 rows, fewer than minRows=4",
        {"validation": {"minRows": 4}},
    ),
    Refusal(
        "more rows than maxRows",
        GOOD,
        ValidationRule.max_rows,
        None,
        r"3 rows, more than maxRows=2",
        {"validation": {"maxRows": 2}},
    ),
    Refusal(
        "no target column",
        b"x,color\n1.5,red\n2.5,blue\n",
        ValidationRule.missing_target,
        "label",
        r"target column 'label' is not in the data \(columns: \['color', 'x'\]\)",
    ),
    Refusal(
        "a missing target value",
        b"x,color,label\n1.5,red,a\n2.5,blue,\n",
        ValidationRule.max_null_ratio,
        "label",
        r"column 'label' has 0\.5000 missing values \(the first in row 2\)",
    ),
    Refusal(
        "a single class",
        b"x,color,label\n1.5,red,a\n2.5,blue,a\n",
        ValidationRule.target_classes,
        "label",
        r"target 'label' has only 'a': a model needs at least two classes",
        {"task": "classification"},
    ),
    Refusal(
        "a single class, no task declared",
        b"x,color,label\n1.5,red,a\n2.5,blue,a\n",
        ValidationRule.target_classes,
        "label",
        r"has only 'a'",
    ),
    Refusal(
        "a text target for regression",
        b"x,color,label\n1.5,red,a\n2.5,blue,b\n",
        ValidationRule.target_numeric,
        "label",
        r"regression target 'label' has non-numeric values \(e\.g\. 'a' in row 1\)",
        {"task": "regression"},
    ),
    Refusal(
        "a constant regression target",
        b"x,color,label\n1.5,red,7\n2.5,blue,7\n",
        ValidationRule.target_classes,
        "label",
        r"target 'label' has only '7': a model needs at least two distinct values",
        {"task": "regression"},
    ),
    Refusal(
        "an infinite regression target",
        b"x,color,label\n1.5,red,7\n2.5,blue,-inf\n",
        ValidationRule.non_finite,
        "label",
        r"column 'label' has 1 infinite value\(s\) \(e\.g\. -inf in row 2\)",
        {"task": "regression"},
    ),
]


#: Rules of prefix sources, whose cases are in test_runtime_snapshots.
PREFIX_RULES = {ValidationRule.no_files, ValidationRule.schema_mismatch}


def test_every_rule_has_a_case() -> None:
    assert {c.rule for c in REFUSALS} | PREFIX_RULES == set(ValidationRule)


def _request(path: Path, out: Path, **dataset: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "source": str(path),
        "features": [{"name": "x"}, {"name": "color", "type": "categorical"}],
        "target": "label",
    }
    spec.update(dataset)
    return {"dataset": spec, "outputDir": str(out)}


@pytest.mark.parametrize("case", REFUSALS, ids=[c.name for c in REFUSALS])
def test_the_profile_refuses_data_that_cannot_be_trained_on(case: Refusal, tmp_path: Path) -> None:
    source = tmp_path / "data.csv"
    source.write_bytes(case.content)
    req = contract.ProfileRequest.model_validate(
        _request(source, tmp_path / "out", **(case.dataset or {}))
    )
    with pytest.raises(ValidationFailedError) as failure:
        run_profile(req)
    err = failure.value
    assert (err.reason, err.rule, err.column) == (
        contract.REASON_VALIDATION_FAILED,
        case.rule.value,
        case.column,
    )
    assert re.search(case.message, err.message), err.message
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_the_same_file_without_its_defect_is_profiled(tmp_path: Path) -> None:
    """The cases above fail for their defect alone: the clean file passes every check."""
    source = tmp_path / "data.csv"
    source.write_bytes(GOOD)
    result = run_profile(contract.ProfileRequest.model_validate(_request(source, tmp_path / "o")))
    assert (result.ok, result.rows, result.columns) == (True, 3, 3)
    numeric = tmp_path / "numeric.csv"
    numeric.write_bytes(b"x,color,label\n1.5,red,7\n2.5,blue,8.5\n")
    req = _request(numeric, tmp_path / "r", task="regression")
    assert run_profile(contract.ProfileRequest.model_validate(req)).ok


def test_a_repeated_parquet_column_is_refused(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_arrays(
        [
            pa.array([1.0, 2.0]),
            pa.array(["red", "blue"]),
            pa.array([3.0, 4.0]),
            pa.array(["a", "b"]),
        ],
        names=["x", "color", "x", "label"],
    )
    source = tmp_path / "data.parquet"
    pq.write_table(table, source)
    with pytest.raises(ValidationFailedError) as failure:
        run_profile(contract.ProfileRequest.model_validate(_request(source, tmp_path / "o")))
    assert (failure.value.rule, failure.value.column) == (ValidationRule.duplicate_column, "x")


def test_a_parquet_file_without_rows_is_refused(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "x": pa.array([], pa.float64()),
            "color": pa.array([], pa.string()),
            "label": pa.array([], pa.string()),
        }
    )
    source = tmp_path / "data.parquet"
    pq.write_table(table, source)
    with pytest.raises(ValidationFailedError) as failure:
        run_profile(contract.ProfileRequest.model_validate(_request(source, tmp_path / "o")))
    assert failure.value.rule == ValidationRule.no_rows
    assert failure.value.message == "the source has 3 columns and no rows"


def test_a_file_that_is_not_parquet_is_unreadable(tmp_path: Path) -> None:
    source = tmp_path / "data.parquet"
    source.write_bytes(b"PAR1 this is not really parquet")
    with pytest.raises(ValidationFailedError) as failure:
        run_profile(contract.ProfileRequest.model_validate(_request(source, tmp_path / "o")))
    assert failure.value.rule == ValidationRule.readable
    assert "cannot parse the source as parquet" in failure.value.message


@pytest.mark.parametrize(
    ("estimator", "content", "rule"),
    [
        ("Ridge", b"x,color,label\n1.5,red,a\n2.5,blue,b\n", ValidationRule.target_numeric),
        (
            "LogisticRegression",
            b"x,color,label\n1,red,a\n2,blue,a\n",
            ValidationRule.target_classes,
        ),
    ],
)
def test_training_checks_the_target_for_its_estimators_task(
    estimator: str, content: bytes, rule: ValidationRule, tmp_path: Path
) -> None:
    """A Dataset without ``task``: the training Job applies the estimator's task."""
    source = tmp_path / "data.csv"
    source.write_bytes(content)
    req = {**_request(source, tmp_path / "v1"), "modelName": "m", "estimator": estimator}
    with pytest.raises(ValidationFailedError) as failure:
        train(contract.TrainRequest.model_validate(req))
    assert (failure.value.rule, failure.value.column) == (rule.value, "label")


def test_the_profile_command_reports_the_refusal_in_its_termination_message(
    tmp_path: Path,
) -> None:
    source = tmp_path / "data.csv"
    source.write_bytes(b"x,color,label\n1.5,red,a\ninf,blue,b\n")
    term = tmp_path / "termination-log"
    env = {
        **os.environ,
        contract.ENV_REQUEST: json.dumps(_request(source, tmp_path / "out")),
        contract.ENV_TERMINATION_LOG: str(term),
    }
    proc = subprocess.run(
        [*RUNTIME, contract.COMMAND_PROFILE], env=env, capture_output=True, timeout=120, check=False
    )
    assert proc.returncode == contract.EXIT_INVALID_INPUT  # the Job does not retry it
    result = json.loads(term.read_text())
    assert result == {
        "ok": False,
        "reason": "ValidationFailed",
        "rule": "nonFinite",
        "column": "x",
        "message": "column 'x' has 1 infinite value(s) (e.g. inf in row 2); numbers must be finite",
    }
