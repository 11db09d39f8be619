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
    assert retraining.default_query("ml", "iris", "chi2", 3) == (
        'max(driftloop_feature_drift_score{namespace="ml",deployment="iris",version="3",method="chi2"})'
    )
    pooled = retraining.default_query("ml", "iris", "psi", None)
    assert 'driftloop_feature_bin_rows_total{namespace="ml",deployment="iris"}[5m]' in pooled
    assert "version=" not in pooled


def test_default_trigger_is_calibrated() -> None:
    (trigger,) = retraining.effective_triggers([], "psi")
    assert (trigger.name, trigger.threshold, trigger.for_) == ("drift", None, "1m")
    assert retraining.is_calibrated(trigger)
    assert retraining.threshold_of(trigger) == 1.0  # the value is score / threshold
    assert not retraining.is_calibrated(Trigger(name="drift", threshold=0.2))
    reading = retraining.observe(trigger, 1.2, None, NOW, _text(NOW))
    assert reading.observation["calibrated"] is True
    assert reading.observation["threshold"] == 1.0


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


# --------------------------------------------------------------------------- pooled drift
# The default query pools the per-bin counters of every pod in PromQL.  promtool (the
# Debian package 'prometheus') evaluates it on synthetic series of three pods; the
# result must be the runtime's own PSI / Jensen-Shannon of the summed counts.

POD_RATES = {"a": [[1, 2, 3], [2, 0, 1], [0, 5, 1]], "c": [[3, 1], [1, 1], [2, 0]]}
REFERENCE = {"a": [0.2, 0.5, 0.3], "c": [0.9, 0.1]}


def _promtool_eval(
    query: str,
    checks: list[tuple[str, float | None]],
    thresholds: dict[str, float] | None = None,
    reference_rows: int = 0,
) -> None:
    import shutil
    import subprocess
    import tempfile

    import yaml

    import driftloop_contract as contract

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package 'prometheus')")
    sel = 'namespace="ml",deployment="iris",version="3"'
    series = []
    for feature, pods in POD_RATES.items():
        for pod, bins in enumerate(pods):
            for b, rate in enumerate(bins):
                labels = f'{sel},feature="{feature}",bin="{b}",pod="p{pod}"'
                series.append(
                    {
                        "series": f"{contract.METRIC_FEATURE_BIN_ROWS}{{{labels}}}",
                        "values": f"0+{rate}x40",
                    }
                )
                series.append(
                    {
                        "series": f"{contract.METRIC_FEATURE_REFERENCE}{{{labels}}}",
                        "values": f"{REFERENCE[feature][b]}x40",
                    }
                )
    for pod in range(3):
        series.append(
            {
                "series": f'{contract.METRIC_DRIFT_ROWS}{{{sel},pod="p{pod}"}}',
                "values": f"0+{sum(POD_RATES['a'][pod])}x40",
            }
        )
        for feature, limit in (thresholds or {}).items():
            labels = f'{sel},feature="{feature}",method="psi",pod="p{pod}"'
            series.append(
                {
                    "series": f"{contract.METRIC_FEATURE_DRIFT_THRESHOLD}{{{labels}}}",
                    "values": f"{limit}x40",
                }
            )
        if reference_rows:
            series.append(
                {
                    "series": f'{contract.METRIC_REFERENCE_ROWS}{{{sel},pod="p{pod}"}}',
                    "values": f"{reference_rows}x40",
                }
            )
    tests = [
        {
            "expr": query,
            "eval_time": at,
            "exp_samples": [] if value is None else [{"labels": "{}", "value": value}],
        }
        for at, value in checks
    ]
    doc = {"tests": [{"interval": "15s", "input_series": series, "promql_expr_test": tests}]}
    with tempfile.TemporaryDirectory() as d:
        path = f"{d}/pooled.yaml"
        with open(path, "w") as fh:
            yaml.safe_dump(doc, fh)
        proc = subprocess.run(
            [promtool, "test", "rules", path], capture_output=True, text=True, check=False
        )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.mark.parametrize("method", ["psi", "jensen_shannon"])
def test_pooled_default_query_is_the_runtime_statistic_of_summed_counts(method: str) -> None:
    import numpy as np

    from driftloop_runtime import drift

    stat = drift.psi if method == "psi" else drift.jensen_shannon
    expected = max(stat(REFERENCE[f], np.sum(POD_RATES[f], axis=0)) for f in POD_RATES)
    query = retraining.default_query("ml", "iris", method, 3, window=1000, pool_range="5m")
    # 30s in: about 30 rows in the range, under min(100, window/10): no reading yet
    _promtool_eval(query, [("5m", expected), ("30s", None)])


def test_calibrated_pooled_query_rescales_the_thresholds_to_the_live_rows() -> None:
    import numpy as np

    from driftloop_runtime import drift

    # The pods' thresholds hold for a 1000-row window; the 5m range holds n = 300 rows
    # (20 scrapes x 15 rows), so each threshold is rescaled by (1/n + 1/N) / (1/w + 1/N).
    # Feature "c" has no calibrated threshold: it is scored against the fixed 0.1.
    window, reference_rows, n = 1000, 2000, 300
    limits = {"a": 0.001}  # so that "a", the calibrated one, is the max
    rescale = (1 / n + 1 / reference_rows) / (1 / window + 1 / reference_rows)
    psi = {f: drift.psi(REFERENCE[f], np.sum(POD_RATES[f], axis=0)) for f in POD_RATES}
    expected = max(psi["a"] / (limits["a"] * rescale), psi["c"] / 0.1)
    query = retraining.default_query(
        "ml", "iris", "psi", 3, window=window, pool_range="5m", calibrated=True
    )
    # 30s in: about 30 rows, fewer than the 200 a rescaled threshold needs: no reading
    _promtool_eval(query, [("5m", expected), ("30s", None)], limits, reference_rows)


def test_calibrated_queries_wait_for_rows_where_the_threshold_holds() -> None:
    assert retraining.calibrated_min_rows(100) == 100  # its own window, calibrated as is
    assert retraining.calibrated_min_rows(150) == 150
    assert retraining.calibrated_min_rows(1000) == 200  # rescaled from 200 rows on
    assert retraining.calibrated_min_rows(100_000) == 200


def test_pooled_query_is_only_for_binned_methods() -> None:
    assert "driftloop_feature_bin_rows_total" in retraining.default_query("ml", "i", "psi", 1)
    assert retraining.default_query("ml", "iris", "ks", 3) == (
        'max(driftloop_feature_drift_score{namespace="ml",deployment="iris",version="3",method="ks"})'
    )
    assert retraining.promql_duration("1.5m") == "90s"
    assert retraining.promql_duration("500ms") == "1s"


def test_live_score_query_sums_the_counters_of_every_pod() -> None:
    sel = 'namespace="ml",deployment="iris"'
    assert retraining.live_score_query("ml", "iris", pool_range="2m") == (
        f"sum(increase(driftloop_live_correct_rows_total{{{sel}}}[2m])) / "
        f"sum(increase(driftloop_live_labeled_rows_total{{{sel}}}[2m]))"
    )
    assert retraining.live_score_query("ml", "iris", "rmse").startswith(
        "sqrt(sum(increase(driftloop_live_squared_error_total"
    )
    with pytest.raises(ValueError, match="unknown live metric"):
        retraining.live_score_query("ml", "iris", "f1")


def test_the_next_evaluation_is_due_when_the_oldest_reading_is_an_interval_old() -> None:
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    readings = [{"time": "2026-12-01T11:59:40Z"}, {"time": "2026-12-01T11:59:10Z"}]
    assert retraining.next_due(readings, "1m", now) == 10.0  # the 11:59:10 one
    assert retraining.next_due([{"time": "2026-12-01T11:50:00Z"}], "1m", now) == 0.0
    assert retraining.next_due([{"trigger": "never read"}], "1m", now) == 0.0
    assert retraining.next_due([], "30s", now) == 30.0
