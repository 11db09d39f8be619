"""The training process's memory: what it holds is returned to the operating system
as soon as it is dead, so peak RSS is what is alive (see docs/benchmarks.md, "Data at
real sizes").  glibc and Linux specifics; each a no-op elsewhere."""

from __future__ import annotations

import mmap
import sys
from typing import Any

import numpy as np
import numpy.typing as npt


def _libc() -> Any:
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


#: glibc's mallopt parameter, and the threshold it has by default before it adapts.
_M_MMAP_THRESHOLD, _MMAP_THRESHOLD = -3, 128 * 1024


def return_large_blocks() -> None:
    """Map every allocation of 128 KiB or more afresh, so its pages go back to the
    operating system when it is freed.

    glibc raises that threshold (up to 32 MiB) each time such a block is freed, and
    blocks below it then come from the heap, whose freed pages it keeps: batches of
    columns read and dropped, the estimator's temporaries, tens to a hundred MiB that
    would count in the peak.  A no-op where the C library is not glibc.

    The setting is process-wide and is never undone: every thread and every later
    allocation of the process gets it, and glibc stops adapting the threshold.  That
    is acceptable because train() runs in the training Job's own process
    (``driftloop-runtime train``), which does nothing else and exits after the run, so
    the cost (a system call and fresh pages per large allocation) falls on that run
    alone.  (Unit tests calling train() leave it set in the test process: slower
    large allocations there, nothing else.)
    """
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is not None:
        mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)


def release_free_memory() -> None:
    """Give the pages of freed small allocations back to the operating system.

    glibc keeps them for reuse by later small allocations, but the fit's large
    arrays are mapped afresh and cannot reuse them: reading batches and building
    the profile leave about 100 MiB per 10^6 rows that would count in the peak.
    A no-op where the C library is not glibc.
    """
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is not None:
        trim(0)
    pyarrow = sys.modules.get("pyarrow")
    if pyarrow is not None:  # Arrow's allocator keeps freed blocks too (Parquet reads)
        pyarrow.default_memory_pool().release_unused()


_MADV_DONTNEED = 4  # Linux


def c_order_releasing(a: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """A C-ordered copy of the Fortran-ordered matrix ``a``, made a slice of rows at a
    time, each slice's pages of ``a`` returned to the system (``madvise``) once
    copied: the two are never both whole in memory, where ``np.ascontiguousarray``
    holds both.

    ``a`` is destroyed (the released pages read as zeros): the caller must hold its
    only reference and drop it.  Where ``madvise`` is missing or fails, the copy is
    made all the same and ``a``'s pages go when it is freed.
    """
    if not a.flags.f_contiguous or a.ndim != 2:
        raise ValueError("a Fortran-ordered matrix is expected")
    rows, cols = a.shape
    out = np.empty((rows, cols), dtype=a.dtype)
    madvise = _madvise()
    page = mmap.PAGESIZE
    item = a.itemsize
    step = max(1, (8 << 20) // max(1, cols * item))  # rows per slice: 8 MiB of output
    base = a.ctypes.data
    for r0 in range(0, rows, step):
        r1 = min(rows, r0 + step)
        out[r0:r1] = a[r0:r1]
        if madvise is None:
            continue
        for k in range(cols):
            column = base + k * rows * item
            # Whole pages holding only copied rows of this column: its first page may
            # hold the end of the previous column, its last the start of the next.
            start = max(-(-column // page) * page, (column + r0 * item) // page * page)
            end = (column + r1 * item) // page * page
            if end > start:
                madvise(start, end - start, _MADV_DONTNEED)
    return out


def _madvise() -> Any:
    import ctypes

    madvise = getattr(_libc(), "madvise", None)
    if madvise is not None:
        madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        madvise.restype = ctypes.c_int
    return madvise
