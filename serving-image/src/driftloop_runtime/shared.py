"""Cross-worker state in one shared memory map: the drift window and feedback.

All worker processes (forked from one master) write live rows into a single
ring buffer, so the drift window is the last ``window`` rows served by the whole
pod, not per worker, and ``/metrics`` on any worker reports ONE coherent value
per feature.  Writes are vectorised slice copies under one inter-process lock
(a POSIX semaphore inherited through fork); a writer that cannot get the lock
within a few milliseconds skips the row batch rather than stall a request.

Layout (float64 / int64 arrays over one mmap file in the scratch dir):
    header  int64[8]      [window_total, pred_total, feedback_total, ...]
    window  float64[W, C] C = features + 1 (the prediction); categorical values
                          are stored as category codes (unseen = n categories)
    pred    int64[P] ids, float64[P] values   predictions by request id (feedback)
    groups  int64[P]      each prediction's packed groups (driftloop_runtime.groups)
    fb      float64[Q, 2] (prediction, label) pairs with ground truth
    bins    int64[B]      cumulative live rows per exported reference bin (pooled
                          drift across replicas: exported as counters, summed in PromQL)
"""

from __future__ import annotations

import mmap
import multiprocessing
import os
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
        ids = None
        if preds is not None and request_id is not None:
            ids = np.full(rows.shape[0], id_hash(request_id), dtype=np.int64)
            rows = np.array(rows)
            rows[:, -1] = preds
        return self.record_batch(rows, ids)

    def record_batch(
        self,
        rows: npt.NDArray[np.float64],
        ids: npt.NDArray[np.int64] | None,
        bin_counts: npt.NDArray[np.int64] | None = None,
        groups: npt.NDArray[np.int64] | None = None,
    ) -> bool:
        """Append ``rows`` (n, C) to the window; with ``ids``, remember the predictions
        (last column) and their packed ``groups`` by request id hash for feedback; add
        ``bin_counts`` (the rows per exported bin) to the cumulative counts.  False if
        the lock was busy."""
        if not self.lock.acquire(timeout=LOCK_TIMEOUT_S):
            return False
        try:
            h = self.header
            n = rows.shape[0]
            if bin_counts is not None and self.bins:
                self.bin_rows += bin_counts
                h[H_BIN_ROWS] += n
            total = int(h[H_WINDOW])
            self._ring_write(self.ring, total, rows)
            h[H_WINDOW] = total + n
            if ids is not None:
                ptotal = int(h[H_PRED])
                self._ring_write(self.pred_ids, ptotal, ids)
                self._ring_write(self.pred_vals, ptotal, rows[:, -1])
                self._ring_write(
                    self.pred_groups, ptotal, np.full(n, NO_GROUPS) if groups is None else groups
                )
                h[H_PRED] = ptotal + n
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


class RowBuffer:
    """Per-worker staging of live rows, flushed to SharedState in batches.

    A request copies its rows into a staging block the worker allocated once, and
    appends its prediction codes and id hash to lists (no lock; one array write per
    request, since a list append costs a tenth of a small array write).  Holding every
    request's decoded feature array until the flush, as this class did before, doubled
    what drift tracking costs a 1-row request (docs/benchmarks.md).  When the block is
    full (``max_rows``), and on a short timer (FLUSH_INTERVAL_S) run by the server, the
    staged rows are encoded, binned and copied into the shared window with one lock
    round-trip, so the shared window lags live traffic by at most that.

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
    ) -> None:
        self.shared = shared
        self.encode = encode
        self.binner = binner
        self.max_rows = max(min(int(max_rows), self.MAX_STAGED_VALUES // shared.columns), 1)
        self.max_pending_rows = max_pending_rows
        #: Encoded rows: features, then the prediction code (the window's layout).
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
        self.groups = np.full(self.max_rows, NO_GROUPS, dtype=np.int64)
        self.grouped = False  # some staged rows have groups (to reset after the flush)
        self.rows = 0
        # Encoded batches the lock refused: (block, ids, bin counts, groups), oldest first.
        self.pending: list[tuple[Any, Any, Any, Any]] = []
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
        self.raw[r:end] = x
        self.codes.append(pred_codes)
        self.id_runs.append(hid)
        self.run_rows.append(rows)
        if groups is not None:
            self.groups[r:end] = groups
            self.grouped = True
        self.rows = end

    def flush(self) -> None:
        n = self.rows
        batches = self.pending if n == 0 else [*self.pending, self._staged(n)]
        if not batches:
            return
        if len(batches) == 1:
            block, ids, counts, groups = batches[0]
        else:
            block = np.concatenate([b[0] for b in batches])
            ids = np.concatenate([b[1] for b in batches])
            counts = None if batches[0][2] is None else sum(b[2] for b in batches)
            groups = np.concatenate([b[3] for b in batches])
        if self.shared.record_batch(block, ids, counts, groups):
            self.pending = []
        else:
            excess = block.shape[0] - self.max_pending_rows
            if excess > 0:  # sustained contention: keep the newest rows, count the rest
                block, ids, groups = block[excess:], ids[excess:], groups[excess:]
                counts = self.binner(block) if self.binner is not None else None
                self.dropped += excess
            # copies: the staging arrays are reused
            self.pending = [(block.copy(), ids.copy(), counts, groups.copy())]
        if n:
            self.rows = 0
            if self.grouped:
                self.groups[:n] = NO_GROUPS
                self.grouped = False
            if self.encode is not None:
                self.raw[:n] = None  # the requests' objects are no longer needed
            self.codes, self.id_runs, self.run_rows = [], [], []

    def _staged(self, n: int) -> tuple[Any, Any, Any, Any]:
        """The ``n`` staged rows as one encoded block (a view of the staging arrays)
        with their id hashes, bin counts and packed groups."""
        block = self.block[:n]
        if self.encode is not None:
            block[:, :-1] = self.encode(self.raw[:n])
        block[:, -1] = np.concatenate(self.codes)
        ids = np.repeat(np.array(self.id_runs, dtype=np.int64), self.run_rows)
        counts = self.binner(block) if self.binner is not None else None
        return block, ids, counts, self.groups[:n]
