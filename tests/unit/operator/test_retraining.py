"""Drift-trigger policy and the Prometheus client."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from driftloop import retraining
from driftloop.api import Trigger
from driftloop.prometheus import PrometheusError, query_scalar

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


def _text(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def test_default_query_filters_deployment_method_and_version() -> None:
    assert retraining.default_query("ml", "iris", "psi", 3) == (
        'max(driftloop_feature_drift_score{namespace="ml",deployment="iris",method="psi",version="3"})'
    )


def test_default_trigger() -> None:
    (trigger,) = retraining.effective_triggers([], "psi")
    assert (trigger.name, trigger.threshold, trigger.for_) == ("drift", 0.1, "1m")
    (ks,) = retraining.effective_triggers([], "ks")
    assert ks.threshold == 0.95  # the KS score is 1 - p-value


def test_trigger_fires_only_after_holding_for_its_duration() -> None:
    trigger = Trigger(name="drift", threshold=0.2, **{"for": "30s"})
    first = retraining.observe(trigger, 0.5, None, NOW, _text(NOW))
    assert not first.fires
    assert first.observation["firingSince"] == _text(NOW)
    later = NOW + timedelta(seconds=31)
    second = retraining.observe(trigger, 0.4, first.observation, later, _text(later))
    assert second.fires
    assert second.observation["firingSince"] == _text(NOW)


def test_trigger_resets_when_value_drops_or_is_missing() -> None:
    trigger = Trigger(name="drift", threshold=0.2)
    firing = retraining.observe(trigger, 0.5, None, NOW, _text(NOW)).observation
    for value in (0.1, None):
        reading = retraining.observe(trigger, value, firing, NOW, _text(NOW))
        assert not reading.fires
        assert "firingSince" not in reading.observation


def test_less_than_trigger() -> None:
    trigger = Trigger(name="accuracy", threshold=0.8, operator="<", **{"for": "0s"})
    assert retraining.observe(trigger, 0.7, None, NOW, _text(NOW)).fires
    assert not retraining.observe(trigger, 0.9, None, NOW, _text(NOW)).fires


def test_due() -> None:
    assert retraining.due(None, "30s", NOW)
    previous = {"time": _text(NOW - timedelta(seconds=10))}
    assert not retraining.due(previous, "30s", NOW)
    assert retraining.due(previous, "5s", NOW)


def _run(created: datetime, phase: str | None = None) -> dict[str, Any]:
    return {
        "metadata": {"creationTimestamp": _text(created)},
        "status": {"phase": phase} if phase else {},
    }


@pytest.mark.parametrize(
    ("runs", "allowed", "reason"),
    [
        ([], True, "Admitted"),
        ([_run(NOW - timedelta(minutes=5))], False, "MaxConcurrent"),
        ([_run(NOW - timedelta(minutes=5), "Succeeded")], False, "Cooldown"),
        ([_run(NOW - timedelta(minutes=31), "Failed")], True, "Admitted"),
    ],
)
def test_admit(runs: list[dict[str, Any]], allowed: bool, reason: str) -> None:
    admission = retraining.admit(runs, "30m", 1, NOW)
    assert (admission.allowed, admission.reason) == (allowed, reason)


def test_window_is_stable_within_a_cooldown() -> None:
    start = retraining.window(NOW, "30m")
    assert retraining.window(NOW + timedelta(minutes=29, seconds=59), "30m") == start
    assert retraining.window(NOW + timedelta(minutes=30), "30m") == start + 1


# ---------------------------------------------------------------- HTTP client


class _Handler(BaseHTTPRequestHandler):
    responses: dict[str, tuple[int, Any]] = {}

    def do_GET(self) -> None:
        code, payload = self.responses.get(self.path.split("query=")[-1], (404, {}))
        body = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _vector(*values: str) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": {}, "value": [1, v]} for v in values],
        },
    }


def test_query_scalar(api: str) -> None:
    _Handler.responses = {
        "one": (200, _vector("0.25")),
        "none": (200, _vector()),
        "two": (200, _vector("1", "2")),
        "nan": (200, _vector("NaN")),
        "bad": (400, {"status": "error", "error": "parse error at char 3"}),
        "scalar": (
            200,
            {"status": "success", "data": {"resultType": "scalar", "result": [1, "7"]}},
        ),
    }
    assert query_scalar(api, "one") == 0.25
    assert query_scalar(api, "scalar") == 7.0
    for query, reason in [
        ("none", "EmptyResult"),
        ("two", "QueryError"),
        ("nan", "EmptyResult"),
        ("bad", "QueryError"),
    ]:
        with pytest.raises(PrometheusError) as error:
            query_scalar(api, query)
        assert error.value.reason == reason, query
    assert "parse error" in str(error.value)


def test_query_scalar_unreachable() -> None:
    with pytest.raises(PrometheusError) as error:
        query_scalar("http://127.0.0.1:9", "up", timeout=1)
    assert error.value.reason == "PrometheusUnreachable"
