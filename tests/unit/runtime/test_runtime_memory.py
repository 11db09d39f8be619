"""driftloop_runtime.memory: the C-ordered copy that frees its source as it goes."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from driftloop_runtime import memory


@pytest.mark.parametrize("shape", [(1, 1), (7, 3), (100_003, 5), (40_000, 1), (3, 700)])
def test_the_copy_holds_the_values_in_c_order(shape: tuple[int, int]) -> None:
    values = np.random.default_rng(0).normal(size=shape)
    source = np.asfortranarray(values.copy())  # released as copied: not values itself
    got = memory.c_order_releasing(source)
    assert got.flags.c_contiguous
    assert got.dtype == np.float64
    assert np.array_equal(got, values)


def test_a_matrix_not_in_fortran_order_is_refused() -> None:
    with pytest.raises(ValueError, match="Fortran"):
        memory.c_order_releasing(np.zeros((10, 3)))


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * memory.mmap.PAGESIZE


@pytest.mark.skipif(sys.platform != "linux", reason="madvise(MADV_DONTNEED) is Linux's")
def test_the_source_pages_go_back_to_the_system() -> None:
    """Both whole would be twice the matrix; the source is returned as it is copied."""
    source = np.asfortranarray(np.random.default_rng(1).normal(size=(1_000_000, 20)))
    before = _rss()
    got = memory.c_order_releasing(source)
    grew = _rss() - before
    assert grew < 0.25 * got.nbytes, f"RSS grew {grew / 2**20:.0f} MiB"
    # Its whole pages read as zeros now: released, not kept.
    assert not source[1000:-1000].any()
    assert got[1000:-1000].all()
