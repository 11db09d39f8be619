"""Drift statistics of a live sample against a reference profile.

All functions are pure numpy/scipy and work on plain arrays so they can be
tested against scipy and textbook values.  ``score`` is always "higher means
more drift" (see contract.DRIFT_THRESHOLDS).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from driftloop_contract import DriftMethod

FloatArray = npt.NDArray[np.float64]
#: Proportions are clipped to this before logs (Evidently uses 1e-4 as well).
EPS = 1e-4


@dataclass(frozen=True)
class DriftValue:
    score: float
    statistic: float
    p_value: float | None = None


def proportions(counts: npt.ArrayLike) -> FloatArray:
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum()
    if total <= 0:
        return np.zeros_like(c)
    out: FloatArray = c / total
    return out


def psi(reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
    """Population stability index of two distributions over the same bins.

    ``sum((c - r) * ln(c / r))`` with proportions clipped to EPS.
    """
    r = np.clip(proportions(reference), EPS, None)
    c = np.clip(proportions(current), EPS, None)
    return float(np.sum((c - r) * np.log(c / r)))


def jensen_shannon(reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
    """Jensen-Shannon *distance* (natural log), as scipy.spatial.distance.jensenshannon."""
    r = proportions(reference)
    c = proportions(current)
    m = 0.5 * (r + c)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_r = np.where(r > 0, r * np.log(r / m), 0.0)
        kl_c = np.where(c > 0, c * np.log(c / m), 0.0)
    js = 0.5 * (kl_r.sum() + kl_c.sum())
    return float(np.sqrt(max(js, 0.0)))


def chi2(reference: npt.ArrayLike, current_counts: npt.ArrayLike) -> DriftValue:
    """Chi-squared goodness of fit of current counts to the reference proportions."""
    from scipy import stats

    obs = np.asarray(current_counts, dtype=np.float64)
    ref_raw = proportions(reference)
    keep = (ref_raw > 0) | (obs > 0)  # a bin empty on both sides carries no information
    obs = obs[keep]
    n = obs.sum()
    ref = np.clip(ref_raw[keep], EPS, None)
    expected = ref / ref.sum() * n
    if n <= 0:
        return DriftValue(0.0, 0.0, 1.0)
    res = stats.chisquare(obs, expected)
    p = float(res.pvalue)
    return DriftValue(score=1.0 - p, statistic=float(res.statistic), p_value=p)


def ks(reference_sample: npt.ArrayLike, current_sample: npt.ArrayLike) -> DriftValue:
    """Two-sample Kolmogorov-Smirnov (scipy.stats.ks_2samp); score = 1 - p."""
    from scipy import stats

    a = np.asarray(reference_sample, dtype=np.float64)
    b = np.asarray(current_sample, dtype=np.float64)
    if a.size == 0 or b.size == 0:
        return DriftValue(0.0, 0.0, 1.0)
    res = stats.ks_2samp(a, b)
    p = float(res.pvalue)
    return DriftValue(score=1.0 - p, statistic=float(res.statistic), p_value=p)


def ks_statistic(reference_sample: npt.ArrayLike, current_sample: npt.ArrayLike) -> float:
    """KS statistic in plain numpy (max distance between the two empirical CDFs)."""
    a = np.sort(np.asarray(reference_sample, dtype=np.float64))
    b = np.sort(np.asarray(current_sample, dtype=np.float64))
    if a.size == 0 or b.size == 0:
        return 0.0
    grid = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, grid, side="right") / a.size
    cdf_b = np.searchsorted(b, grid, side="right") / b.size
    return float(np.max(np.abs(cdf_a - cdf_b)))


def wasserstein(
    reference_sample: npt.ArrayLike, current_sample: npt.ArrayLike, reference_std: float
) -> DriftValue:
    """Wasserstein-1 distance; score normed by the reference std (Evidently)."""
    from scipy import stats

    a = np.asarray(reference_sample, dtype=np.float64)
    b = np.asarray(current_sample, dtype=np.float64)
    if a.size == 0 or b.size == 0:
        return DriftValue(0.0, 0.0)
    d = float(stats.wasserstein_distance(a, b))
    norm = reference_std if reference_std > 0 else 1.0
    return DriftValue(score=d / norm, statistic=d)


def bin_index(edges: FloatArray, values: FloatArray) -> npt.NDArray[np.intp]:
    """Bin of each value given *inner* edges (len(edges)+1 open-ended bins)."""
    return np.searchsorted(edges, values, side="right")


def histogram(edges: FloatArray, values: FloatArray) -> FloatArray:
    idx = bin_index(edges, values)
    return np.bincount(idx, minlength=edges.size + 1).astype(np.float64)


def numeric_drift(method: DriftMethod, feature: dict[str, Any], values: FloatArray) -> DriftValue:
    """Drift of live numeric ``values`` (NaN-free) against one profile entry."""
    edges = np.asarray(feature["edges"], dtype=np.float64)
    ref_props = np.asarray(feature["proportions"], dtype=np.float64)
    if method is DriftMethod.psi:
        v = psi(ref_props, histogram(edges, values))
        return DriftValue(v, v)
    if method is DriftMethod.jensen_shannon:
        v = jensen_shannon(ref_props, histogram(edges, values))
        return DriftValue(v, v)
    if method is DriftMethod.chi2:
        return chi2(ref_props, histogram(edges, values))
    if method is DriftMethod.ks:
        return ks(feature["sample"], values)
    if method is DriftMethod.wasserstein:
        return wasserstein(feature["sample"], values, float(feature.get("std") or 0.0))
    raise ValueError(f"unknown drift method {method}")


def categorical_drift(method: DriftMethod, ref_props: FloatArray, counts: FloatArray) -> DriftValue:
    """Drift of live category ``counts`` (last slot = unseen) vs reference proportions."""
    if method is DriftMethod.psi:
        v = psi(ref_props, counts)
        return DriftValue(v, v)
    if method in (DriftMethod.ks, DriftMethod.chi2):
        return chi2(ref_props, counts)
    v = jensen_shannon(ref_props, counts)
    return DriftValue(v, v)


@dataclass(frozen=True)
class BinLayout:
    """The reference bins every pod counts live rows into (pooled drift across replicas).

    One entry per feature, in feature order: numeric features keep their reference
    bins (``len(edges) + 1``, open-ended); categorical ones their categories plus the
    unseen slot, folded to at most ``max_bins`` (the rarest categories and unseen
    values share the last bin).  ``reference[i]`` is the reference share of each
    exported bin of feature ``i``.  :meth:`counts` counts a batch of encoded rows
    into them.
    """

    names: tuple[str, ...]
    categorical: tuple[bool, ...]
    edges: tuple[FloatArray, ...]  # numeric: inner edges; categorical: empty
    sizes: tuple[int, ...]
    reference: tuple[FloatArray, ...]

    @classmethod
    def from_profile(
        cls, features: list[tuple[str, bool, dict[str, Any]]], max_bins: int
    ) -> BinLayout:
        names, cats, edges, sizes, refs = [], [], [], [], []
        for name, categorical, prof in features:
            props = np.asarray(prof.get("proportions", []), dtype=np.float64)
            if categorical:
                n = len(prof.get("categories", [])) + 1
                size = max(1, min(n, max_bins))
                e = np.empty(0, dtype=np.float64)
                ref = np.zeros(size, dtype=np.float64)
                head = props[: size - 1]
                ref[: head.size] = head
                ref[size - 1] += float(props[size - 1 :].sum())
            else:
                e = np.asarray(prof.get("edges", []), dtype=np.float64)
                size = e.size + 1
                ref = props if props.size == size else np.full(size, 1.0 / size)
            names.append(name)
            cats.append(categorical)
            edges.append(e)
            sizes.append(size)
            refs.append(ref)
        return cls(tuple(names), tuple(cats), tuple(edges), tuple(sizes), tuple(refs))

    @property
    def total(self) -> int:
        return int(sum(self.sizes))

    @cached_property
    def _plan(
        self,
    ) -> tuple[Any, FloatArray, npt.NDArray[np.intp], Any, tuple[tuple[int, int, int], ...]]:
        """What :meth:`counts` needs, computed once.  For the numeric features: their
        columns (a slice when they lead); their inner edges by rank, ``edges[k]`` the
        k-th inner edge of each feature as a column, padded with NaN (no value is >=
        NaN, so padding counts nothing); their first bins (a column); and an
        accumulator dtype wide enough for the most edges.  For the categorical ones:
        (column, first bin, bins)."""
        starts = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(np.intp)
        cols = [i for i, cat in enumerate(self.categorical) if not cat]
        widest = max((self.edges[i].size for i in cols), default=0)
        by_rank = np.full((widest, len(cols), 1), np.nan)
        for row, i in enumerate(cols):
            by_rank[: self.edges[i].size, row, 0] = self.edges[i]
        columns: Any = slice(0, len(cols)) if cols == list(range(len(cols))) else cols
        acc_dtype = np.uint8 if widest < 256 else np.intp
        categorical = tuple(
            (i, int(starts[i]), size)
            for i, (cat, size) in enumerate(zip(self.categorical, self.sizes, strict=True))
            if cat
        )
        return columns, by_rank, starts[cols][:, None], acc_dtype, categorical

    def counts(self, block: FloatArray) -> npt.NDArray[np.int64]:
        """Rows per exported bin (flat, feature after feature) of encoded rows ``block``
        (columns in feature order; categorical values as codes, unseen = n categories).

        A numeric value's bin is the number of inner edges <= it (``bin_index``), counted
        here one edge at a time over the whole block: a compare and an add per edge,
        vectorised and branch-free.  A binary search per value (``searchsorted``) costs
        about twice as much on live rows, whose bins a CPU cannot predict.  The block is
        turned feature-major first: a compare then runs along one feature's contiguous
        values against one edge, about twice as fast as along the block's rows of 30
        features against 30 edges (2,048 rows, 2026-12-03)."""
        columns, edges_by_rank, starts, acc_dtype, categorical = self._plan
        values = np.ascontiguousarray(block[:, columns].T)
        bins = np.zeros(values.shape, dtype=acc_dtype)
        hit = np.empty(values.shape, dtype=np.bool_)
        for edge in edges_by_rank:  # the k-th inner edge of every numeric feature
            np.greater_equal(values, edge, out=hit)
            bins += hit
        out = np.bincount((bins + starts).ravel(), minlength=self.total)
        for i, first, size in categorical:
            codes = np.minimum(block[:, i].astype(np.intp), size - 1)
            out[first : first + size] += np.bincount(codes, minlength=size)
        return out.astype(np.int64, copy=False)
