"""Backpressure: a worker holding more than DRIFTLOOP_MAX_QUEUE requests sheds the next
ones with 503 + Retry-After, and says it is not ready while it sheds.

Behaviour only (which answers come back, and that none hangs); the latency it buys is
measured by bench/backpressure.py, not asserted here.
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

import driftloop_contract as contract
from driftloop_testkit.runtime import serve_env, start_server

ROW = [5.1, 3.5, 1.4, 0.2, "red"]


def _app(iris_model: Path, max_queue: int) -> Any:
    from driftloop_runtime.app import App
    from driftloop_runtime.model import LoadedModel

    cfg = contract.ServerConfig(
        model_name="iris",
        artifact_uri="file://" + str(iris_model),
        drift_enabled=False,
        max_queue=max_queue,
    )
    return App(LoadedModel(cfg, iris_model))


def _call(app: Any, method: str, path: str, body: bytes = b"") -> tuple[int, dict[str, str], Any]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": []}
    asyncio.run(app(scope, receive, send))
    headers = {k.decode(): v.decode() for k, v in sent[0]["headers"]}
    return sent[0]["status"], headers, orjson.loads(sent[1]["body"])


def test_a_full_queue_sheds_with_retry_after_and_turns_unready(iris_model: Path) -> None:
    app = _app(iris_model, max_queue=4)
    body = orjson.dumps(
        {"inputs": [{"name": "x", "shape": [1, 5], "datatype": "BYTES", "data": [ROW]}]}
    )
    depth = 4
    app.queue_depth = lambda: depth
    status, _, _ = _call(app, "POST", "/v2/models/iris/infer", body)
    assert status == 200  # at the limit: served
    assert _call(app, "GET", contract.PATH_READY)[0] == 200

    depth = 5
    status, headers, answer = _call(app, "POST", "/v2/models/iris/infer", body)
    assert status == 503
    assert headers["retry-after"] == str(contract.RETRY_AFTER_S)
    assert "saturated" in answer["error"]
    status, _, answer = _call(app, "GET", contract.PATH_READY)
    assert (status, answer) == (503, {"ready": False, "reason": "saturated"})
    assert _call(app, "GET", "/v2/models/iris/ready")[0] == 503
    assert _call(app, "GET", contract.PATH_LIVE)[0] == 200  # alive: never restarted for load

    # the queue drains: ready again once nothing was shed for RETRY_AFTER_S
    depth = 1
    app._shed_until = time.monotonic() - 0.001
    assert _call(app, "GET", contract.PATH_READY)[0] == 200
    assert _call(app, "POST", "/v2/models/iris/infer", body)[0] == 200


def test_unbounded_when_max_queue_is_zero(iris_model: Path) -> None:
    app = _app(iris_model, max_queue=0)
    app.queue_depth = lambda: 10_000
    body = orjson.dumps(
        {"inputs": [{"name": "x", "shape": [1, 5], "datatype": "BYTES", "data": [ROW]}]}
    )
    assert _call(app, "POST", "/v2/models/iris/infer", body)[0] == 200
    assert _call(app, "GET", contract.PATH_READY)[0] == 200


def test_a_burst_over_real_http_gets_503s_and_no_request_hangs(
    iris_model: Path, tmp_path: Path
) -> None:
    env = serve_env(
        iris_model,
        tmp_path,
        **{contract.ENV_WORKERS: "1", contract.ENV_MAX_QUEUE: "2"},
    )
    server = start_server(env, tmp_path / "server.log")
    try:
        rows = [ROW] * 1000
        body = orjson.dumps(
            {"inputs": [{"name": "x", "shape": [1000, 5], "datatype": "BYTES", "data": rows}]}
        )
        port = int(server.url.rsplit(":", 1)[1])
        answers = burst(port, body, connections=64)
        codes = {code for code, _ in answers}
        assert codes <= {200, 503}, answers
        assert 503 in codes, "64 simultaneous requests never filled a queue of 2"
        assert 200 in codes
        assert all(ra == str(contract.RETRY_AFTER_S) for code, ra in answers if code == 503)
        text = requests.get(server.url + contract.PATH_METRICS, timeout=10).text
        assert 'code="503"' in text
        # idle again: ready
        deadline = time.monotonic() + 30
        while requests.get(server.url + contract.PATH_READY, timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "still not ready after the burst"
            time.sleep(0.2)
    finally:
        assert server.stop() == 0


def burst(port: int, body: bytes, connections: int) -> list[tuple[int, str | None]]:
    """Send one request on each of ``connections`` sockets at once, then read every
    answer in full (status, Retry-After); a socket timeout (a hang) fails the test."""
    head = (
        "POST /v2/models/iris/infer HTTP/1.1\r\nHost: test\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    socks = [socket.create_connection(("127.0.0.1", port), timeout=60) for _ in range(connections)]
    try:
        # Every request but its last byte first: none can finish, so they pile up in the
        # worker. Once the worker says it is saturated, the last bytes. (Sent whole, one by
        # one, a client slowed by a loaded machine lets the server keep up.)
        request = head + body
        for sock in socks:
            sock.sendall(request[:-1])
        ready = f"http://127.0.0.1:{port}{contract.PATH_READY}"
        deadline = time.monotonic() + 60
        while requests.get(ready, timeout=10).status_code != 503:
            assert time.monotonic() < deadline, "the held requests never saturated the worker"
            time.sleep(0.05)
        for sock in socks:
            sock.sendall(request[-1:])
        answers = []
        for sock in socks:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(65536)
                assert chunk, "connection closed before an answer"
                data += chunk
            header, _, rest = data.partition(b"\r\n\r\n")
            lines = header.decode().split("\r\n")
            fields = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
            length = int(fields["content-length"])
            while len(rest) < length:
                chunk = sock.recv(65536)
                assert chunk, "connection closed mid-body"
                rest += chunk
            answers.append((int(lines[0].split()[1]), fields.get("retry-after")))
        return answers
    finally:
        for sock in socks:
            sock.close()


@pytest.mark.parametrize("value", ["-1", "many"])
def test_a_bad_max_queue_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match=contract.ENV_MAX_QUEUE):
        contract.ServerConfig.from_env(
            {
                contract.ENV_MODEL_NAME: "iris",
                contract.ENV_ARTIFACT_URI: "/models/iris",
                contract.ENV_MAX_QUEUE: value,
            }
        )
