"""Shadow traffic: the serving server mirrors live requests to a shadow off the caller's
latency path, drops (and counts) copies when its queue is full, and counts agreement.

"Off the latency path" is shown by order, not by timing: the caller's answer is complete
while the shadow still holds the copy unanswered.  The last test runs two real servers.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

import driftloop_contract as contract
from driftloop_runtime.shadow import KeptAlive, agreeing_rows, shadow_predictions
from driftloop_testkit.runtime import serve_env, start_server

ROW = [5.1, 3.5, 1.4, 0.2, "red"]
BODY = orjson.dumps(
    {"inputs": [{"name": "x", "shape": [2, 5], "datatype": "BYTES", "data": [ROW, ROW]}]}
)


def _app(iris_model: Path, **cfg: Any) -> Any:
    from driftloop_runtime.app import App
    from driftloop_runtime.model import LoadedModel

    config = contract.ServerConfig(
        model_name="iris",
        artifact_uri="file://" + str(iris_model),
        drift_enabled=False,
        shadow_target="127.0.0.1:9",
        **cfg,
    )
    return App(LoadedModel(config, iris_model))


class Shadow:
    """A shadow that answers only when released, with the predictions it is given."""

    def __init__(self, answer: list[Any] | None = None, version: str = "2") -> None:
        self.answer = answer
        self.version = version
        self.received: list[dict[str, Any]] = []
        self.release = asyncio.Event()

    async def post(
        self, target: str, path: str, body: bytes, headers: dict[str, str], timeout: float
    ) -> tuple[int, bytes]:
        request = orjson.loads(body)
        self.received.append({"target": target, "path": path, "headers": headers, **request})
        await self.release.wait()
        n = request["inputs"][0]["shape"][0]
        data = self.answer if self.answer is not None else ["setosa"] * n
        return 200, orjson.dumps(
            {"model_version": self.version, "outputs": [{"name": "predict", "data": data}]}
        )


async def _infer(app: Any, body: bytes = BODY) -> tuple[int, Any]:
    """One inference call through the ASGI app; returns once the answer is complete."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v2/models/iris/infer", "headers": []}
    await app(scope, receive, send)
    return sent[0]["status"], orjson.loads(sent[1]["body"])


def _count(app: Any, outcome: str) -> float:
    return float(app.mirror.counters.outcomes[outcome]._value.get())


def _rows(app: Any, which: str, version: str) -> float:
    counter = app.mirror.counters._compared if which == "compared" else app.mirror.counters._agreed
    return float(counter.labels(*app.mirror.counters.base_values, version)._value.get())


def test_the_caller_is_answered_while_the_shadow_still_holds_the_copy(iris_model: Path) -> None:
    app = _app(iris_model)
    shadow = Shadow()
    app.mirror.post = shadow.post

    async def scenario() -> None:
        app.mirror.start()
        status, answer = await _infer(app)
        assert status == 200  # answered ...
        await asyncio.sleep(0)  # (the sender picks the copy up)
        assert len(shadow.received) == 1  # ... while the shadow has the copy, unanswered
        assert not shadow.release.is_set()
        copy = shadow.received[0]
        assert copy["inputs"] == orjson.loads(BODY)["inputs"]  # the same request
        assert copy["id"] == answer["id"]
        assert copy["outputs"] == [{"name": "predict"}]
        assert copy["headers"] == {contract.HEADER_SHADOW: "1"}
        assert copy["path"] == "/v2/models/iris/infer"
        served = answer["outputs"][0]["data"]
        shadow.answer = served  # the candidate agrees on every row
        shadow.release.set()
        await app.mirror.queue.join()
        await app.mirror.stop()

    asyncio.run(scenario())
    assert _count(app, "mirrored") == 1
    assert _rows(app, "compared", "2") == 2
    assert _rows(app, "agreed", "2") == 2


def test_a_full_queue_drops_copies_and_counts_them_never_the_callers(iris_model: Path) -> None:
    app = _app(iris_model, shadow_queue=3)
    shadow = Shadow()
    app.mirror.post = shadow.post

    async def scenario() -> list[int]:
        app.mirror.start()
        # No await yields to the loop between these calls: the senders take nothing, so
        # the queue holds exactly 3 and the other 7 copies are dropped.
        statuses = [(await _infer(app))[0] for _ in range(10)]
        assert _count(app, "dropped") == 7
        shadow.release.set()
        await app.mirror.queue.join()
        await app.mirror.stop()
        return statuses

    assert asyncio.run(scenario()) == [200] * 10
    assert _count(app, "mirrored") == 3
    assert len(shadow.received) == 3


def test_disagreement_is_counted_by_row(iris_model: Path) -> None:
    app = _app(iris_model)
    shadow = Shadow(version="7")
    app.mirror.post = shadow.post

    async def scenario() -> None:
        app.mirror.start()
        _, answer = await _infer(app)
        served = answer["outputs"][0]["data"]
        other = "virginica" if served[0] != "virginica" else "setosa"
        shadow.answer = [served[0], other]  # agrees on the first row only
        shadow.release.set()
        await app.mirror.queue.join()
        await app.mirror.stop()

    asyncio.run(scenario())
    assert (_rows(app, "compared", "7"), _rows(app, "agreed", "7")) == (2, 1)


def _three_copies(app: Any) -> None:
    """Three answered requests; returns once the mirror has handled their copies."""

    async def scenario() -> None:
        app.mirror.start()
        for _ in range(3):
            assert (await _infer(app))[0] == 200
        await app.mirror.queue.join()
        await app.mirror.stop()

    asyncio.run(scenario())


def test_an_unreachable_shadow_fails_copies_and_backs_off(iris_model: Path) -> None:
    app = _app(iris_model)
    calls: list[str] = []

    async def refused(*args: Any) -> tuple[int, bytes]:
        calls.append("post")
        raise ConnectionRefusedError("no shadow")

    app.mirror.post = refused

    _three_copies(app)
    assert _count(app, "failed") == 3
    assert calls == ["post"]  # the first refusal; the next copies wait out the back-off


def test_a_slow_answer_fails_that_copy_only(iris_model: Path) -> None:
    app = _app(iris_model)
    answered = Shadow()
    answered.release.set()
    calls: list[str] = []

    async def slow_once(*args: Any) -> tuple[int, bytes]:
        calls.append("post")
        if len(calls) == 1:
            raise TimeoutError
        return await answered.post(*args)

    app.mirror.post = slow_once

    _three_copies(app)
    assert (_count(app, "failed"), _count(app, "mirrored")) == (1, 2)
    assert calls == ["post"] * 3  # no back-off after a timeout


def test_a_kept_alive_connection_the_shadow_closed_is_replaced_not_failed() -> None:
    """A shadow closes idle connections (uvicorn after its keep-alive timeout); the next
    copy on that connection gets no answer and goes again on a new connection."""
    answer = b'{"model_version": "2", "outputs": [{"name": "predict", "data": ["a"]}]}'
    connections: list[int] = []

    async def one_answer_per_connection(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        connections.append(1)
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer))
        await writer.drain()
        writer.close()  # idle timeout: closed without "Connection: close"

    async def scenario() -> list[tuple[int, bytes]]:
        server = await asyncio.start_server(one_answer_per_connection, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = KeptAlive()
        try:
            results = []
            for _ in range(3):
                results.append(await client.post(f"127.0.0.1:{port}", "/p", b"{}", {}, 5.0))
                await asyncio.sleep(0.05)  # the server's close reaches the client
            return results
        finally:
            client.close()
            server.close()
            await server.wait_closed()

    assert asyncio.run(scenario()) == [(200, answer)] * 3
    assert len(connections) == 3


@pytest.mark.parametrize(
    ("serving", "shadow", "tolerance", "agreed"),
    [
        (["a", "b", "c"], ["a", "b", "c"], None, 3),
        (["a", "b", "c"], ["a", "x", "c"], None, 2),
        ([1, 2], ["1", "2"], None, 2),  # classes compared as text
        ([100.0, 0.5], [104.0, 0.54], 0.05, 2),  # relative 5%; below 1 absolute 0.05
        ([100.0, 0.5], [106.0, 0.56], 0.05, 0),
        ([0.0], [0.0], 0.0, 1),
    ],
)
def test_agreeing_rows(serving: list[Any], shadow: list[Any], tolerance: Any, agreed: int) -> None:
    assert agreeing_rows(serving, shadow, tolerance) == agreed


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b'{"model_version": "2", "outputs": [{"name": "predict", "data": [1]}]}', ("2", [1])),
        (b'{"outputs": [{"name": "predict_proba", "data": [0.1]}]}', None),
        (b'{"error": "bad"}', None),
        (b"not json", None),
        (b"[1]", None),
    ],
)
def test_shadow_predictions(payload: bytes, expected: Any) -> None:
    assert shadow_predictions(payload) == expected


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_two_real_servers_the_shadow_sees_the_same_requests(
    iris_model: Path, tmp_path: Path
) -> None:
    """The candidate (version 2 of the same model) sees each request; the serving answers
    are those of a server without a shadow; agreement is exported by the serving one."""
    shadow_env = {**serve_env(iris_model, tmp_path / "s"), contract.ENV_MODEL_VERSION: "2"}
    shadow_env[contract.ENV_DEPLOYMENT] = "iris"
    (tmp_path / "s").mkdir()
    shadow = start_server(shadow_env, tmp_path / "shadow.log")
    try:
        address = shadow.url.removeprefix("http://").split("/")[0]
        env = {**serve_env(iris_model, tmp_path / "p"), contract.ENV_SHADOW_TARGET: address}
        (tmp_path / "p").mkdir()
        serving = start_server(env, tmp_path / "serving.log")
        try:
            rows = [[5.1, 3.5, 1.4, 0.2, "red"], [6.7, 3.0, 5.2, 2.3, "blue"]]
            body = {"inputs": [{"name": "x", "shape": [2, 5], "datatype": "BYTES", "data": rows}]}
            answers = [
                requests.post(f"{serving.url}/v2/models/iris/infer", json=body, timeout=10)
                for _ in range(20)
            ]
            assert {a.status_code for a in answers} == {200}
            direct = requests.post(f"{shadow.url}/v2/models/iris/infer", json=body, timeout=10)
            same = direct.json()["outputs"][0]["data"]
            assert all(a.json()["outputs"][0]["data"] == same for a in answers)

            def counted() -> tuple[float, float]:
                text = requests.get(f"{serving.url}/metrics", timeout=10).text
                return (
                    _metric(text, contract.METRIC_SHADOW_COMPARED_ROWS, shadow_version="2"),
                    _metric(text, contract.METRIC_SHADOW_AGREED_ROWS, shadow_version="2"),
                )

            from driftloop_testkit.cluster import wait_for

            wait_for(lambda: counted()[0] >= 40, timeout=30, what="40 rows compared")
            assert counted() == (40, 40)  # the same model agrees with itself on every row
            shadow_metrics = requests.get(f"{shadow.url}/metrics", timeout=10).text
            # 20 mirrored calls and the direct one
            assert _metric(shadow_metrics, contract.METRIC_REQUESTS, code="200") == 21
        finally:
            assert serving.stop() == 0
    finally:
        assert shadow.stop() == 0
