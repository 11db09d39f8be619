"""The shared sliding window."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np

from driftloop_runtime.shared import RequestSampler, SharedState
from driftloop_testkit.imports import loaded_packages


def test_ring_keeps_last_rows(tmp_path: Path) -> None:
    s = SharedState(str(tmp_path / "w"), columns=2, window=5, pred_capacity=8)
    for i in range(7):
        assert s.record(np.array([[i, -i]], dtype=float), f"id{i}", np.array([float(i)]))
    snap = s.snapshot()
    assert snap.window_total == 7
    assert sorted(snap.window[:, 0].tolist()) == [2, 3, 4, 5, 6]
    big = np.arange(24, dtype=float).reshape(12, 2)
    s.record(big, "big", None)
    assert sorted(s.snapshot().window[:, 0].tolist()) == [14, 16, 18, 20, 22]


def test_predictions_by_id(tmp_path: Path) -> None:
    s = SharedState(str(tmp_path / "w"), columns=1, window=4, pred_capacity=8)
    s.record(np.zeros((3, 1)), "a", np.array([1.0, 2.0, 3.0]))
    s.record(np.zeros((2, 1)), "b", np.array([7.0, 8.0]))
    got = s.lookup("a", consume=False)
    assert got is not None
    assert got.tolist() == [1.0, 2.0, 3.0]
    assert s.lookup("a") is not None
    assert s.lookup("a") is None  # consumed
    assert s.lookup("zzz") is None
    s.add_feedback(np.array([[1.0, 1.0], [2.0, 0.0]]))
    assert s.snapshot().feedback.shape == (2, 2)


def test_row_buffer_batches_into_the_shared_window(tmp_path: Path) -> None:
    from driftloop_runtime.shared import RowBuffer, id_hash

    s = SharedState(str(tmp_path / "w"), columns=2, window=100)
    buf = RowBuffer(s, max_rows=4)
    for i in range(3):
        buf.add(np.array([[float(i)]]), np.array([float(i)]), id_hash(f"r{i}"), 1)
    assert s.snapshot().window_total == 0  # staged, not yet shared
    buf.flush()
    assert s.snapshot().window_total == 3
    assert sorted(s.snapshot().window[:, 0].tolist()) == [0.0, 1.0, 2.0]
    buf.add(np.zeros((2, 1)), np.zeros(2), id_hash("two"), 2)
    buf.add(np.ones((3, 1)), np.ones(3), id_hash("three"), 3)
    assert s.snapshot().window_total == 5  # the block had no room: flushed by add()
    buf.flush()
    assert s.snapshot().window_total == 8
    got = s.lookup("r1")
    assert got is not None
    assert got.tolist() == [1.0]
    three = s.lookup("three")
    assert three is not None
    assert three.tolist() == [1.0, 1.0, 1.0]


def test_row_buffer_takes_a_request_larger_than_its_block_in_slices(tmp_path: Path) -> None:
    from driftloop_runtime.shared import RowBuffer, id_hash

    s = SharedState(str(tmp_path / "w"), columns=2, window=100)
    buf = RowBuffer(s, max_rows=4)
    buf.add(np.array([[-1.0]]), np.array([-1.0]), id_hash("before"), 1)
    x = np.arange(10.0).reshape(10, 1)
    buf.add(x, x[:, 0] * 10, id_hash("big"), 10)
    buf.flush()
    snap = s.snapshot()
    assert snap.window_total == 11
    assert sorted(snap.window[:, 0].tolist()) == [-1.0, *range(10)]
    got = s.lookup("big")
    assert got is not None
    assert got.tolist() == [float(v) for v in range(0, 100, 10)]  # in row order


def test_row_buffer_stages_fewer_rows_of_a_wide_model(tmp_path: Path) -> None:
    from driftloop_runtime.shared import RowBuffer

    narrow = RowBuffer(SharedState(str(tmp_path / "n"), columns=31, window=10))
    wide = RowBuffer(SharedState(str(tmp_path / "w"), columns=2001, window=10))
    assert narrow.max_rows == 2048
    assert wide.max_rows == RowBuffer.MAX_STAGED_VALUES // 2001
    assert wide.block.size <= RowBuffer.MAX_STAGED_VALUES


def test_row_buffer_encodes_staged_objects_at_the_flush_and_lets_them_go(
    tmp_path: Path,
) -> None:
    from driftloop_runtime.shared import RowBuffer, id_hash

    codes = {"a": 0.0, "b": 1.0}
    encoded: list[int] = []

    def encode(x: np.ndarray) -> np.ndarray:
        encoded.append(len(x))
        return np.array([[codes.get(v, 2.0) for v in row] for row in x])

    s = SharedState(str(tmp_path / "w"), columns=3, window=100)
    buf = RowBuffer(s, encode=encode, max_rows=8)
    buf.add(np.array([["a", "b"]], dtype=object), np.array([1.0]), id_hash("r0"), 1)
    buf.add(np.array([["b", "zz"], ["a", "a"]], dtype=object), np.array([0.0, 1.0]), 7, 2)
    buf.flush()
    assert encoded == [3]  # one encode for the whole batch
    assert s.snapshot().window.tolist() == [[0.0, 1.0, 1.0], [1.0, 2.0, 0.0], [0.0, 0.0, 1.0]]
    assert (buf.raw[:3] == None).all()  # noqa: E711 (elementwise): no request's objects kept


def test_row_buffer_resets_the_groups_of_flushed_rows(tmp_path: Path) -> None:
    from driftloop_runtime.shared import NO_GROUPS, RowBuffer, id_hash

    s = SharedState(str(tmp_path / "w"), columns=2, window=100)
    buf = RowBuffer(s, max_rows=8)
    buf.add(np.zeros((2, 1)), np.zeros(2), id_hash("grouped"), 2, np.array([5, 6]))
    buf.flush()
    buf.add(np.zeros((2, 1)), np.zeros(2), id_hash("plain"), 2)
    buf.flush()
    grouped, plain = s.lookup_rows("grouped"), s.lookup_rows("plain")
    assert grouped is not None
    assert grouped[1].tolist() == [5, 6]
    assert plain is not None
    assert plain[1].tolist() == [NO_GROUPS, NO_GROUPS]


def test_row_buffer_keeps_a_batch_the_busy_lock_refused(tmp_path: Path) -> None:
    """Contention delays a prediction's record, never loses it (its feedback would 404)."""
    from driftloop_runtime.shared import RowBuffer, id_hash

    s = SharedState(str(tmp_path / "w"), columns=2, window=100)
    buf = RowBuffer(s, max_pending_rows=6)
    buf.add(np.array([[1.0]]), np.array([1.0]), id_hash("first"), 1)
    with s.lock:  # another worker (or the scrape) holds the window
        buf.flush()  # refused: kept, while the next request reuses the staging block
        buf.add(np.array([[2.0], [3.0]]), np.array([2.0, 3.0]), id_hash("second"), 2)
        buf.flush()
    assert s.snapshot().window_total == 0
    assert buf.dropped == 0
    buf.flush()  # the next flush writes both batches, in order
    assert s.snapshot().window_total == 3
    first, second = s.lookup("first"), s.lookup("second")
    assert first is not None
    assert first.tolist() == [1.0]
    assert second is not None
    assert second.tolist() == [2.0, 3.0]


def test_row_buffer_drops_the_oldest_rows_under_sustained_contention(tmp_path: Path) -> None:
    from driftloop_runtime.shared import RowBuffer, id_hash

    s = SharedState(str(tmp_path / "w"), columns=2, window=100)
    buf = RowBuffer(s, max_pending_rows=4)
    with s.lock:
        for i in range(6):
            buf.add(np.array([[float(i)]]), np.array([float(i)]), id_hash(f"r{i}"), 1)
            buf.flush()
    assert buf.dropped == 2
    buf.flush()
    assert sorted(s.snapshot().window[:, 0].tolist()) == [2.0, 3.0, 4.0, 5.0]
    assert s.lookup("r0") is None
    assert s.lookup("r5") is not None


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _serve(sampler: RequestSampler, clock: _Clock, requests: int, rows: int) -> int:
    """``requests`` requests of ``rows`` rows in one second; how many were taken."""
    taken = sum(sampler.take(rows) for _ in range(requests))
    clock.now += 1.0  # at least one rate period
    sampler.update()
    return taken


def test_sampler_counts_every_request_within_its_budget() -> None:
    clock = _Clock()
    sampler = RequestSampler(1000, clock, random.Random(0).random)
    for _ in range(3):
        assert _serve(sampler, clock, 250, 4) == 250  # 1,000 rows a second: the budget
    assert sampler.every == 1
    unlimited = RequestSampler(math.inf, clock, random.Random(0).random)
    assert _serve(unlimited, clock, 10_000, 32) == 10_000
    assert unlimited.every == 1


def test_sampler_counts_a_uniform_share_of_requests_beyond_its_budget() -> None:
    clock = _Clock()
    sampler = RequestSampler(1000, clock, random.Random(1).random)
    _serve(sampler, clock, 2500, 4)  # 10,000 rows a second: ten times the budget
    assert sampler.every == 10
    taken = _serve(sampler, clock, 2500, 4)
    assert 160 < taken < 340  # 1 in 10 (binomial sd 15)
    assert sampler.every == 10
    _serve(sampler, clock, 25_000, 4)  # 100 times
    assert sampler.every == 100
    _serve(sampler, clock, 100, 4)  # traffic falls below the budget: everything again
    assert sampler.every == 1
    assert _serve(sampler, clock, 100, 4) == 100


def test_sampler_does_not_follow_a_periodic_traffic_pattern() -> None:
    """Alternating clients, one in two counted: a stride would count one client only."""
    clock = _Clock()
    sampler = RequestSampler(1000, clock, random.Random(2).random)
    _serve(sampler, clock, 2000, 1)
    assert sampler.every == 2
    taken = [sampler.take(1) for _ in range(20_000)]
    even, odd = sum(taken[0::2]), sum(taken[1::2])
    assert 4700 < even < 5300
    assert 4700 < odd < 5300


class _Takes(RequestSampler):
    """Takes the requests it is told to."""

    def __init__(self, decisions: list[bool]) -> None:
        super().__init__(math.inf)
        self.decisions = iter(decisions)

    def take(self, rows: int) -> bool:
        return next(self.decisions)


def _two_bins(block: np.ndarray) -> np.ndarray:
    """Bin 0: first feature below 10; bin 1: at least 10."""
    high = int((block[:, 0] >= 10).sum())
    return np.array([block.shape[0] - high, high], dtype=np.int64)


def test_row_buffer_keeps_every_prediction_and_counts_the_sampled_requests(
    tmp_path: Path,
) -> None:
    """Drift counts the requests the sampler takes; feedback finds every request."""
    from driftloop_runtime.shared import RowBuffer, id_hash

    s = SharedState(str(tmp_path / "w"), columns=2, window=100, bins=2)
    buf = RowBuffer(s, binner=_two_bins, sampler=_Takes([True, False, True, False]))
    for i, rows in enumerate([2, 1, 3, 1]):
        values = np.full((rows, 1), 10.0 * i)
        buf.add(values, np.full(rows, float(i)), id_hash(f"r{i}"), rows)
    buf.flush()
    snap = s.snapshot()
    assert sorted(snap.window[:, 0].tolist()) == [0.0, 0.0, 20.0, 20.0, 20.0]
    assert sorted(snap.window[:, 1].tolist()) == [0.0, 0.0, 2.0, 2.0, 2.0]
    assert snap.bin_rows.tolist() == [2, 3]
    assert snap.bin_rows_total == 5
    for i, rows in enumerate([2, 1, 3, 1]):
        got = s.lookup(f"r{i}")
        assert got is not None
        assert got.tolist() == [float(i)] * rows


def test_row_buffer_keeps_the_uncounted_predictions_of_a_refused_batch(tmp_path: Path) -> None:
    """Contention trims the predictions and the counted rows each to the newest
    ``max_pending_rows``: the counted rows are fewer, so they are all kept."""
    from driftloop_runtime.shared import RowBuffer, id_hash

    s = SharedState(str(tmp_path / "w"), columns=2, window=100, bins=2)
    buf = RowBuffer(s, binner=_two_bins, max_pending_rows=2, sampler=_Takes([True, False, False]))
    with s.lock:
        for i in range(3):
            buf.add(np.array([[10.0 * i]]), np.array([float(i)]), id_hash(f"r{i}"), 1)
        buf.flush()  # refused: the oldest prediction goes, the one counted row stays
    assert buf.dropped == 1
    buf.flush()
    snap = s.snapshot()
    assert snap.window[:, 0].tolist() == [0.0]
    assert snap.bin_rows.tolist() == [1, 0]
    assert s.lookup("r0") is None
    assert [s.lookup(f"r{i}") is not None for i in (1, 2)] == [True, True]


def test_runtime_imports_no_kubernetes_client() -> None:
    runtime = ("__main__", "train", "serve", "app", "model")
    loaded = loaded_packages(*(f"driftloop_runtime.{m}" for m in runtime))
    assert not loaded & {"kopf", "kubernetes"}
