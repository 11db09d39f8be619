"""Data that cannot be trained on fails its Dataset with a named reason, on a real cluster.

Real files in the artifact store, the real profile Job and its termination message,
the operator's mapping to a Ready reason; and a refresh to bad content keeps the last
validated version.
"""

from __future__ import annotations

from typing import Any

import pytest

from driftloop_testkit.data import dataset_manifest, iris_csv
from driftloop_testkit.driftloop import OperatorProcess, condition, create_cr, wait_cr
from driftloop_testkit.scenarios import has_reason, ready_dataset

pytestmark = pytest.mark.cluster

HEADER = "sepal_length,sepal_width,petal_length,petal_width,species\n"

#: (name, file content, extra Dataset spec, Ready reason, texts its message names)
BAD_FILES = [
    ("empty", "", {}, "EmptyFile", ["rule emptyFile failed", "the source file is empty"]),
    (
        "dupes",
        "sepal_length,sepal_width,petal_length,sepal_length,species\n1,2,3,4,setosa\n",
        {},
        "DuplicateColumn",
        ["column 'sepal_length' appears more than once in the header (line 1)"],
    ),
    (
        "infinite",
        HEADER + "5.1,3.5,1.4,0.2,setosa\n6.7,inf,5.2,2.3,virginica\n",
        {"validation": {"minRows": 1}},
        "NonFiniteValue",
        ["column 'sepal_width'", "inf in row 2"],
    ),
    (
        "one-class",
        HEADER + "5.1,3.5,1.4,0.2,setosa\n4.9,3.0,1.4,0.2,setosa\n",
        {"task": "classification", "validation": {"minRows": 1}},
        "TooFewClasses",
        ["target 'species' has only 'setosa'"],
    ),
]


def test_bad_files_fail_their_dataset_with_the_named_reason(
    operator: OperatorProcess, custom: Any, namespace: str, stage: Any
) -> None:
    for name, content, spec, _, _ in BAD_FILES:
        stage(f"data/{name}.csv", content)
        manifest = dataset_manifest(name, f"/artifacts/data/{name}.csv")
        manifest["spec"].update(spec)
        create_cr(custom, namespace, manifest)
    for name, _, _, reason, texts in BAD_FILES:
        bad = wait_cr(custom, namespace, "Dataset", name, has_reason(reason), timeout=300)
        assert bad["status"]["phase"] == "Failed"
        assert "version" not in bad["status"]
        assert condition(bad, "Stalled")["reason"] == reason
        for text in texts:
            assert text in condition(bad)["message"], condition(bad)["message"]


def test_a_refresh_to_bad_content_keeps_the_last_validated_version(
    operator: OperatorProcess, custom: Any, namespace: str, stage: Any
) -> None:
    stage("data/iris.csv", iris_csv())
    first = ready_dataset(custom, namespace, refresh_interval="15s")["status"]

    # The source is rewritten upstream with a row cut short.
    stage("data/iris.csv", iris_csv() + "5.0,3.1,1.5")
    bad = wait_cr(custom, namespace, "Dataset", "iris", has_reason("MalformedRow"), timeout=300)
    message = condition(bad)["message"]
    assert "line 152 has 3 fields, the header has 5" in message, message
    assert f"the last validated version, {first['version']}, is kept" in message
    status = bad["status"]
    assert (status["phase"], status["version"], status["rows"]) == (
        "Failed",
        first["version"],
        first["rows"],
    )
    assert status["history"] == first["history"]
    assert status["profileUri"] == first["profileUri"]
