"""The raw ASGI application: OIP v2 REST, feedback and /metrics.

Deliberately framework-free (no routing library, no request models): a request
costs one orjson parse, one numpy decode, one predict and one orjson dump.
Prometheus metrics are prometheus_client's multiprocess mode (counters and
histograms in mmap files under the scratch dir); drift and live score are
computed at scrape time from the shared window (driftloop_runtime.shared) by a
custom collector, so every worker reports the same value.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import numpy as np
import orjson

import driftloop_contract as contract
from driftloop_runtime import __version__
from driftloop_runtime.model import InputError, LoadedModel, dumps
from driftloop_runtime.shared import RowBuffer

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON_HEADERS = [(b"content-type", b"application/json")]
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
MODELS_PREFIX = "/v2/models/"


class Metrics:
    """Per-worker prometheus objects (created after fork: multiprocess files are per pid)."""

    def __init__(self, m: LoadedModel) -> None:
        from prometheus_client import Counter, Histogram

        cfg = m.cfg
        base = ("deployment", "model", "version")
        self.base_values = (cfg.deployment, cfg.model_name, cfg.model_version)
        self.requests = Counter(
            contract.METRIC_REQUESTS,
            "Inference requests by HTTP status code.",
            [*base, "code"],
            registry=None,
        )
        self._req_children: dict[int, Any] = {}
        self.latency = Histogram(
            contract.METRIC_REQUEST_DURATION,
            "Inference request duration (decode, predict, encode) in seconds.",
            base,
            buckets=LATENCY_BUCKETS,
            registry=None,
        ).labels(*self.base_values)
        self.feedback = Counter(
            contract.METRIC_FEEDBACK,
            "Ground-truth feedback requests by outcome.",
            [*base, "outcome"],
            registry=None,
        )
        self.classes: list[str] | None = None
        self.value_hist: Any = None
        if m.classes is not None:
            self.classes = [str(c) for c in m.classes.tolist()]
            pc = Counter(
                contract.METRIC_PREDICTIONS,
                "Predicted rows by class.",
                [*base, "class"],
                registry=None,
            )
            self.class_children = [pc.labels(*self.base_values, c) for c in self.classes]
        else:
            pc = Counter(contract.METRIC_PREDICTIONS, "Predicted rows.", base, registry=None)
            self.pred_count = pc.labels(*self.base_values)
            prof = m.pred_profile
            edges = sorted({float(v) for v in prof.get("edges", [])})
            if prof.get("min") is not None:
                edges = sorted({float(prof["min"]), *edges, float(prof["max"])})
            self.value_hist = Histogram(
                contract.METRIC_PREDICTION_VALUE,
                "Predicted values (buckets: reference prediction deciles).",
                base,
                buckets=[*edges, float("inf")] if edges else Histogram.DEFAULT_BUCKETS,
                registry=None,
            ).labels(*self.base_values)

    def request(self, code: int, seconds: float | None) -> None:
        child = self._req_children.get(code)
        if child is None:
            child = self._req_children[code] = self.requests.labels(*self.base_values, str(code))
        child.inc()
        if seconds is not None:
            self.latency.observe(seconds)

    def predictions(self, codes: Any, raw: Any) -> None:
        if self.classes is not None:
            if codes.shape[0] == 1:
                self.class_children[int(codes[0])].inc()
            else:
                counts = np.bincount(codes.astype(np.int64), minlength=len(self.classes))
                for i in np.flatnonzero(counts):
                    self.class_children[i].inc(float(counts[i]))
        else:
            self.pred_count.inc(raw.shape[0])
            for v in raw.tolist():
                self.value_hist.observe(v)


class DriftCollector:
    """Scrape-time drift, window fill and live score from the shared window."""

    def __init__(self, m: LoadedModel) -> None:
        self.m = m

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        m = self.m
        cfg = m.cfg
        base = ["deployment", "model", "version"]
        bv = [cfg.deployment, cfg.model_name, cfg.model_version]
        shared = m.shared
        fill = GaugeMetricFamily(
            contract.METRIC_DRIFT_WINDOW_FILL,
            "Fraction of the drift window holding live rows (1 = full).",
            labels=base,
        )
        rows_g = GaugeMetricFamily(
            contract.METRIC_DRIFT_WINDOW_ROWS, "Live rows in the drift window.", labels=base
        )
        if shared is None:
            fill.add_metric(bv, 0.0)
            rows_g.add_metric(bv, 0.0)
            yield fill
            yield rows_g
            return
        snap = shared.snapshot()
        n = snap.window.shape[0]
        fill.add_metric(bv, n / shared.window)
        rows_g.add_metric(bv, float(n))
        yield fill
        yield rows_g
        labels = [*base, "feature", "method"]
        score = GaugeMetricFamily(
            contract.METRIC_FEATURE_DRIFT,
            "Drift of live inputs vs the reference profile over the sliding window "
            "(higher = more drift; ks/chi2: 1 - p-value).",
            labels=labels,
        )
        stat = GaugeMetricFamily(
            contract.METRIC_FEATURE_DRIFT_STATISTIC,
            "Raw drift statistic (PSI, KS D, chi2, JS distance, Wasserstein distance).",
            labels=labels,
        )
        pval = GaugeMetricFamily(
            contract.METRIC_FEATURE_DRIFT_PVALUE,
            "p-value of the drift test (ks and chi2 only).",
            labels=labels,
        )
        pred = GaugeMetricFamily(
            contract.METRIC_PREDICTION_DRIFT,
            "Drift of the prediction distribution vs the reference predictions.",
            labels=[*base, "method"],
        )
        method = cfg.drift_method.value
        if n >= min_rows(shared.window):
            for name, v in m.drift_scores(snap.window):
                lv = [*bv, name, method]
                score.add_metric(lv, v.score)
                stat.add_metric(lv, v.statistic)
                if v.p_value is not None:
                    pval.add_metric(lv, v.p_value)
            pv = m.prediction_drift(snap.window)
            if pv is not None:
                pred.add_metric([*bv, method], pv.score)
        yield score
        yield stat
        yield pval
        yield pred
        live = GaugeMetricFamily(
            contract.METRIC_LIVE_SCORE,
            "Score of past predictions against ground-truth feedback (accuracy or mae).",
            labels=[*base, "metric"],
        )
        live_rows = GaugeMetricFamily(
            contract.METRIC_LIVE_SCORE_ROWS,
            "Rows with ground truth behind the live score.",
            labels=base,
        )
        fb = snap.feedback
        live_rows.add_metric(bv, float(fb.shape[0]))
        if fb.shape[0]:
            if m.classes is not None:
                live.add_metric([*bv, "accuracy"], float(np.mean(fb[:, 0] == fb[:, 1])))
            else:
                err = fb[:, 0] - fb[:, 1]
                live.add_metric([*bv, "mae"], float(np.mean(np.abs(err))))
                live.add_metric([*bv, "rmse"], float(np.sqrt(np.mean(err * err))))
        yield live
        yield live_rows


def min_rows(window: int) -> int:
    """Rows the window needs before drift is reported (no data != no drift)."""
    return max(1, min(100, window // 10))


class App:
    def __init__(self, m: LoadedModel, metrics: Metrics | None = None) -> None:
        self.m = m
        self.cfg = m.cfg
        self.metrics = metrics or Metrics(m)
        self.max_body = m.cfg.max_request_bytes
        self.name = m.cfg.model_name
        self.version = m.cfg.model_version
        self.ready = True
        self._flusher: asyncio.Task[None] | None = None
        self._collector = DriftCollector(m)
        self._static = {
            contract.PATH_LIVE: dumps({"live": True}),
            contract.PATH_READY: dumps({"ready": True}),
            "/v2": dumps({"name": "driftloop", "version": __version__, "extensions": ["feedback"]}),
        }
        self._meta = dumps(m.metadata())
        self._model_ready = dumps({"name": self.name, "ready": True})

    # ------------------------------------------------------------ helpers
    @staticmethod
    async def _send(
        send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] = JSON_HEADERS
    ) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _error(self, send: Send, status: int, message: str) -> None:
        await self._send(send, status, orjson.dumps({"error": message}))

    async def _body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The request body, or None if it is larger than the limit."""
        for k, v in scope["headers"]:
            if k == b"content-length":
                try:
                    if int(v) > self.max_body:
                        return None
                except ValueError:
                    pass
                break
        msg = await receive()
        body: bytes = msg.get("body", b"")
        if not msg.get("more_body"):
            return body
        parts = [body]
        size = len(body)
        while True:
            msg = await receive()
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None
            parts.append(chunk)
            if not msg.get("more_body"):
                return b"".join(parts)

    # ------------------------------------------------------------ routing
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        typ = scope["type"]
        if typ == "http":
            try:
                await self.http(scope, receive, send)
            except Exception:
                log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
                await self._error(send, 500, "internal server error")
        elif typ == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    if self.m.buffer is not None:
                        self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    self.ready = False
                    if self._flusher is not None:
                        self._flusher.cancel()
                    self.m.flush()
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    async def _flush_loop(self) -> None:
        from driftloop_runtime.shared import RowBuffer

        while True:
            await asyncio.sleep(RowBuffer.FLUSH_INTERVAL_S)
            self.m.flush()

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        if path.startswith(MODELS_PREFIX):
            parts = path[len(MODELS_PREFIX) :].split("/")
            name = parts[0]
            rest = parts[1:]
            if len(rest) >= 2 and rest[0] == "versions":
                if rest[1] != self.version:
                    if name == self.name:
                        await self._error(
                            send,
                            404,
                            f"model {name!r} has no version {rest[1]!r} (serving {self.version!r})",
                        )
                    else:
                        await self._error(send, 404, f"model {name!r} not found")
                    return
                rest = rest[2:]
            action = rest[0] if rest else ""
            if len(rest) > 1 or action not in ("", "infer", "ready", "feedback"):
                await self._error(send, 404, f"no route {path}")
                return
            if name != self.name:
                await self._error(send, 404, f"model {name!r} not found (serving {self.name!r})")
                if action == "infer":
                    self.metrics.request(404, None)
                return
            if action == "infer":
                if method != "POST":
                    await self._error(send, 405, "use POST for infer")
                    return
                await self.infer(scope, receive, send)
            elif action == "feedback":
                if method != "POST":
                    await self._error(send, 405, "use POST for feedback")
                    return
                await self.feedback(scope, receive, send)
            elif method not in ("GET", "HEAD"):
                await self._error(send, 405, "use GET")
            elif action == "ready":
                await self._send(send, 200 if self.ready else 503, self._model_ready)
            else:
                await self._send(send, 200, self._meta)
            return
        if path == contract.PATH_METRICS:
            await self.metrics_endpoint(send)
            return
        static = self._static.get(path)
        if static is not None:
            if method not in ("GET", "HEAD"):
                await self._error(send, 405, "use GET")
            elif path == contract.PATH_READY and not self.ready:
                await self._send(send, 503, dumps({"ready": False}))
            else:
                await self._send(send, 200, static)
            return
        await self._error(send, 404, f"no route {path}")

    # ------------------------------------------------------------ handlers
    async def infer(self, scope: Scope, receive: Receive, send: Send) -> None:
        t0 = time.perf_counter()
        body = await self._body(scope, receive)
        if body is None:
            self.metrics.request(413, None)
            await self._error(send, 413, f"request body larger than {self.max_body} bytes")
            return
        m = self.m
        try:
            try:
                req = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise InputError(f"malformed JSON: {exc}") from None
            x, rows = m.decode(req)
            outputs = m.requested_outputs(req)
            rid = req.get("id")
            if rid is None:
                rid = m.new_id()
            elif not isinstance(rid, str) or len(rid) > 256:
                raise InputError("'id' must be a string of at most 256 characters")
            try:
                pred = m.predict(x)
                proba = m.predict_proba(x) if "predict_proba" in outputs else None
            except (ValueError, TypeError) as exc:
                raise InputError(f"the model rejected the input: {exc}", 422) from None
        except InputError as exc:
            self.metrics.request(exc.status, None)
            await self._error(send, exc.status, str(exc))
            return
        out: list[dict[str, Any]] = []
        for o in outputs:
            if o == "predict":
                out.append(m.encode_predictions(pred))
            elif proba is not None:
                out.append(
                    {
                        "name": o,
                        "shape": list(proba.shape),
                        "datatype": "FP64",
                        "data": proba.astype(np.float64).ravel(),
                    }
                )
        resp = dumps(
            {"model_name": self.name, "model_version": self.version, "id": rid, "outputs": out}
        )
        codes = m.pred_codes(pred)
        m.record(x, codes, rows, rid)
        self.metrics.predictions(codes, pred)
        await self._send(send, 200, resp)
        self.metrics.request(200, time.perf_counter() - t0)

    async def feedback(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await self._body(scope, receive)
        if body is None:
            await self._error(send, 413, f"request body larger than {self.max_body} bytes")
            return
        m = self.m
        try:
            try:
                req = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise InputError(f"malformed JSON: {exc}") from None
            if not isinstance(req, dict):
                raise InputError('feedback must be an object {"id": ..., "labels": [...]}')
            rid = req.get("id")
            labels = req.get("labels")
            if not isinstance(rid, str) or not isinstance(labels, list) or not labels:
                raise InputError("feedback needs 'id' (string) and 'labels' (non-empty list)")
            if m.shared is None:
                raise InputError("feedback needs drift tracking enabled", 409)
            codes = m.labels_to_codes(labels)
            m.flush()
            preds = m.shared.lookup(rid, consume=False)
            if preds is None:
                # another worker may still hold the rows in its buffer: wait one flush
                await asyncio.sleep(RowBuffer.FLUSH_INTERVAL_S * 1.5)
                preds = m.shared.lookup(rid, consume=False)
            if preds is None:
                self.metrics.feedback.labels(*self.metrics.base_values, "unknown_id").inc()
                raise InputError(
                    f"no recorded predictions for id {rid!r} (unknown or expired)", 404
                )
            if preds.shape[0] != codes.shape[0]:
                raise InputError(
                    f"id {rid!r} has {preds.shape[0]} predictions, got {codes.shape[0]} labels"
                )
            m.shared.lookup(rid, consume=True)
            m.shared.add_feedback(np.column_stack([preds, codes]))
        except InputError as exc:
            await self._error(send, exc.status, str(exc))
            return
        self.metrics.feedback.labels(*self.metrics.base_values, "accepted").inc()
        await self._send(send, 200, dumps({"id": rid, "accepted": int(codes.shape[0])}))

    async def metrics_endpoint(self, send: Send) -> None:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        self.m.flush()
        registry = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        registry.register(self._collector)
        body = generate_latest(registry)
        await self._send(send, 200, body, [(b"content-type", CONTENT_TYPE_LATEST.encode())])
