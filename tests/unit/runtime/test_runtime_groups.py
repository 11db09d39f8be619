"""Per-group monitoring in serving: predictions and feedback counted per group.

The model is trained on ``groups_csv``: ``group`` (A/B) is not a model input and comes
as the request parameter; ``age`` is an input too and binned like training bins it.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

import driftloop_contract as contract
from driftloop_runtime.model import InputError
from driftloop_testkit.data import (
    GROUPS_AGE,
    GROUPS_FEATURES,
    GROUPS_SENSITIVE,
    GROUPS_TARGET,
    groups_csv,
)
from driftloop_testkit.runtime import Server, serving

FEATURES = [*GROUPS_FEATURES, GROUPS_AGE]
BINS = [30.0, 50.0]


@pytest.fixture(scope="module")
def groups_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from driftloop_runtime.train import train

    tmp = tmp_path_factory.mktemp("groups")
    (tmp / "groups.csv").write_text(groups_csv(2.0, rows=1000))
    out = tmp / "loans" / "v1"
    request = {
        "modelName": "loans",
        "dataset": {
            "source": str(tmp / "groups.csv"),
            "features": [{"name": f} for f in FEATURES],
            "target": GROUPS_TARGET,
            "sensitiveFeatures": [
                {"name": GROUPS_SENSITIVE},
                {"name": GROUPS_AGE, "bins": BINS, "useAsInput": True},
            ],
        },
        "estimator": "LogisticRegression",
        "outputDir": str(out),
    }
    assert train(contract.TrainRequest.model_validate(request)).ok
    return out


@pytest.fixture(scope="module")
def server(groups_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(groups_model, tmp_path_factory.mktemp("scratch")) as server:
        yield server


def _request(ages: list[float], groups: Any = None, rid: str | None = None) -> dict[str, Any]:
    rows = [[0.5, 5.0, age] for age in ages]
    body: dict[str, Any] = {
        "inputs": [{"name": "x", "shape": [len(rows), 3], "datatype": "FP64", "data": rows}]
    }
    if groups is not None:
        body["parameters"] = {contract.PARAMETER_GROUPS: {GROUPS_SENSITIVE: groups}}
    if rid is not None:
        body["id"] = rid
    return body


def _series(text: str, metric: str) -> dict[tuple[str, str], float]:
    """(feature, group) -> value summed over the other labels (class)."""
    out: Counter[tuple[str, str]] = Counter()
    for m in re.finditer(rf"^{metric}\{{([^}}]*)\}} (\S+)$", text, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        out[labels["feature"], labels["group"]] += float(m.group(2))
    return dict(out)


def test_predictions_and_feedback_are_counted_per_group(server: Server, groups_model: Path) -> None:
    http = requests.Session()
    infer = server.url + "/v2/models/loans/infer"
    feedback = server.url + "/v2/models/loans/feedback"
    # A for every row; per row B and an unknown group; no attribute at all
    a = http.post(infer, json=_request([20, 30, 60], "A", rid="a"))
    b = http.post(infer, json=_request([40, 49.9], ["B", "Z"], rid="b"))
    none = http.post(infer, json=_request([70]))
    assert [r.status_code for r in (a, b, none)] == [200, 200, 200], a.text
    # many unseen values fold into one series
    for i in range(20):
        assert http.post(infer, json=_request([25], f"G{i}")).status_code == 200
    # a's labels are its predictions (right), b's the other class (wrong)
    flipped = {"yes": "no", "no": "yes"}
    right = a.json()["outputs"][0]["data"]
    wrong = [flipped[p] for p in b.json()["outputs"][0]["data"]]
    assert http.post(feedback, json={"id": "a", "labels": right}).status_code == 200
    assert http.post(feedback, json={"id": "b", "labels": wrong}).status_code == 200
    time.sleep(0.3)  # workers flush their row buffers every 0.1 s
    text = http.get(server.url + "/metrics").text

    predicted = _series(text, contract.METRIC_GROUP_PREDICTIONS)
    assert {k: v for k, v in predicted.items() if v} == {
        ("group", "A"): 3,
        ("group", "B"): 1,
        ("group", contract.OTHER_GROUP): 21,
        ("group", contract.MISSING_GROUP): 1,
        ("age", "<30"): 21,  # 20 and the 20 requests at 25
        ("age", "[30, 50)"): 3,  # 30 (a lower edge is in its bin), 40, 49.9
        ("age", ">=50"): 2,
    }
    # bounded: the groups are fixed at start, created at zero
    assert {g for f, g in predicted if f == "group"} == {
        "A",
        "B",
        contract.OTHER_GROUP,
        contract.MISSING_GROUP,
    }
    assert {g for f, g in predicted if f == "age"} == {
        "<30",
        "[30, 50)",
        ">=50",
        contract.OTHER_GROUP,
        contract.MISSING_GROUP,
    }
    labeled = _series(text, contract.METRIC_GROUP_LABELED_ROWS)
    correct = _series(text, contract.METRIC_GROUP_CORRECT_ROWS)
    assert (labeled["group", "A"], correct["group", "A"]) == (3, 3)
    assert (labeled["group", "B"], correct["group", "B"]) == (1, 0)
    assert (labeled["group", contract.OTHER_GROUP], correct["group", contract.OTHER_GROUP]) == (
        1,
        0,
    )
    assert labeled["group", contract.MISSING_GROUP] == 0
    assert (labeled["age", "[30, 50)"], correct["age", "[30, 50)"]) == (3, 1)
    # by class: the selection rate of a group is its "yes" share
    assert re.search(
        rf'^{contract.METRIC_GROUP_PREDICTIONS}\{{class="(yes|no)",deployment="loans-dep",'
        r'feature="group",group="A",model="loans",version="1"\} [1-3]\.0$',
        text,
        re.M,
    )


def _app(groups_model: Path) -> Any:
    from driftloop_runtime.app import App
    from driftloop_runtime.model import LoadedModel

    config = contract.ServerConfig(
        model_name="loans", artifact_uri="file://" + str(groups_model), drift_enabled=False
    )
    return App(LoadedModel(config, groups_model))


def test_the_attribute_never_reaches_the_model(groups_model: Path) -> None:
    app = _app(groups_model)
    seen: list[Any] = []
    predict = app.m.predict  # the model's only input: compiled or scikit-learn's predict
    app.m.predict = lambda x: seen.append(x) or predict(x)
    app.predict_request(_request([20, 60], ["A", "B"]))
    assert len(seen) == 1
    assert seen[0].shape == (2, len(FEATURES))
    assert seen[0].tolist() == [[0.5, 5.0, 20.0], [0.5, 5.0, 60.0]]
    # what clients may name in the parameter
    assert app.m.metadata()["parameters"]["sensitive_features"] == [GROUPS_SENSITIVE, GROUPS_AGE]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids),
    max_leaves=10,
)


@pytest.fixture(scope="module")
def monitored_app(groups_model: Path) -> Any:
    return _app(groups_model)


@settings(max_examples=200, deadline=None)
@given(
    groups=json_values
    | st.dictionaries(st.sampled_from([GROUPS_SENSITIVE, GROUPS_AGE]), json_values),
)
def test_any_attribute_is_counted_or_refused_never_an_error(
    monitored_app: Any, groups: Any
) -> None:
    body = _request([20, 60])
    body["parameters"] = {contract.PARAMETER_GROUPS: groups}
    status = 200
    try:
        monitored_app.predict_request(body)
    except InputError as exc:
        status = exc.status
    assert status in (200, 400)


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        (["A"], "has 1 values for 2 rows"),
        ({"nationality": "X"}, "must be an object of the sensitive features"),
    ],
)
def test_a_malformed_attribute_is_a_400(groups_model: Path, groups: Any, message: str) -> None:
    app = _app(groups_model)
    body = _request([20, 60], groups)
    if isinstance(groups, dict):
        body["parameters"][contract.PARAMETER_GROUPS] = groups
    with pytest.raises(InputError, match=message) as caught:
        app.predict_request(body)
    assert caught.value.status == 400


def test_binning_is_trainings(groups_model: Path) -> None:
    from driftloop_runtime.fairness import group_labels
    from driftloop_runtime.model import LoadedModel

    config = contract.ServerConfig(
        model_name="loans", artifact_uri="file://" + str(groups_model), drift_enabled=False
    )
    monitor = LoadedModel(config, groups_model).groups
    assert monitor is not None
    age = monitor.features[1]
    values = [-1e9, 29.999, 30.0, 30.001, 49.999, 50.0, 1e9, float("nan")]
    trained = [str(g) for g in group_labels(np.asarray(values), age.spec)]
    # request parameter values (a list) and a numeric input column (an array)
    assert [age.labels[c] for c in age.codes(values)] == trained
    assert [age.labels[c] for c in age.codes(np.asarray(values))] == trained


def test_grpc_carries_the_attribute_as_json_text(groups_model: Path, tmp_path: Path) -> None:
    grpcclient = pytest.importorskip("tritonclient.grpc")
    from tritonclient.utils import InferenceServerException

    with serving(groups_model, tmp_path, **{contract.ENV_GRPC_PORT: "0"}) as server:
        logged = server.log.read_text()
        port = re.search(r"gRPC \(Open Inference Protocol\) on 127\.0\.0\.1:(\d+)", logged)
        assert port, logged
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{port.group(1)}")
        deadline = time.monotonic() + 30
        while not _ready(client):  # each worker starts its gRPC server with its loop
            assert time.monotonic() < deadline, "gRPC server not ready"
            time.sleep(0.1)
        tensor = grpcclient.InferInput("x", [2, 3], "FP64")
        tensor.set_data_from_numpy(np.array([[0.5, 5.0, 20.0], [0.5, 5.0, 60.0]]))
        groups = {contract.PARAMETER_GROUPS: '{"group": ["A", "B"]}'}
        client.infer("loans", [tensor], parameters=groups)
        with pytest.raises(InferenceServerException, match="must be a JSON object"):
            client.infer("loans", [tensor], parameters={contract.PARAMETER_GROUPS: "A"})
        client.close()
        time.sleep(0.3)
        text = requests.get(server.url + "/metrics", timeout=10).text
    predicted = _series(text, contract.METRIC_GROUP_PREDICTIONS)
    assert (predicted["group", "A"], predicted["group", "B"]) == (1, 1)


def _ready(client: Any) -> bool:
    from tritonclient.utils import InferenceServerException

    try:
        return bool(client.is_server_ready())
    except InferenceServerException:
        return False


def test_a_regressor_counts_prediction_sums_and_absolute_errors_per_group(
    data_dir: Path, tmp_path: Path
) -> None:
    from driftloop_runtime.train import train
    from driftloop_testkit.runtime import diabetes_request

    out = tmp_path / "diabetes" / "v1"
    request = diabetes_request(data_dir, out)
    request["dataset"]["sensitiveFeatures"] = [{"name": "sex", "bins": [0.0], "useAsInput": True}]
    assert train(contract.TrainRequest.model_validate(request)).ok
    with serving(out, tmp_path) as server:
        rows = [[0.03, -0.04, 0.06, 0.02, -0.04, 0.02], [0.03, 0.05, 0.06, 0.02, -0.04, 0.02]]
        body = {
            "id": "r",
            "inputs": [{"name": "x", "shape": [2, 6], "datatype": "FP64", "data": rows}],
        }
        answer = requests.post(server.url + "/v2/models/diabetes/infer", json=body, timeout=10)
        preds = answer.json()["outputs"][0]["data"]
        labels = [preds[0] + 10, preds[1] - 4]
        r = requests.post(
            server.url + "/v2/models/diabetes/feedback",
            json={"id": "r", "labels": labels},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        time.sleep(0.3)
        text = requests.get(server.url + "/metrics", timeout=10).text
    below, above = ("sex", "<0"), ("sex", ">=0")
    count = _series(text, contract.METRIC_GROUP_PREDICTIONS)
    total = _series(text, contract.METRIC_GROUP_PREDICTION_SUM)
    errors = _series(text, contract.METRIC_GROUP_ABS_ERROR)
    assert (count[below], count[above]) == (1, 1)
    assert (total[below], total[above]) == pytest.approx((preds[0], preds[1]))
    assert (errors[below], errors[above]) == pytest.approx((10, 4))
    assert _series(text, contract.METRIC_GROUP_LABELED_ROWS)[above] == 1
    assert contract.METRIC_GROUP_CORRECT_ROWS not in text
