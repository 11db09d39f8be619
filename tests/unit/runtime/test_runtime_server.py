"""The model server over real HTTP, in a subprocess with 2 workers."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import driftloop_contract as contract
from driftloop_runtime import artifacts
from driftloop_testkit.runtime import (
    IRIS_FEATURES,
    RUNTIME,
    Server,
    copy_model,
    run_serve_until_exit,
    serve_env,
    serving,
    start_server,
)

ROWS = [
    [5.1, 3.5, 1.4, 0.2, "red"],
    [6.7, 3.0, 5.2, 2.3, "blue"],
    [5.9, 3.0, 4.2, 1.5, "green"],
]


def tensor_request(rows: list[list[Any]], **extra: Any) -> dict[str, Any]:
    flat = [v for row in rows for v in row]
    return {
        "inputs": [{"name": "x", "shape": [len(rows), 5], "datatype": "BYTES", "data": flat}],
        **extra,
    }


def columns_request(rows: list[list[Any]]) -> dict[str, Any]:
    names = [*IRIS_FEATURES, "color"]
    return {
        "inputs": [
            {
                "name": name,
                "shape": [len(rows)],
                "datatype": "BYTES" if name == "color" else "FP32",
                "data": [row[j] for row in rows],
            }
            for j, name in enumerate(names)
        ]
    }


@pytest.fixture(scope="module")
def server(iris_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    scratch = tmp_path_factory.mktemp("scratch")
    env = serve_env(iris_model, scratch, **{contract.ENV_MAX_REQUEST_BYTES: "65536"})
    srv = start_server(env, scratch / "server.log")
    yield srv
    code = srv.stop()
    assert code == 0, srv.log.read_text()
    assert "all workers stopped" in srv.log.read_text()
    assert not [p for p in scratch.iterdir() if p.name.startswith("driftloop-serve-")]


@pytest.fixture(scope="module")
def http() -> Any:
    with requests.Session() as s:
        yield s


def infer_url(server: Server, version: str | None = None) -> str:
    v = f"/versions/{version}" if version else ""
    return f"{server.url}/v2/models/iris{v}/infer"


def test_health_and_metadata(server: Server, http: requests.Session) -> None:
    assert http.get(server.url + contract.PATH_LIVE).status_code == 200
    assert http.get(server.url + contract.PATH_READY).json() == {"ready": True}
    meta = http.get(server.url + "/v2/models/iris").json()
    assert meta["name"] == "iris"
    assert meta["versions"] == ["1"]
    assert [i["name"] for i in meta["inputs"]] == [*IRIS_FEATURES, "color"]
    assert http.get(server.url + "/v2/models/iris/versions/1").status_code == 200
    assert http.get(server.url + "/v2/models/iris/ready").json()["ready"] is True
    assert http.get(server.url + "/v2/models/iris/versions/1/ready").status_code == 200
    assert http.get(server.url + "/v2/models/other").status_code == 404
    assert http.get(server.url + "/v2/models/iris/versions/9/ready").status_code == 404
    assert http.get(server.url + "/nope").status_code == 404
    assert http.post(server.url + contract.PATH_LIVE).status_code == 405
    assert http.get(infer_url(server)).status_code == 405


def test_infer_matches_the_model(server: Server, http: requests.Session, iris_model: Path) -> None:
    model = artifacts.load_model(iris_model / contract.MODEL_FILE)
    x = np.array(ROWS, dtype=object)
    for col in range(4):
        x[:, col] = x[:, col].astype(float)
    expected = model.predict(x).tolist()
    for body, url in (
        (tensor_request(ROWS, id="req-1"), infer_url(server)),
        (columns_request(ROWS), infer_url(server, "1")),
    ):
        r = http.post(url, json=body)
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["model_name"] == "iris"
        assert out["model_version"] == "1"
        assert out["id"]
        (pred,) = out["outputs"]
        assert pred["name"] == "predict"
        assert pred["shape"] == [3]
        assert pred["datatype"] == "INT64"
        assert pred["data"] == expected
    assert http.post(infer_url(server), json=tensor_request(ROWS, id="abc")).json()["id"] == "abc"
    proba = http.post(
        infer_url(server), json=tensor_request(ROWS, outputs=[{"name": "predict_proba"}])
    ).json()["outputs"][0]
    assert proba["shape"] == [3, 3]
    assert len(proba["data"]) == 9


def test_numeric_single_tensor(diabetes_model: Path, tmp_path: Path) -> None:
    env = serve_env(
        diabetes_model,
        tmp_path,
        **{
            contract.ENV_WORKERS: "1",
            contract.ENV_DRIFT_METHOD: "ks",
            contract.ENV_DRIFT_WINDOW: "50",
        },
    )
    srv = start_server(env, tmp_path / "server.log")
    try:
        body = {
            "inputs": [
                {
                    "name": "in",
                    "shape": [2, 6],
                    "datatype": "FP64",
                    "data": [[0.01] * 6, [0.02] * 6],
                }
            ]
        }
        url = f"{srv.url}/v2/models/diabetes/infer"
        for _ in range(30):
            r = requests.post(url, json=body, timeout=10)
            assert r.status_code == 200, r.text
        out = r.json()["outputs"][0]
        assert out["datatype"] == "FP64"
        assert out["shape"] == [2]
        ints = {"inputs": [{"name": "in", "shape": [1, 6], "datatype": "INT64", "data": [0] * 6}]}
        assert requests.post(url, json=ints, timeout=10).status_code == 200
        text = requests.get(srv.url + "/metrics", timeout=10).text
        assert 'method="ks"' in text
        assert contract.METRIC_FEATURE_DRIFT_PVALUE in text
        assert contract.METRIC_PREDICTION_VALUE + "_bucket" in text
        # constant inputs vs the reference: every feature has drifted
        scores = feature_scores(text)
        assert len(scores) == 6
        assert min(scores.values()) > contract.DRIFT_THRESHOLDS[contract.DriftMethod.ks]
    finally:
        assert srv.stop() == 0


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (b"{not json", 400, "malformed JSON"),
        (b"[]", 400, "JSON object"),
        (b'{"inputs": []}', 400, "inputs"),
        (b'{"inputs": [1]}', 400, "each input"),
        (
            b'{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}',
            400,
            "shape",
        ),
        (
            b'{"inputs":[{"name":"x","shape":[2,5],"datatype":"BYTES","data":[1,2,3,4,"a"]}]}',
            400,
            "elements",
        ),
        (
            b'{"inputs":[{"name":"x","shape":[1,5],"datatype":"FP99","data":[1,2,3,4,"a"]}]}',
            400,
            "datatype",
        ),
        (
            b'{"inputs":[{"name":"x","shape":[1,5],"datatype":"BYTES","data":["a",2,3,4,"a"]}]}',
            400,
            "numeric",
        ),
        (
            b'{"inputs":[{"name":"x","shape":[1,5],"datatype":"BYTES","data":[null,2,3,4,"a"]}]}',
            400,
            "",
        ),
        (
            b'{"inputs":[{"name":"sepal_length","shape":[1],"datatype":"FP32","data":[1]}]}',
            400,
            "missing input",
        ),
        (
            b'{"inputs":[{"name":"x","shape":[1,5],"datatype":"BYTES","data":[1e999,2,3,4,"a"]}]}',
            400,
            "",
        ),
    ],
)
def test_bad_requests_get_4xx_with_message(
    server: Server, http: requests.Session, body: bytes, status: int, needle: str
) -> None:
    r = http.post(infer_url(server), data=body, headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]


def test_unknown_model_and_oversize(server: Server, http: requests.Session) -> None:
    r = http.post(server.url + "/v2/models/other/infer", json=tensor_request(ROWS))
    assert r.status_code == 404
    assert "not found" in r.json()["error"]
    r = http.post(server.url + "/v2/models/iris/versions/7/infer", json=tensor_request(ROWS))
    assert r.status_code == 404
    big = tensor_request(ROWS * 3000)
    r = http.post(infer_url(server), json=big)
    assert r.status_code == 413
    assert "larger than" in r.json()["error"]


def feature_scores(text: str) -> dict[str, float]:
    out = {}
    for m in re.finditer(
        r'^driftloop_feature_drift_score\{[^}]*feature="([^"]+)"[^}]*\} (\S+)$', text, re.M
    ):
        out[m.group(1)] = float(m.group(2))
    return out


def test_metrics_drift_and_feedback(server: Server, http: requests.Session) -> None:
    # in-distribution traffic first: the window (200 rows) fills from every worker
    rng = np.random.default_rng(0)
    for i in range(70):
        r = http.post(infer_url(server), json=tensor_request(ROWS, id=f"fb-{i}"))
        assert r.status_code == 200
    r = http.post(infer_url(server), json=tensor_request(ROWS, id="labelled"))
    preds = r.json()["outputs"][0]["data"]
    ok = http.post(
        server.url + "/v2/models/iris/feedback", json={"id": "labelled", "labels": preds}
    )
    assert ok.status_code == 200, ok.text
    again = http.post(
        server.url + "/v2/models/iris/feedback", json={"id": "labelled", "labels": preds}
    )
    assert again.status_code == 404
    bad = http.post(server.url + "/v2/models/iris/feedback", json={"id": "fb-1", "labels": [0]})
    assert bad.status_code == 400
    time.sleep(0.3)  # workers flush their row buffers every 0.1 s
    text = http.get(server.url + "/metrics").text
    assert 'driftloop_live_score{deployment="iris-dep",metric="accuracy"' in text
    assert re.search(r"^driftloop_live_score\{[^}]*\} 1\.0$", text, re.M)
    assert re.search(r"^driftloop_drift_window_fill_ratio\{[^}]*\} 1\.0$", text, re.M)
    assert re.search(r'driftloop_inference_requests_total\{code="200",deployment="iris-dep"', text)
    assert re.search(r'driftloop_predictions_total\{class="0"', text)
    calm = feature_scores(text)
    assert set(calm) == {*IRIS_FEATURES, "color"}
    # shifted traffic: twice the window
    shifted = [[float(v) + 10 for v in rng.normal(size=4)] + ["purple"] for _ in range(4)]
    for _ in range(110):
        assert http.post(infer_url(server), json=tensor_request(shifted)).status_code == 200
    time.sleep(0.3)
    text = http.get(server.url + "/metrics").text
    drifted = feature_scores(text)
    for name, value in drifted.items():
        assert value > contract.DRIFT_THRESHOLDS[contract.DriftMethod.psi], name
        assert value > calm[name]
    # the calibrated threshold of every feature for this pod's window, and the shift
    # is above each of them
    limits = {
        m.group(1): float(m.group(2))
        for m in re.finditer(
            r'^driftloop_feature_drift_threshold\{[^}]*feature="([^"]+)"[^}]*\} (\S+)$', text, re.M
        )
    }
    assert set(limits) == set(drifted)
    assert all(drifted[name] > limits[name] > 0 for name in limits)
    assert re.search(r"^driftloop_drift_reference_rows\{[^}]*\} [1-9]", text, re.M)
    check_with_promtool(text)


def metric_value(text: str, name: str) -> float:
    """The sum of the samples of ``name`` in an exposition."""
    return sum(float(v) for v in re.findall(rf"^{name}(?:\{{[^}}]*\}})? (\S+)$", text, re.M))


def test_a_row_budget_counts_a_sample_and_keeps_every_prediction(
    iris_model: Path, tmp_path: Path, http: requests.Session
) -> None:
    """Above its row budget the pod counts a sample of requests into drift; feedback
    still finds every request, counted or not."""
    rows = ROWS * 6  # 18 rows a request
    budget = {contract.ENV_DRIFT_MAX_ROWS_PER_SECOND: "100"}  # 50 per worker
    with serving(iris_model, tmp_path, **budget) as srv:
        ids = []
        deadline = time.monotonic() + 3.5  # three rate periods beyond the first
        while time.monotonic() < deadline:
            ids.append(f"budget-{len(ids)}")
            r = http.post(infer_url(srv), json=tensor_request(rows, id=ids[-1]))
            assert r.status_code == 200
        preds = r.json()["outputs"][0]["data"]
        time.sleep(0.3)  # workers flush their row buffers every 0.1 s
        text = http.get(srv.url + "/metrics").text
        for rid in ids[-40:]:  # most of them were not counted into drift
            ok = http.post(srv.url + "/v2/models/iris/feedback", json={"id": rid, "labels": preds})
            assert ok.status_code == 200, (rid, ok.text)
    served = len(ids) * len(rows)
    counted = metric_value(text, contract.METRIC_DRIFT_ROWS)
    assert metric_value(text, "driftloop_inference_requests_total") == len(ids)
    # The first 0.1 s counts everything (no rate is known yet), the rest ~100 rows a second.
    assert 0 < counted < 0.7 * served, (counted, served)
    assert metric_value(text, contract.METRIC_DRIFT_WINDOW_ROWS) == 200  # the window is full


def check_with_promtool(text: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package 'prometheus'); exposition unchecked")
    proc = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --------------------------------------------------------------------------- fuzz

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8)
)
json_values = st.recursive(
    json_scalars,
    lambda kids: (
        st.lists(kids, max_size=6) | st.dictionaries(st.text(max_size=6), kids, max_size=4)
    ),
    max_leaves=20,
)
datatypes = st.sampled_from(["FP32", "FP64", "INT64", "INT8", "BYTES", "BOOL", "UINT8", "x", ""])
names = st.sampled_from(["x", *IRIS_FEATURES, "color", "", "zzz"])
shapes = st.lists(st.integers(min_value=-2, max_value=6), min_size=0, max_size=3) | json_values
tensors = st.fixed_dictionaries(
    {"name": names, "shape": shapes, "datatype": datatypes | json_values},
    optional={
        "data": st.lists(json_scalars, max_size=30) | json_values,
        "parameters": json_values,
    },
)
bodies = st.one_of(
    st.fixed_dictionaries(
        {"inputs": st.lists(tensors, max_size=6)},
        optional={"id": json_values, "outputs": json_values, "parameters": json_values},
    ),
    json_values,
)


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies, raw=st.binary(max_size=64), use_raw=st.booleans())
def test_fuzzed_requests_never_5xx(
    server: Server, http: requests.Session, body: Any, raw: bytes, use_raw: bool
) -> None:
    payload = raw if use_raw else json.dumps(body).encode()
    for path in ("/v2/models/iris/infer", "/v2/models/iris/feedback"):
        r = http.post(server.url + path, data=payload)
        assert r.status_code < 500, (payload, r.text)
        if r.status_code != 200:
            assert "error" in r.json()


# ------------------------------------------------------------------ refusing to serve


def test_tampered_model_is_refused(iris_model: Path, tmp_path: Path) -> None:
    bad = copy_model(iris_model, tmp_path / "iris" / "v1")
    model_file = bad / contract.MODEL_FILE
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model_file.write_bytes(bytes(data))
    env = serve_env(bad, tmp_path)
    env[contract.ENV_ARTIFACT_SHA256] = serve_env(iris_model, tmp_path)[
        contract.ENV_ARTIFACT_SHA256
    ]
    code, log = run_serve_until_exit(env)
    assert code != 0
    assert "refusing to serve" in log
    assert "does not match" in log


def test_tampered_profile_is_refused(iris_model: Path, tmp_path: Path) -> None:
    bad = copy_model(iris_model, tmp_path / "iris" / "v1")
    with open(bad / contract.PROFILE_FILE, "a") as fh:
        fh.write(" ")
    code, log = run_serve_until_exit(serve_env(bad, tmp_path))
    assert code != 0
    assert "profile.json" in log


def test_wrong_expected_digest_is_refused(iris_model: Path, tmp_path: Path) -> None:
    env = serve_env(iris_model, tmp_path, **{contract.ENV_ARTIFACT_SHA256: "0" * 64})
    code, log = run_serve_until_exit(env)
    assert code != 0
    assert "does not match the expected" in log


def test_untrusted_types_are_refused(iris_model: Path, tmp_path: Path) -> None:
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    bad = copy_model(iris_model, tmp_path / "iris" / "v1")
    artifacts.dump_model(
        Pipeline([("f", FunctionTransformer(os.system))]), bad / contract.MODEL_FILE
    )
    with pytest.raises(artifacts.ArtifactError, match="untrusted types"):
        artifacts.load_model(bad / contract.MODEL_FILE)


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.1, 0.2, 0.4])
def test_a_stop_while_workers_start_is_not_lost(
    delay: float, iris_model: Path, tmp_path: Path
) -> None:
    """SIGTERM around the moment the workers are forked, before they have their handlers.

    A forked worker used to inherit the master's handler: the signal was swallowed there,
    the worker served on, and the master waited for it forever. Whenever the signal lands,
    the server must stop and leave no process behind (a master that has not installed its
    handler yet simply dies of the signal, before any worker exists).
    """
    env = serve_env(iris_model, tmp_path, **{contract.ENV_WORKERS: "4"})
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*RUNTIME, "serve"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the group: the master and every worker it forks
        )

    def group_alive() -> bool:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return False
        return True

    try:
        deadline = time.monotonic() + 90
        while "serving model" not in log.read_text():  # logged just before the forks
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.005)
        time.sleep(delay)
        proc.send_signal(signal.SIGTERM)
        # Bounds on a hang, not timing claims: a clean stop takes well under a second.
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail("server did not stop after SIGTERM:\n" + log.read_text())
        assert code in (0, -signal.SIGTERM), log.read_text()
        deadline = time.monotonic() + 30
        while group_alive():
            assert time.monotonic() < deadline, "workers outlived the master:\n" + log.read_text()
            time.sleep(0.05)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
