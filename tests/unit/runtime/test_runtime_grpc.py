"""The Open Inference Protocol over gRPC, driven by a stock client (tritonclient.grpc),
against the real server (2 workers): same answers, errors and metrics as REST."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

import driftloop_contract as contract
from driftloop_testkit.runtime import Server, serve_env, start_server

grpcclient = pytest.importorskip("tritonclient.grpc")
from tritonclient.utils import InferenceServerException  # noqa: E402

ROWS = [
    [5.1, 3.5, 1.4, 0.2, "red"],
    [6.7, 3.0, 5.2, 2.3, "blue"],
    [5.9, 3.0, 4.2, 1.5, "green"],
]


@pytest.fixture(scope="module")
def served(
    iris_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, str]]:
    scratch = tmp_path_factory.mktemp("grpc")
    env = serve_env(iris_model, scratch, **{contract.ENV_GRPC_PORT: "0"})
    server = start_server(env, scratch / "server.log")
    logged = server.log.read_text()
    match = re.search(r"gRPC \(Open Inference Protocol\) on 127\.0\.0\.1:(\d+)", logged)
    assert match, logged
    yield server, f"127.0.0.1:{match.group(1)}"
    assert server.stop() == 0, server.log.read_text()


def client(address: str) -> Any:
    c = grpcclient.InferenceServerClient(address)
    deadline = time.monotonic() + 30
    while True:  # each worker starts its gRPC server with its event loop
        try:
            if c.is_server_ready():
                return c
        except InferenceServerException:
            pass
        assert time.monotonic() < deadline, "gRPC server not ready"
        time.sleep(0.1)


def rest_predictions(server: Server, rows: list[list[Any]]) -> list[Any]:
    body = {"inputs": [{"name": "x", "shape": [len(rows), 5], "datatype": "BYTES", "data": rows}]}
    r = requests.post(server.url + "/v2/models/iris/infer", json=body, timeout=10)
    assert r.status_code == 200, r.text
    return list(r.json()["outputs"][0]["data"])


def test_health_and_metadata(served: tuple[Server, str]) -> None:
    c = client(served[1])
    assert c.is_server_live()
    assert c.is_model_ready("iris")
    meta = c.get_model_metadata("iris", as_json=True)
    assert meta["name"] == "iris"
    assert [i["name"] for i in meta["inputs"]] == [
        "sepal_length",
        "sepal_width",
        "petal_length",
        "petal_width",
        "color",
    ]
    with pytest.raises(InferenceServerException, match="not found"):
        c.get_model_metadata("nope")
    assert c.get_server_metadata(as_json=True)["name"] == "driftloop"


def test_infer_one_tensor_and_per_feature_tensors_match_rest(served: tuple[Server, str]) -> None:
    server, address = served
    c = client(address)
    expected = rest_predictions(server, ROWS)

    one = grpcclient.InferInput("x", [3, 5], "BYTES")
    one.set_data_from_numpy(np.array([[str(v) for v in row] for row in ROWS], dtype=object))
    result = c.infer("iris", [one], request_id="grpc-1")
    assert result.as_numpy("predict").tolist() == expected
    assert result.get_response().id == "grpc-1"

    inputs = []
    names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    for i, name in enumerate(names):
        t = grpcclient.InferInput(name, [3], "FP32" if i % 2 else "FP64")
        t.set_data_from_numpy(
            np.array([row[i] for row in ROWS], dtype=np.float32 if i % 2 else np.float64)
        )
        inputs.append(t)
    color = grpcclient.InferInput("color", [3], "BYTES")
    color.set_data_from_numpy(np.array([row[4] for row in ROWS], dtype=object))
    inputs.append(color)
    outputs = [grpcclient.InferRequestedOutput("predict_proba")]
    proba = c.infer("iris", inputs, outputs=outputs).as_numpy("predict_proba")
    assert proba.shape == (3, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_typed_contents_are_read_as_raw_contents_are(served: tuple[Server, str]) -> None:
    """Tensors in the typed ``contents`` fields (as MLServer's and KServe's clients send
    them; tritonclient sends raw bytes): fixed-width floats are read from their packed
    wire bytes, varint integers element by element, and a field set beside the one the
    datatype names does not change what is read."""
    import grpc
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    server, address = served
    client(address)  # ready
    rows = [[5.0, 3.0, 1.0, 0.25, "red"], [7.0, 3.0, 5.0, 2.5, "blue"]] * 16
    expected = rest_predictions(server, rows)
    request = service_pb2.ModelInferRequest(model_name="iris")
    columns = list(zip(*rows, strict=True))
    # the petal features, which decide the class, come packed
    typed = [("FP64", "fp64_contents"), ("INT64", "int64_contents")]
    typed += [("FP32", "fp32_contents"), ("FP64", "fp64_contents")]
    names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    for name, (datatype, field), column in zip(names, typed, columns, strict=False):
        tensor = request.inputs.add(name=name, datatype=datatype, shape=[len(rows)])
        values = [int(v) for v in column] if datatype == "INT64" else column
        getattr(tensor.contents, field).extend(values)
    request.inputs[0].contents.int_contents.extend([9, 9])  # not the datatype's field
    color = request.inputs.add(name="color", datatype="BYTES", shape=[len(rows)])
    color.contents.bytes_contents.extend([c.encode() for c in columns[4]])
    with grpc.insecure_channel(address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        response = stub.ModelInfer(request, timeout=10)
    answer = np.frombuffer(response.raw_output_contents[0], dtype="<i8")
    assert answer.tolist() == expected


def test_errors_are_grpc_statuses_with_the_rest_message(served: tuple[Server, str]) -> None:
    _, address = served
    c = client(address)
    bad = grpcclient.InferInput("x", [2, 4], "BYTES")  # the model has 5 features
    bad.set_data_from_numpy(np.array([["1"] * 4] * 2, dtype=object))
    with pytest.raises(InferenceServerException) as info:
        c.infer("iris", [bad])
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "shape must be [rows, 5]" in info.value.message()
    with pytest.raises(InferenceServerException) as info:
        c.infer("other", [bad])
    assert info.value.status() == "StatusCode.NOT_FOUND"
    unknown = grpcclient.InferInput("nope", [1], "FP64")
    unknown.set_data_from_numpy(np.array([1.0]))
    with pytest.raises(InferenceServerException) as info:
        c.infer("iris", [unknown])
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "or send one tensor per feature named after it" in info.value.message()


def test_grpc_requests_feed_the_same_metrics_and_drift_window(served: tuple[Server, str]) -> None:
    server, address = served
    c = client(address)

    def window_rows() -> float:
        text = requests.get(server.url + contract.PATH_METRICS, timeout=10).text
        m = re.search(r"^driftloop_drift_rows_total\{[^}]*\} (\S+)$", text, re.M)
        return float(m.group(1)) if m else 0.0

    before = window_rows()
    t = grpcclient.InferInput("x", [3, 5], "BYTES")
    t.set_data_from_numpy(np.array([[str(v) for v in row] for row in ROWS], dtype=object))
    for _ in range(10):
        c.infer("iris", [t])
    deadline = time.monotonic() + 10
    while window_rows() < before + 30:  # the workers flush their rows every 0.1 s
        assert time.monotonic() < deadline, (before, window_rows())
        time.sleep(0.1)
    text = requests.get(server.url + contract.PATH_METRICS, timeout=10).text
    assert re.search(r'driftloop_inference_requests_total\{code="400"', text)  # the bad call
