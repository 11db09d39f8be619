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
from driftloop_runtime.groups import GroupCounters
from driftloop_runtime.model import InputError, LoadedModel, dumps
from driftloop_runtime.peers import Gossip, http_post
from driftloop_runtime.shadow import Mirror, MirrorCounters
from driftloop_runtime.shared import RowBuffer, Snapshot

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
        self.labeled = Counter(
            contract.METRIC_LIVE_LABELED_ROWS,
            "Rows with ground truth (counted by the pod that made the prediction).",
            base,
            registry=None,
        ).labels(*self.base_values)
        self.correct: Any = None
        self.abs_error: Any = None
        self.squared_error: Any = None
        if m.classes is not None:
            self.correct = Counter(
                contract.METRIC_LIVE_CORRECT_ROWS,
                "Rows with ground truth whose prediction was right.",
                base,
                registry=None,
            ).labels(*self.base_values)
        else:
            self.abs_error = Counter(
                contract.METRIC_LIVE_ABS_ERROR,
                "Sum of |prediction - ground truth| over rows with ground truth.",
                base,
                registry=None,
            ).labels(*self.base_values)
            self.squared_error = Counter(
                contract.METRIC_LIVE_SQUARED_ERROR,
                "Sum of (prediction - ground truth)^2 over rows with ground truth.",
                base,
                registry=None,
            ).labels(*self.base_values)
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
        self.groups = (
            GroupCounters(m.groups, base, self.base_values, self.classes)
            if m.groups is not None
            else None
        )

    def request(self, code: int, seconds: float | None) -> None:
        child = self._req_children.get(code)
        if child is None:
            child = self._req_children[code] = self.requests.labels(*self.base_values, str(code))
        child.inc()
        if seconds is not None:
            self.latency.observe(seconds)

    def ground_truth(self, pairs: Any) -> None:
        """Count (prediction, label) pairs: summed over pods in PromQL for live accuracy."""
        self.labeled.inc(float(pairs.shape[0]))
        if self.correct is not None:
            self.correct.inc(float(np.sum(pairs[:, 0] == pairs[:, 1])))
        else:
            err = pairs[:, 0] - pairs[:, 1]
            self.abs_error.inc(float(np.sum(np.abs(err))))
            self.squared_error.inc(float(np.sum(err * err)))

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
        threshold = GaugeMetricFamily(
            contract.METRIC_FEATURE_DRIFT_THRESHOLD,
            "Calibrated threshold of the drift score for this window and false-alarm rate.",
            labels=labels,
        )
        for name, value in m.drift_thresholds.items():
            threshold.add_metric([*bv, name, method], value)
        yield threshold
        reference_rows = GaugeMetricFamily(
            contract.METRIC_REFERENCE_ROWS, "Rows of the reference profile.", labels=base
        )
        reference_rows.add_metric(bv, float(m.reference_rows))
        yield reference_rows
        yield from self._pooled(snap, base, bv)
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

    def _pooled(self, snap: Snapshot, base: list[str], bv: list[str]) -> Iterator[Any]:
        """Per-bin row counters and reference shares: summed over pods in PromQL."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        layout = self.m.bins
        labels = [*base, "feature", "bin"]
        rows = CounterMetricFamily(
            contract.METRIC_FEATURE_BIN_ROWS,
            "Live rows per reference bin of each feature (sum over pods for pooled drift).",
            labels=labels,
        )
        ref = GaugeMetricFamily(
            contract.METRIC_FEATURE_REFERENCE,
            "Reference (training) share of each bin of each feature.",
            labels=labels,
        )
        counted = CounterMetricFamily(
            contract.METRIC_DRIFT_ROWS, "Live rows counted into the reference bins.", labels=base
        )
        counts = snap.bin_rows if snap.bin_rows.size == layout.total else None
        offset = 0
        for name, size, props in zip(layout.names, layout.sizes, layout.reference, strict=True):
            for b in range(size):
                lv = [*bv, name, str(b)]
                rows.add_metric(lv, float(counts[offset + b]) if counts is not None else 0.0)
                ref.add_metric(lv, float(props[b]))
            offset += size
        counted.add_metric(bv, float(snap.bin_rows_total))
        yield rows
        yield ref
        yield counted


def _zero() -> int:
    return 0


def min_rows(window: int) -> int:
    """Rows the window needs before drift is reported (no data != no drift)."""
    return max(1, min(100, window // 10))


class App:
    def __init__(
        self, m: LoadedModel, metrics: Metrics | None = None, gossip: Gossip | None = None
    ) -> None:
        self.m = m
        self.gossip = gossip
        #: Requests this worker holds (set by serve: uvicorn's request tasks).
        self.queue_depth: Callable[[], int] = _zero
        self.max_queue = m.cfg.max_queue
        self._shed_until = 0.0
        #: The gRPC port the master reserved (None: no gRPC service).
        self.grpc_port: int | None = None
        self._grpc: Any = None
        self._gossiper: asyncio.Task[None] | None = None
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
        #: Copies of live requests to the shadow (a candidate), when one is configured.
        self.mirror: Mirror | None = None
        if m.cfg.shadow_target:
            self.mirror = Mirror(
                m.cfg.shadow_target,
                self.name,
                MirrorCounters(self.metrics.base_values),
                queue_size=m.cfg.shadow_queue,
                tolerance=None if m.classes is not None else m.cfg.shadow_tolerance,
                encode=self._encoded,
            )

    def _encoded(self, pred: Any) -> list[Any]:
        data = self.m.encode_predictions(pred)["data"]
        return list(data.tolist() if hasattr(data, "tolist") else data)

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
                    loop = asyncio.get_running_loop()
                    if self.m.buffer is not None:
                        self._flusher = loop.create_task(self._flush_loop())
                    if self.gossip is not None and self.gossip.seed:
                        self._gossiper = loop.create_task(self.gossip.run())
                    if self.mirror is not None:
                        self.mirror.start()
                    if self.grpc_port is not None:
                        from driftloop_runtime import grpc_server

                        cfg = self.cfg
                        self._grpc = await grpc_server.start(
                            self, cfg.host, self.grpc_port, cfg.max_queue, cfg.max_request_bytes
                        )
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    self.ready = False
                    for task in (self._flusher, self._gossiper):
                        if task is not None:
                            task.cancel()
                    if self._grpc is not None:
                        await self._grpc.stop(5)
                    if self.mirror is not None:
                        await self.mirror.stop()  # copies still queued are not sent
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
                if self.max_queue and self.queue_depth() > self.max_queue:
                    await self._shed(send)
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
                ok = self.ready and not self.saturated()
                await self._send(send, 200 if ok else 503, self._model_ready)
            else:
                await self._send(send, 200, self._meta)
            return
        if path == contract.PATH_METRICS:
            await self.metrics_endpoint(send)
            return
        if path == contract.PATH_PEERS and self.gossip is not None:
            if method != "POST":
                await self._error(send, 405, "use POST")
                return
            body = await self._body(scope, receive)
            await self._send(send, 200, self.gossip.receive(body or b"{}"))
            return
        static = self._static.get(path)
        if static is not None:
            if method not in ("GET", "HEAD"):
                await self._error(send, 405, "use GET")
            elif path == contract.PATH_READY and not self.ready:
                await self._send(send, 503, dumps({"ready": False}))
            elif path == contract.PATH_READY and self.saturated():
                await self._send(send, 503, dumps({"ready": False, "reason": "saturated"}))
            else:
                await self._send(send, 200, static)
            return
        await self._error(send, 404, f"no route {path}")

    # ------------------------------------------------------------ backpressure
    def saturated(self) -> bool:
        """Shedding now or within the last RETRY_AFTER_S: readiness says no, so the
        Service sends new connections to the other replicas."""
        if not self.max_queue:
            return False
        return self.queue_depth() > self.max_queue or time.monotonic() < self._shed_until

    async def _shed(self, send: Send) -> None:
        """503 + Retry-After without reading the body or touching the model."""
        self._shed_until = time.monotonic() + contract.RETRY_AFTER_S
        self.metrics.request(503, None)
        body = orjson.dumps(
            {
                "error": f"server saturated: more than {self.max_queue} requests queued "
                f"in this worker; retry after {contract.RETRY_AFTER_S} s"
            }
        )
        await self._send(
            send, 503, body, [*JSON_HEADERS, (b"retry-after", str(contract.RETRY_AFTER_S).encode())]
        )

    # ------------------------------------------------------------ handlers
    async def infer(self, scope: Scope, receive: Receive, send: Send) -> None:
        t0 = time.perf_counter()
        body = await self._body(scope, receive)
        if body is None:
            self.metrics.request(413, None)
            await self._error(send, 413, f"request body larger than {self.max_body} bytes")
            return
        try:
            try:
                req = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise InputError(f"malformed JSON: {exc}") from None
            result = self.predict_request(req)
        except InputError as exc:
            self.metrics.request(exc.status, None)
            await self._error(send, exc.status, str(exc))
            return
        await self._send(send, 200, dumps(result))
        self.metrics.request(200, time.perf_counter() - t0)

    def predict_request(self, req: Any) -> dict[str, Any]:
        """An OIP v2 inference request (the REST JSON, or gRPC's converted to it) -> the
        response object (outputs' data as numpy arrays); records drift and predictions.
        Raises InputError (4xx).  REST and gRPC share it: same validation, same metrics."""
        m = self.m
        x, rows = m.decode(req)
        # The attribute is read beside the inputs, never fed to the model (unless it is one).
        groups = m.groups.resolve(req, x, rows) if m.groups is not None else None
        outputs = m.requested_outputs(req)
        rid = req.get("id")
        if rid is None or rid == "":
            rid = m.new_id()
        elif not isinstance(rid, str) or len(rid) > 256:
            raise InputError("'id' must be a string of at most 256 characters")
        try:
            pred = m.predict(x)
            proba = m.predict_proba(x) if "predict_proba" in outputs else None
        except (ValueError, TypeError) as exc:
            raise InputError(f"the model rejected the input: {exc}", 422) from None
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
        codes = m.pred_codes(pred)
        m.record(x, codes, rows, rid, groups)
        self.metrics.predictions(codes, pred)
        if groups is not None and self.metrics.groups is not None:
            self.metrics.groups.predictions(groups, codes, pred)
        if self.mirror is not None:
            self.mirror.offer({**req, "id": rid}, pred)  # queued only: sent after we answer
        return {"model_name": self.name, "model_version": self.version, "id": rid, "outputs": out}

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
            found = m.shared.lookup_rows(rid, consume=False)
            if found is None:
                # another worker may still hold the rows in its buffer: wait one flush
                await asyncio.sleep(RowBuffer.FLUSH_INTERVAL_S * 1.5)
                m.flush()  # this worker's own batch, if the lock was busy before
                found = m.shared.lookup_rows(rid, consume=False)
            if found is None:
                forwarded = await self._forward_feedback(scope, body)
                if forwarded is not None:
                    status, answer = forwarded
                    outcome = "forwarded" if status == 200 else "forward_refused"
                    self.metrics.feedback.labels(*self.metrics.base_values, outcome).inc()
                    await self._send(send, status, answer)
                    return
                self.metrics.feedback.labels(*self.metrics.base_values, "unknown_id").inc()
                raise InputError(
                    f"no recorded predictions for id {rid!r} (unknown or expired)", 404
                )
            preds, groups = found
            if preds.shape[0] != codes.shape[0]:
                raise InputError(
                    f"id {rid!r} has {preds.shape[0]} predictions, got {codes.shape[0]} labels"
                )
            m.shared.lookup(rid, consume=True)
            pairs = np.column_stack([preds, codes])
            m.shared.add_feedback(pairs)
            self.metrics.ground_truth(pairs)
            if self.metrics.groups is not None:
                self.metrics.groups.ground_truth(groups, pairs)
        except InputError as exc:
            await self._error(send, exc.status, str(exc))
            return
        self.metrics.feedback.labels(*self.metrics.base_values, "accepted").inc()
        await self._send(send, 200, dumps({"id": rid, "accepted": int(codes.shape[0])}))

    async def _forward_feedback(self, scope: Scope, body: bytes) -> tuple[int, bytes] | None:
        """Ask the other replicas (once) for a feedback id this pod never saw.

        The first peer that accepts it (200) answers; else a peer's 4xx other than 404
        (e.g. a row-count mismatch); None when no peer knows the id.
        """
        gossip = self.gossip
        if gossip is None:
            return None
        hdr = contract.HEADER_FORWARDED.encode()
        if any(k == hdr for k, _ in scope["headers"]):
            return None
        peers = gossip.table.peers()
        if not peers:
            return None
        path: str = scope["path"]
        calls = [
            asyncio.ensure_future(
                http_post(peer, path, body, {contract.HEADER_FORWARDED: "1"}, timeout=2.0)
            )
            for peer in peers
        ]
        refused: tuple[int, bytes] | None = None
        try:
            for done in asyncio.as_completed(calls):
                try:
                    status, answer = await done
                except (OSError, TimeoutError):
                    continue
                if status == 200:
                    return status, answer
                if 400 <= status < 500 and status != 404 and refused is None:
                    refused = (status, answer)
        finally:
            for call in calls:
                call.cancel()
        return refused

    async def metrics_endpoint(self, send: Send) -> None:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        self.m.flush()
        registry = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        registry.register(self._collector)
        body = generate_latest(registry)
        await self._send(send, 200, body, [(b"content-type", CONTENT_TYPE_LATEST.encode())])
