"""Cross-worker state in one shared memory map: the drift window and feedback.

All worker processes (forked from one master) write live rows into a single
ring buffer, so the drift window is the last ``window`` rows served by the whole
pod, not per worker, and ``/metrics`` on any worker reports ONE coherent value
per feature.  Above a row budget a worker counts a uniform sample of its requests
into the window and the bins (RequestSampler); every prediction is kept for feedback.
Writes are vectorised slice copies under one inter-process lock (a POSIX semaphore
inherited through fork); a writer that cannot get the lock within a few milliseconds
keeps the batch for its next flush rather than stall a request.

Layout (float64 / int64 arrays over one mmap file in the scratch dir):
    header  int64[8]      [window_total, pred_total, feedback_total, ...]
    window  float64[W, C] C = features + 1 (the prediction); categorical values
                          are stored as category codes (unseen = n categories)
    pred    int64[P] ids, float64[P] values   predictions by request id (feedback)
    groups  int64[P]      each prediction's packed groups (driftloop_runtime.groups)
    fb      float64[Q, 2] (prediction, label) pairs with ground truth
    bins    int64[B]      cumulative counted rows per exported reference bin (pooled
                          drift across replicas: exported as counters, summed in PromQL)
"""

from __future__ import annotations

import math
import mmap
import multiprocessing
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

LOCK_TIMEOUT_S = 0.005
HEADER = 8
H_WINDOW, H_PRED, H_FB, H_BIN_ROWS = 0, 1, 2, 3
#: Packed groups of a prediction recorded without them (no monitored features).
NO_GROUPS = -1


def id_hash(request_id: str) -> int:
    """64-bit id of a request id; 0 means "empty slot".

    Python's str hash: salted per interpreter, but every worker is forked from the
    same master (and so shares the salt), and the store lives only as long as the pod.
    """
    return hash(request_id) or 1


@dataclass
class Snapshot:
    window: npt.NDArray[np.float64]  # rows currently in the window (unordered)
    window_total: int
    feedback: npt.NDArray[np.float64]  # (n, 2) prediction/label pairs
    feedback_total: int
    bin_rows: npt.NDArray[np.int64]  # cumulative rows per exported bin
    bin_rows_total: int  # rows counted into the bins


class SharedState:
    def __init__(
        self,
        path: str,
        columns: int,
        window: int,
        pred_capacity: int = 20000,
        feedback_capacity: int = 1000,
        bins: int = 0,
    ) -> None:
        self.columns = columns
        self.bins = bins
        self.window = max(int(window), 1)
        self.pred_capacity = pred_capacity
        self.feedback_capacity = feedback_capacity
        sizes = [
            HEADER * 8,
            self.window * columns * 8,
            pred_capacity * 8,
            pred_capacity * 8,
            pred_capacity * 8,
            feedback_capacity * 2 * 8,
            bins * 8,
        ]
        total = sum(sizes)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            os.ftruncate(fd, total)
            self._mm = mmap.mmap(fd, total)
        finally:
            os.close(fd)
        off = 0

        def view(dtype: Any, count: int) -> Any:
            nonlocal off
            arr = np.frombuffer(self._mm, dtype=dtype, count=count, offset=off)
            off += count * 8
            return arr

        self.header: npt.NDArray[np.int64] = view(np.int64, HEADER)
        self.ring: npt.NDArray[np.float64] = view(np.float64, self.window * columns).reshape(
            self.window, columns
        )
        self.pred_ids: npt.NDArray[np.int64] = view(np.int64, pred_capacity)
        self.pred_vals: npt.NDArray[np.float64] = view(np.float64, pred_capacity)
        self.pred_groups: npt.NDArray[np.int64] = view(np.int64, pred_capacity)
        self.fb: npt.NDArray[np.float64] = view(np.float64, feedback_capacity * 2).reshape(
            feedback_capacity, 2
        )
        self.bin_rows: npt.NDArray[np.int64] = view(np.int64, bins)
        self.lock = multiprocessing.get_context("fork").Lock()

    @staticmethod
    def _ring_write(ring: Any, total: int, rows: Any) -> None:
        """Write ``rows`` (n, ...) into ``ring`` after ``total`` items were written."""
        cap = ring.shape[0]
        n = rows.shape[0]
        if n >= cap:
            rows = rows[n - cap :]
            start = (total + n - cap) % cap
            n = cap
        else:
            start = total % cap
        end = start + n
        if end <= cap:
            ring[start:end] = rows
        else:
            k = cap - start
            ring[start:] = rows[:k]
            ring[: n - k] = rows[k:]

    def record(
        self,
        rows: npt.NDArray[np.float64],
        request_id: str | None,
        preds: npt.NDArray[np.float64] | None,
    ) -> bool:
        """Append ``rows`` (n, C) to the window and the predictions under ``request_id``."""
        if preds is None or request_id is None:
            return self.record_batch(rows, None, None)
        ids = np.full(rows.shape[0], id_hash(request_id), dtype=np.int64)
        rows = np.array(rows)
        rows[:, -1] = preds
        return self.record_batch(rows, ids, rows[:, -1])

    def record_batch(
        self,
        rows: npt.NDArray[np.float64],
        ids: npt.NDArray[np.int64] | None,
        preds: npt.NDArray[np.float64] | None,
        bin_counts: npt.NDArray[np.int64] | None = None,
        groups: npt.NDArray[np.int64] | None = None,
    ) -> bool:
        """Append ``rows`` (n, C), the rows drift counts, to the window and add
        ``bin_counts`` (their rows per exported bin) to the cumulative counts; with
        ``ids``, remember the predictions ``preds`` (every served row, counted or not)
        and their packed ``groups`` by request id hash for feedback.  False if the lock
        was busy."""
        if not self.lock.acquire(timeout=LOCK_TIMEOUT_S):
            return False
        try:
            h = self.header
            n = rows.shape[0]
            if bin_counts is not None and self.bins:
                self.bin_rows += bin_counts
                h[H_BIN_ROWS] += n
            if n:
                total = int(h[H_WINDOW])
                self._ring_write(self.ring, total, rows)
                h[H_WINDOW] = total + n
            if ids is not None and preds is not None and ids.shape[0]:
                ptotal = int(h[H_PRED])
                self._ring_write(self.pred_ids, ptotal, ids)
                self._ring_write(self.pred_vals, ptotal, preds)
                self._ring_write(
                    self.pred_groups,
                    ptotal,
                    np.full(ids.shape[0], NO_GROUPS) if groups is None else groups,
                )
                h[H_PRED] = ptotal + ids.shape[0]
        finally:
            self.lock.release()
        return True

    def lookup(self, request_id: str, consume: bool = True) -> npt.NDArray[np.float64] | None:
        """Predictions recorded for ``request_id`` (in row order), or None.

        ``consume`` forgets them, so the same ground truth is not counted twice.
        """
        found = self.lookup_rows(request_id, consume)
        return None if found is None else found[0]

    def lookup_rows(
        self, request_id: str, consume: bool = True
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]] | None:
        """Predictions and packed groups recorded for ``request_id``, or None."""
        hid = id_hash(request_id)
        with self.lock:
            ptotal = int(self.header[H_PRED])
            n = min(ptotal, self.pred_capacity)
            if n == 0:
                return None
            # order the live slots oldest -> newest
            order = (ptotal - n + np.arange(n)) % self.pred_capacity
            ids = self.pred_ids[order]
            hits = order[ids == hid]
            if hits.size == 0:
                return None
            vals = np.array(self.pred_vals[hits])
            groups = np.array(self.pred_groups[hits])
            if consume:
                self.pred_ids[hits] = 0
            return vals, groups

    def add_feedback(self, pairs: npt.NDArray[np.float64]) -> None:
        with self.lock:
            total = int(self.header[H_FB])
            self._ring_write(self.fb, total, pairs)
            self.header[H_FB] = total + pairs.shape[0]

    def snapshot(self) -> Snapshot:
        with self.lock:
            wt = int(self.header[H_WINDOW])
            window = np.array(self.ring[: min(wt, self.window)])
            ft = int(self.header[H_FB])
            fb = np.array(self.fb[: min(ft, self.feedback_capacity)])
            bins = np.array(self.bin_rows)
            bt = int(self.header[H_BIN_ROWS])
        return Snapshot(
            window=window,
            window_total=wt,
            feedback=fb,
            feedback_total=ft,
            bin_rows=bins,
            bin_rows_total=bt,
        )


class RequestSampler:
    """Which requests a worker's drift tracking counts: all of them up to a row budget,
    a uniform sample of requests beyond it.

    While the worker serves at most ``rows_per_second`` rows a second, every request
    counts.  Above it, each request counts with probability 1/k, k the smallest whole
    number that keeps the counted rows within the budget, re-estimated from the rows
    served in each RATE_PERIOD_S.  Whether a request counts never depends on its values,
    so with no drift the counted rows are as independent a sample of the reference
    distribution as all rows are: the calibrated thresholds hold for the counted rows
    (the pooled query rescales them by the rows counted, METRIC_DRIFT_ROWS).  Within a
    period every request has the same chance, so the drifted share of a period's traffic
    is estimated without bias; a period of heavier traffic weighs no more than its
    counted rows.  The skipped requests come in geometric runs: one random draw per
    counted request, a decrement per skipped one.
    """

    #: As the server's flush timer: a burst is sampled within a tenth of a second.
    RATE_PERIOD_S = 0.1

    def __init__(
        self,
        rows_per_second: float,
        clock: Callable[[], float] = time.monotonic,
        uniform: Callable[[], float] = random.random,
    ) -> None:
        self.budget = rows_per_second
        self.clock = clock
        #: Draws from [0, 1).  The random module's: reseeded in each forked worker.
        self.uniform = uniform
        self.every = 1  # k: a request counts with probability 1 / every
        self.skip = 0  # requests to skip before the next counted one
        self.served = 0  # rows served since ``since``
        self.since = clock()

    def take(self, rows: int) -> bool:
        """Whether drift counts the next request, of ``rows`` rows."""
        self.served += rows
        if self.skip:
            self.skip -= 1
            return False
        if self.every > 1:
            self.skip = self._gap()
        return True

    def update(self) -> None:
        """Re-estimate ``every`` once a RATE_PERIOD_S from the rows served in it."""
        now = self.clock()
        elapsed = now - self.since
        if elapsed < self.RATE_PERIOD_S:
            return
        every = max(1, math.ceil(self.served / elapsed / self.budget))
        if every != self.every:
            self.every = every
            self.skip = self._gap() if every > 1 else 0
        self.served = 0
        self.since = now

    def _gap(self) -> int:
        """Requests skipped before the next counted one: geometric, success 1 / every."""
        u = 1.0 - self.uniform()  # (0, 1]
        return int(math.log(u) / math.log1p(-1.0 / self.every))


class RowBuffer:
    """Per-worker staging of live rows, flushed to SharedState in batches.

    Every request's prediction codes and id hash go to lists (feedback may name any
    served request); the requests the sampler counts (all of them below its row budget,
    RequestSampler) also copy their rows into a staging block the worker allocated once
    (no lock; one array write per request, since a list append costs a tenth of a small
    array write).  Holding every request's decoded feature array until the flush, as
    this class did before, doubled what drift tracking costs a 1-row request
    (docs/benchmarks.md).  When the lists hold ``max_rows`` rows, and on a short timer
    (FLUSH_INTERVAL_S) run by the server, the counted rows are encoded, binned and
    copied into the shared window, and every row's prediction into the prediction store,
    with one lock round-trip, so the shared state lags live traffic by at most that.

    The lock is never waited on for long (the request path must not block): a batch
    that finds it busy is kept and goes with the next flush, so a served prediction is
    not lost to contention (its feedback would get "unknown id").  Only when more than
    ``max_pending_rows`` rows wait are the oldest dropped, and counted.
    """

    FLUSH_INTERVAL_S = 0.1
    #: Most values the staging block holds: 4 MiB of float64, so a wide model stages
    #: fewer rows per flush rather than more memory.
    MAX_STAGED_VALUES = 1 << 19

    def __init__(
        self,
        shared: SharedState,
        encode: Callable[[Any], npt.NDArray[np.float64]] | None = None,
        binner: Callable[[npt.NDArray[np.float64]], npt.NDArray[np.int64]] | None = None,
        max_rows: int = 2048,
        max_pending_rows: int = 16384,
        sampler: RequestSampler | None = None,
    ) -> None:
        self.shared = shared
        self.encode = encode
        self.binner = binner
        self.max_rows = max(min(int(max_rows), self.MAX_STAGED_VALUES // shared.columns), 1)
        self.max_pending_rows = max_pending_rows
        self.sampler = sampler if sampler is not None else RequestSampler(math.inf)
        #: Counted rows, encoded: features, then the prediction code (the window's layout).
        self.block = np.empty((self.max_rows, shared.columns), dtype=np.float64)
        #: Raw features as requests gave them: numeric models write straight into the
        #: block; categorical ones keep the objects until the flush encodes them at once.
        self.raw: Any = (
            self.block[:, :-1]
            if encode is None
            else np.empty((self.max_rows, shared.columns - 1), dtype=object)
        )
        self.codes: list[Any] = []  # each staged request's prediction codes
        self.id_runs: list[int] = []  # each staged request's id hash ...
        self.run_rows: list[int] = []  # ... and its number of rows
        self.counted_codes: list[Any] = []  # the prediction codes of the counted requests
        self.groups = np.full(self.max_rows, NO_GROUPS, dtype=np.int64)
        self.grouped = False  # some staged rows have groups (to reset after the flush)
        self.rows = 0  # staged rows
        self.counted = 0  # staged rows drift counts (in the block)
        # Batches the lock refused: (counted rows, ids, predictions, bin counts, groups).
        self.pending: list[_Batch] = []
        self.dropped = 0

    def add(self, x: Any, pred_codes: Any, hid: int, rows: int, groups: Any = None) -> None:
        """Stage ``rows`` rows of raw features ``x`` with their prediction codes (and
        packed groups, None: not monitored) under the request's id hash ``hid``."""
        if rows > self.max_rows - self.rows:
            self.flush()
            if rows > self.max_rows:  # larger than the staging arrays: in slices
                for s in range(0, rows, self.max_rows):
                    e = min(s + self.max_rows, rows)
                    self.add(
                        x[s:e], pred_codes[s:e], hid, e - s, None if groups is None else groups[s:e]
                    )
                return
        r = self.rows
        end = r + rows
        self.codes.append(pred_codes)
        self.id_runs.append(hid)
        self.run_rows.append(rows)
        if groups is not None:
            self.groups[r:end] = groups
            self.grouped = True
        self.rows = end
        if self.sampler.take(rows):
            c = self.counted
            self.raw[c : c + rows] = x
            self.counted_codes.append(pred_codes)
            self.counted = c + rows

    def flush(self) -> None:
        self.sampler.update()
        n = self.rows
        batches = self.pending if n == 0 else [*self.pending, self._staged()]
        if not batches:
            return
        batch = batches[0] if len(batches) == 1 else _Batch.join(batches)
        if self.shared.record_batch(
            batch.window, batch.ids, batch.preds, batch.bin_counts, batch.groups
        ):
            self.pending = []
        else:
            self.pending = [self._kept(batch)]
        if n:
            self.rows = 0
            if self.grouped:
                self.groups[:n] = NO_GROUPS
                self.grouped = False
            if self.encode is not None and self.counted:
                self.raw[: self.counted] = None  # the requests' objects are no longer needed
            self.counted = 0
            self.codes, self.id_runs, self.run_rows, self.counted_codes = [], [], [], []

    def _staged(self) -> _Batch:
        """The staged rows: the counted ones as one encoded block (a view of the staging
        block) with their bin counts, and every row's id hash, prediction and groups."""
        c = self.counted
        ids = np.repeat(np.array(self.id_runs, dtype=np.int64), self.run_rows)
        preds = np.concatenate(self.codes).astype(np.float64, copy=False)
        block = self.block[:c]
        counts = None
        if c:
            if self.encode is not None:
                block[:, :-1] = self.encode(self.raw[:c])
            block[:, -1] = preds if c == self.rows else np.concatenate(self.counted_codes)
            counts = self.binner(block) if self.binner is not None else None
        return _Batch(block, ids, preds, counts, self.groups[: self.rows])

    def _kept(self, batch: _Batch) -> _Batch:
        """What of a refused batch waits for the next flush: a copy (the staging arrays
        are reused), without the oldest rows beyond ``max_pending_rows``, counted."""
        window, ids, preds, groups = batch.window, batch.ids, batch.preds, batch.groups
        counts = batch.bin_counts
        excess = ids.shape[0] - self.max_pending_rows
        if excess > 0:  # sustained contention: keep the newest rows, count the rest
            ids, preds, groups = ids[excess:], preds[excess:], groups[excess:]
            self.dropped += excess
            if window.shape[0] > self.max_pending_rows:
                window = window[window.shape[0] - self.max_pending_rows :]
                counts = self.binner(window) if self.binner is not None else None
        return _Batch(window.copy(), ids.copy(), preds.copy(), counts, groups.copy())


@dataclass
class _Batch:
    """Staged rows on their way to SharedState.record_batch."""

    window: npt.NDArray[np.float64]  # the rows drift counts (features + prediction code)
    ids: npt.NDArray[np.int64]  # every served row's request id hash ...
    preds: npt.NDArray[np.float64]  # ... prediction code ...
    bin_counts: npt.NDArray[np.int64] | None  # (the counted rows per exported bin)
    groups: npt.NDArray[np.int64]  # ... and packed groups

    @staticmethod
    def join(batches: list[_Batch]) -> _Batch:
        counts = [b.bin_counts for b in batches if b.bin_counts is not None]
        return _Batch(
            np.concatenate([b.window for b in batches]),
            np.concatenate([b.ids for b in batches]),
            np.concatenate([b.preds for b in batches]),
            np.sum(counts, axis=0) if counts else None,
            np.concatenate([b.groups for b in batches]),
        )
