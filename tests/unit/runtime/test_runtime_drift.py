"""Drift statistics against scipy and textbook values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from driftloop_contract import DRIFT_THRESHOLDS, DriftMethod
from driftloop_runtime import drift, profile

RNG = np.random.default_rng(42)
REF = RNG.normal(0.0, 1.0, 5000)
SAME = RNG.normal(0.0, 1.0, 1000)
SHIFTED = RNG.normal(2.0, 1.0, 1000)


def test_psi_formula_on_hand_made_bins() -> None:
    ref = np.array([0.25, 0.25, 0.25, 0.25])
    cur_counts = np.array([10, 20, 30, 40])
    cur = cur_counts / cur_counts.sum()
    expected = sum((c - r) * math.log(c / r) for c, r in zip(cur, ref, strict=True))
    assert drift.psi(ref, cur_counts) == pytest.approx(expected)
    # textbook example: 0.1 / 0.9 split vs 0.5 / 0.5
    assert drift.psi([0.5, 0.5], [0.1, 0.9]) == pytest.approx(
        (0.1 - 0.5) * math.log(0.1 / 0.5) + (0.9 - 0.5) * math.log(0.9 / 0.5)
    )


def test_psi_clips_empty_bins() -> None:
    value = drift.psi([0.5, 0.5, 0.0], [0.5, 0.0, 0.5])
    assert math.isfinite(value)
    assert value > 1.0


def test_ks_equals_scipy() -> None:
    res = stats.ks_2samp(REF, SHIFTED)
    got = drift.ks(REF, SHIFTED)
    assert got.statistic == pytest.approx(res.statistic)
    assert got.p_value == pytest.approx(res.pvalue)
    assert drift.ks_statistic(REF, SHIFTED) == pytest.approx(res.statistic)
    assert drift.ks_statistic(REF, SAME) == pytest.approx(stats.ks_2samp(REF, SAME).statistic)


def test_jensen_shannon_equals_scipy() -> None:
    p = np.array([0.1, 0.2, 0.3, 0.4])
    q = np.array([0.4, 0.3, 0.2, 0.1])
    assert drift.jensen_shannon(p, q) == pytest.approx(jensenshannon(p, q))
    assert drift.jensen_shannon(p, [0, 0, 0, 1]) == pytest.approx(jensenshannon(p, [0, 0, 0, 1]))


def test_wasserstein_equals_scipy() -> None:
    got = drift.wasserstein(REF, SHIFTED, float(REF.std()))
    assert got.statistic == pytest.approx(stats.wasserstein_distance(REF, SHIFTED))
    assert got.score == pytest.approx(got.statistic / REF.std())


def test_chi2_equals_scipy() -> None:
    ref = np.array([0.2, 0.3, 0.5])
    counts = np.array([30.0, 30.0, 40.0])
    res = stats.chisquare(counts, ref * counts.sum())
    got = drift.chi2(ref, counts)
    assert got.statistic == pytest.approx(res.statistic)
    assert got.p_value == pytest.approx(res.pvalue)
    assert got.score == pytest.approx(1 - res.pvalue)


@pytest.mark.parametrize("method", list(DriftMethod))
def test_zero_drift_on_identical_and_large_on_shifted(method: DriftMethod) -> None:
    entry = profile.numeric_entry("x", REF)
    same = drift.numeric_drift(method, entry, np.asarray(entry["sample"]))
    shifted = drift.numeric_drift(method, entry, SHIFTED)
    threshold = DRIFT_THRESHOLDS[method]
    if method in (DriftMethod.ks, DriftMethod.chi2):
        assert same.score < 0.5  # 1 - p: identical samples are far from significant
    else:
        assert same.score < threshold / 2
    assert shifted.score > threshold


@pytest.mark.parametrize("method", list(DriftMethod))
def test_categorical_drift(method: DriftMethod) -> None:
    entry = profile.categorical_entry("c", ["a"] * 50 + ["b"] * 30 + ["c"] * 20)
    assert entry["categories"] == ["a", "b", "c"]
    assert entry["proportions"] == pytest.approx([0.5, 0.3, 0.2, 0.0])
    ref = np.asarray(entry["proportions"])
    same = drift.categorical_drift(method, ref, np.array([500.0, 300.0, 200.0, 0.0]))
    moved = drift.categorical_drift(method, ref, np.array([100.0, 100.0, 300.0, 500.0]))
    assert same.score == pytest.approx(0.0, abs=1e-6)
    assert moved.score > DRIFT_THRESHOLDS[method]


def test_profile_bins_are_deciles() -> None:
    entry = profile.numeric_entry("x", np.arange(1000.0))
    assert len(entry["edges"]) == profile.N_BINS - 1
    assert entry["proportions"] == pytest.approx([0.1] * profile.N_BINS)
    assert len(entry["sample"]) == profile.SAMPLE_SIZE
    big = profile.numeric_entry("y", RNG.normal(size=50_000))
    assert len(big["sample"]) == profile.SAMPLE_SIZE
    discrete = profile.numeric_entry("z", [0, 1] * 100)
    assert len(discrete["proportions"]) == len(discrete["edges"]) + 1
    assert sum(discrete["proportions"]) == pytest.approx(1.0)


@pytest.mark.parametrize("categorical_first", [False, True])
def test_bin_counts_are_each_values_reference_bin(categorical_first: bool) -> None:
    """``BinLayout.counts`` (compare-and-add per edge) counts every value into the bin
    ``bin_index`` (a binary search) gives it: values on an edge, beyond the outer
    edges, features with different numbers of edges (one with more than 255),
    categorical codes interleaved and folded into the last bin."""
    rng = np.random.default_rng(7)
    features: list[tuple[str, bool, dict[str, object]]] = [
        ("a", False, {"edges": [-1.0, 0.0, 1.0]}),
        ("b", False, {"edges": sorted(rng.normal(size=9).tolist())}),
        ("wide", False, {"edges": np.linspace(-3, 3, 300).tolist()}),
        ("flat", False, {"edges": []}),
    ]
    cat = ("c", True, {"categories": ["x", "y", "z", "w"], "proportions": [0.4, 0.3, 0.2, 0.1, 0]})
    features.insert(0 if categorical_first else 2, cat)
    layout = drift.BinLayout.from_profile(features, max_bins=3)
    n = 5000
    block = rng.normal(scale=2, size=(n, len(features) + 1))
    cat_col = 0 if categorical_first else 2
    block[:, cat_col] = rng.integers(0, 5, size=n)  # 4 = unseen
    block[:10, 1 if categorical_first else 0] = [-1.0, 0.0, 1.0, -1e9, 1e9, -1.0, 0.5, 0, 1, 2]

    expected = []
    for i, (_, categorical, prof) in enumerate(features):
        size = layout.sizes[i]
        if categorical:
            idx = np.minimum(block[:, i].astype(np.int64), size - 1)
        else:
            idx = drift.bin_index(np.asarray(prof["edges"], dtype=np.float64), block[:, i])
        expected.append(np.bincount(idx, minlength=size))
    np.testing.assert_array_equal(layout.counts(block), np.concatenate(expected))
    np.testing.assert_array_equal(layout.counts(block[:1]), layout.counts(block[:1].copy()))
    assert layout.counts(block[:0]).sum() == 0
