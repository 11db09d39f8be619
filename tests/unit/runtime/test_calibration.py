"""Calibrated drift thresholds: their false-alarm rate on simulated no-drift data.

The reference is drawn from a known population; live windows are fresh draws from the
same population (not resamples of the reference), scored as the server scores them, and
an evaluation is a false alarm when any feature's score is above its calibrated
threshold.  Seeds are fixed, so each case is deterministic; the tolerances are three
binomial standard errors of the simulated rate, so a calibration that is off by more
than its own Monte-Carlo noise fails.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest

import driftloop_contract as contract
from driftloop_contract import DriftMethod
from driftloop_runtime import calibration, drift, profile

FloatArray = npt.NDArray[np.float64]


def _population(rng: np.random.Generator, rows: int, features: int) -> FloatArray:
    """Normal features, one skewed (exponential) and one discrete (4 integer values)."""
    x = rng.normal(size=(rows, features))
    x[:, 1] = rng.exponential(size=rows)
    x[:, 2] = rng.integers(0, 4, size=rows)
    return x


def _false_alarm_rate(
    method: DriftMethod,
    window: int,
    rate: float,
    features: int,
    evaluations: int,
    seed: int,
    fixed: float | None = None,
    calibrated_for: int | None = None,
) -> float:
    rng = np.random.default_rng(seed)
    names = [f"f{i}" for i in range(features)]
    prof = profile.build([(n, False) for n in names], _population(rng, 5000, features))
    layout = drift.BinLayout.from_profile(
        [(f["name"], False, f) for f in prof["features"]], contract.MAX_EXPORTED_BINS
    )
    found = calibration.thresholds(prof, method, calibrated_for or window, rate, names)
    limits = np.array([fixed if fixed is not None else found[n] for n in names])
    if calibrated_for is not None:
        # the pooled query's rescaling from the window the pods calibrated for to the
        # rows the range holds (driftloop.retraining.calibrated_ratio)
        big_n = prof["rows"]
        factor = (1 / window + 1 / big_n) / (1 / calibrated_for + 1 / big_n)
        limits = limits * (factor if method is DriftMethod.psi else np.sqrt(factor))
    live = _population(rng, evaluations * window, features).reshape(evaluations, window, -1)
    scores = np.empty((evaluations, features))
    for j in range(features):
        bins = drift.bin_index(layout.edges[j], live[:, :, j])
        size = layout.sizes[j]
        flat = (bins + size * np.arange(evaluations)[:, None]).ravel()
        counts = np.bincount(flat, minlength=size * evaluations).reshape(evaluations, size)
        cur = counts / window
        ref = np.broadcast_to(layout.reference[j], cur.shape)
        if method is DriftMethod.psi:
            scores[:, j] = calibration.psi_rows(ref, cur)
        else:
            scores[:, j] = np.sqrt(calibration.js_divergence_rows(ref, cur))
    return float(np.mean((scores > limits).any(axis=1)))


def _tolerance(rate: float, evaluations: int) -> float:
    return 3 * math.sqrt(rate * (1 - rate) / evaluations)


@pytest.mark.parametrize("method", [DriftMethod.psi, DriftMethod.jensen_shannon])
@pytest.mark.parametrize("window", [100, 500, 1000])
def test_calibrated_thresholds_keep_the_false_alarm_rate(method: DriftMethod, window: int) -> None:
    # A 5% target gives ~100 expected alarms in 2,000 evaluations: enough resolution to
    # see the rate is near, not just under, the target (the Sidak level is conservative
    # and the thresholds take it halved, so the expected rate is ~2.5-5%).
    rate, evaluations = 0.05, 2000
    far = _false_alarm_rate(method, window, rate, 10, evaluations, seed=window)
    assert far <= rate + _tolerance(rate, evaluations)
    assert far >= 0.01, "so conservative that drift would go unseen"


@pytest.mark.parametrize("rows", [200, 500, 3000])
def test_thresholds_rescaled_to_the_pooled_rows_keep_the_rate(rows: int) -> None:
    # The pods calibrate for their 1000-row window; the pooled range holds `rows`.
    rate, evaluations = 0.05, 2000
    far = _false_alarm_rate(
        DriftMethod.psi, rows, rate, 10, evaluations, seed=rows, calibrated_for=1000
    )
    assert far <= rate + _tolerance(rate, evaluations)
    assert far >= 0.01


def test_thirty_features_at_one_percent_with_small_windows() -> None:
    # The hardest case: 100-row windows, where an empty decile bin makes PSI jump, and a
    # per-feature level of ~3e-4 (Sidak over 30 features at 1%).
    rate, evaluations = 0.01, 3000
    far = _false_alarm_rate(DriftMethod.psi, 100, rate, 30, evaluations, seed=7)
    assert far <= rate + _tolerance(rate, evaluations)


def test_the_fixed_default_threshold_is_not_calibrated() -> None:
    # Why calibration exists: PSI 0.1 on 100-row windows of undrifted data alarms most
    # of the time (the example), and the simulation sees it.
    far = _false_alarm_rate(DriftMethod.psi, 100, 0.01, 10, 500, seed=3, fixed=0.1)
    assert far > 0.5


def test_thresholds_shrink_with_the_window_and_grow_with_features() -> None:
    rng = np.random.default_rng(0)
    names = [f"f{i}" for i in range(4)]
    prof = profile.build([(n, False) for n in names], _population(rng, 3000, 4))
    small = calibration.thresholds(prof, DriftMethod.psi, 100, 0.01, names)
    large = calibration.thresholds(prof, DriftMethod.psi, 5000, 0.01, names)
    assert all(large[n] < small[n] for n in names)
    one = calibration.thresholds(prof, DriftMethod.psi, 1000, 0.01, names[:1])
    four = calibration.thresholds(prof, DriftMethod.psi, 1000, 0.01, names)
    assert one["f0"] < four["f0"]


def test_p_value_methods_use_the_sidak_level() -> None:
    names = ["a", "b", "c"]
    level = 1 - (1 - 0.01) ** (1 / 3)
    for method in (DriftMethod.ks, DriftMethod.chi2):
        found = calibration.thresholds({}, method, 1000, 0.01, names)
        assert found == pytest.approx(dict.fromkeys(names, 1 - level))


def test_no_calibration_means_no_threshold() -> None:
    # A profile made before calibration existed, or Wasserstein: the trigger falls back
    # to the fixed threshold (the query's `or` branch).
    assert calibration.thresholds({"rows": 10}, DriftMethod.psi, 1000, 0.01, ["a"]) == {}
    prof = profile.build([("a", False)], np.arange(200.0)[:, None])
    assert calibration.thresholds(prof, DriftMethod.wasserstein, 1000, 0.01, ["a"]) == {}


def test_profile_stores_the_calibration_deterministically() -> None:
    x = np.random.default_rng(1).normal(size=(400, 2))
    first = profile.build([("a", False), ("b", False)], x, seed=3)["calibration"]
    again = profile.build([("a", False), ("b", False)], x, seed=3)["calibration"]
    assert first == again
    assert first["windows"] == list(contract.CALIBRATION_WINDOWS)
    assert first["referenceRows"] == 400
    psi = first["features"]["a"]["psi"]
    assert len(psi["mean"]) == len(psi["var"]) == len(contract.CALIBRATION_WINDOWS)
