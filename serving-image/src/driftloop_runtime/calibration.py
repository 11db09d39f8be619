"""Calibrated drift thresholds: each statistic's distribution under no drift.

A fixed threshold (PSI 0.1) means a different false-alarm rate at every window size:
with 100 live rows and 10 bins, PSI of data drawn from the training distribution itself
is about 0.09 on average.  So the training and profile Jobs estimate, per feature and
per live window size ``n`` (contract.CALIBRATION_WINDOWS), the distribution of the
binned statistics with no drift, by bootstrap over the reference rows:

- a population: bin shares drawn around the reference shares p with the spread they have
  as estimates from N rows (the Bayesian bootstrap of the N reference rows:
  Dirichlet(N p)), because the profile is itself a sample and live data of the same
  population differs from it by that much too;
- a live window: the bin counts of n rows drawn from that population;
- the statistic between the window and the stored reference p, as the server computes
  it, ``draws`` times, vectorised.

The draws are summarised by their mean and variance and the threshold for a tail level
is the quantile of the scaled chi-squared with the same two moments (Satterthwaite):
asymptotically PSI * n_eff (and JS distance^2 * 8 n_eff) *is* chi-squared with k - 1
degrees of freedom, n_eff = 1 / (1/n + 1/N), and two moments reach the far tail a
per-feature test needs (level ~3e-4 for 30 features), where a few thousand draws give
too few exceedances for an empirical quantile.  Small windows are the exception: with
100 rows a decile bin is sometimes empty, and PSI's clipped log then jumps (+0.69), a
lumpy tail no two-moment fit sees.  So windows up to TAIL_WINDOW_MAX also get TAIL_DRAWS
draws whose empirical upper quantiles (TAIL_LEVELS) are stored, and the threshold is
never below them (deeper levels: the deepest empirical quantile times the fit's ratio).
Features with the same bins (every continuous feature's deciles) share one bootstrap.

Several features: the trigger fires on the max over features, so each feature is tested
at the Sidak level 1 - (1 - rate)^(1/F) (contract.sidak_level): the max over F features
fires with probability ``rate`` when they are independent, less when they are
positively dependent.  ks and chi2 already have p-values; their threshold is that level.

Bins are the ones every pod exports (drift.BinLayout, categorical features folded to
contract.MAX_EXPORTED_BINS), so the threshold fits the pooled PromQL score exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

import driftloop_contract as contract
from driftloop_contract import DriftMethod
from driftloop_runtime import drift

CALIBRATION_VERSION = 1
#: Bootstrap draws per bin layout and window size (features with the same bins share
#: them): with the tail draws about 0.3 s per layout.
DRAWS = 4000
_BOOTSTRAPPED = (DriftMethod.psi, DriftMethod.jensen_shannon)
#: The bootstrapped thresholds are taken at the Sidak level / TAIL_SAFETY: the estimated
#: tail has sampling error, and with ~100 rows PSI's empty-bin jump sits near the
#: per-feature level (P ~ 3e-4), where the quantile would flip between below and above
#: it.  Costs ~6% of threshold (power) where the tail is smooth.
TAIL_SAFETY = 2.0
#: Windows whose tail is estimated empirically too, with this many draws, at these levels.
TAIL_WINDOW_MAX = 200
TAIL_DRAWS = 50_000
TAIL_LEVELS = (1e-2, 3e-3, 1e-3, 3e-4, 1e-4)

FloatArray = npt.NDArray[np.float64]


def psi_rows(ref: FloatArray, cur: FloatArray) -> FloatArray:
    """PSI of each row pair (drift.psi, vectorised over rows of proportions)."""
    r = np.clip(ref, drift.EPS, None)
    c = np.clip(cur, drift.EPS, None)
    out: FloatArray = np.sum((c - r) * np.log(c / r), axis=1)
    return out


def js_divergence_rows(ref: FloatArray, cur: FloatArray) -> FloatArray:
    """Squared Jensen-Shannon distance of each row pair (drift.jensen_shannon ** 2)."""
    m = 0.5 * (ref + cur)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_r = np.where(ref > 0, ref * np.log(ref / m), 0.0)
        kl_c = np.where(cur > 0, cur * np.log(cur / m), 0.0)
    out: FloatArray = np.maximum(0.5 * (kl_r.sum(axis=1) + kl_c.sum(axis=1)), 0.0)
    return out


def null_moments(
    proportions: npt.ArrayLike,
    reference_rows: int,
    windows: Sequence[int],
    draws: int,
    rng: np.random.Generator,
) -> dict[str, dict[str, list[float]]]:
    """Mean and variance, per window size, of PSI and of the squared JS distance of
    ``windows`` live rows against the reference, with no drift (see the module doc)."""
    p = np.clip(np.asarray(proportions, dtype=np.float64), 0.0, None)
    p = p / p.sum() if p.sum() > 0 else np.full(p.size, 1.0 / max(p.size, 1))
    big_n = max(int(reference_rows), 1)
    seen = p > 0  # a bin the reference never saw stays empty (unseen categories)
    out: dict[str, Any] = {m.value: {"mean": [], "var": [], "tail": []} for m in _BOOTSTRAPPED}
    for n in windows:
        size = TAIL_DRAWS if n <= TAIL_WINDOW_MAX else draws
        population = np.zeros((size, p.size))
        population[:, seen] = rng.dirichlet(big_n * p[seen], size=size)
        cur = rng.multinomial(n, population) / n
        ref = np.broadcast_to(p, cur.shape)
        for method, values in (
            (DriftMethod.psi, psi_rows(ref, cur)),
            (DriftMethod.jensen_shannon, js_divergence_rows(ref, cur)),
        ):
            entry = out[method.value]
            entry["mean"].append(float(values.mean()))
            entry["var"].append(float(values.var(ddof=1)))
            if n <= TAIL_WINDOW_MAX:
                entry["tail"].append(np.quantile(values, 1.0 - np.array(TAIL_LEVELS)).tolist())
    return out


def calibrate(layout: drift.BinLayout, reference_rows: int, seed: int = 0) -> dict[str, Any]:
    """profile.json's ``calibration``: per feature, the no-drift moments of each
    bootstrapped method at every contract.CALIBRATION_WINDOWS size."""
    windows = list(contract.CALIBRATION_WINDOWS)
    shared: dict[tuple[float, ...], dict[str, Any]] = {}
    features = {}
    for name, ref in zip(layout.names, layout.reference, strict=True):
        # Shares equal to 3 decimals have the same null distribution for any window
        # calibrated (a 0.0005 difference in a bin's share is below what 100k rows see).
        key = tuple(np.round(np.asarray(ref, dtype=np.float64), 3).tolist())
        if key not in shared:  # a seed per bin layout: the result does not depend on order
            rng = np.random.default_rng([seed, len(shared)])
            shared[key] = null_moments(ref, reference_rows, windows, DRAWS, rng)
        features[name] = shared[key]
    return {
        "version": CALIBRATION_VERSION,
        "draws": DRAWS,
        "tailDraws": TAIL_DRAWS,
        "tailLevels": list(TAIL_LEVELS),
        "seed": seed,
        "referenceRows": int(reference_rows),
        "windows": windows,
        "features": features,
    }


def _interpolated(windows: Sequence[int], values: Sequence[float], n: int) -> float:
    """``values`` at window ``n``: linear in log-log between the calibrated sizes
    (the moments are near power laws of n), clamped to the end points."""
    x = np.log(np.asarray(windows, dtype=np.float64))
    y = np.log(np.maximum(np.asarray(values, dtype=np.float64), 1e-300))
    return float(np.exp(np.interp(np.log(max(n, 1)), x, y)))


def scaled_chi2_quantile(mean: float, var: float, level: float) -> float:
    """Upper ``level`` quantile of a * chi2(nu) with this mean and variance."""
    from scipy import stats

    if mean <= 0 or var <= 0:
        return max(mean, 0.0)
    scale = var / (2.0 * mean)
    dof = 2.0 * mean * mean / var
    return float(scale * stats.chi2.isf(level, dof))


def _tail_quantile(
    cal: dict[str, Any], moments: dict[str, Any], window: int, level: float, mean: float, var: float
) -> float:
    """The empirical upper quantile at ``level`` for small windows (0 where none is
    stored): interpolated log-log between the stored levels and the nearest stored
    windows; below the deepest level, extended by the two-moment fit's ratio."""
    tails = moments.get("tail") or []
    windows = [w for w in cal["windows"] if w <= TAIL_WINDOW_MAX][: len(tails)]
    levels = cal.get("tailLevels") or list(TAIL_LEVELS)
    if not tails or window > windows[-1]:
        return 0.0
    log_levels = -np.log(np.asarray(levels, dtype=np.float64))  # increasing
    # np.interp clamps: a level deeper than the deepest stored one reads that quantile
    at_windows = [
        float(np.exp(np.interp(-np.log(level), log_levels, np.log(np.maximum(t, 1e-300)))))
        for t in tails
    ]
    q = _interpolated(windows, at_windows, window)
    if level < levels[-1]:
        q *= scaled_chi2_quantile(mean, var, level) / max(
            scaled_chi2_quantile(mean, var, levels[-1]), 1e-300
        )
    return q


def thresholds(
    prof: dict[str, Any],
    method: DriftMethod,
    window: int,
    false_alarm_rate: float,
    feature_names: Sequence[str],
) -> dict[str, float]:
    """Calibrated threshold of each feature's drift score (METRIC_FEATURE_DRIFT) for a
    live ``window`` and a false-alarm rate of the max over ``feature_names``.

    Empty when the method has no calibration or the profile was made without one (a
    model trained before calibration existed): the trigger falls back to the fixed
    contract.DRIFT_THRESHOLDS value.
    """
    if method not in contract.CALIBRATED_METHODS or not feature_names:
        return {}
    level = contract.sidak_level(false_alarm_rate, len(feature_names))
    if method in (DriftMethod.ks, DriftMethod.chi2):
        return dict.fromkeys(feature_names, 1.0 - level)  # score = 1 - p
    level /= TAIL_SAFETY
    cal = prof.get("calibration") or {}
    per_feature = cal.get("features") or {}
    windows = cal.get("windows") or []
    out: dict[str, float] = {}
    for name in feature_names:
        moments = (per_feature.get(name) or {}).get(method.value)
        if not moments or not windows:
            continue
        mean = _interpolated(windows, moments["mean"], window)
        var = _interpolated(windows, moments["var"], window)
        q = max(
            scaled_chi2_quantile(mean, var, level),
            _tail_quantile(cal, moments, window, level, mean, var),
        )
        out[name] = float(np.sqrt(q)) if method is DriftMethod.jensen_shannon else q
    return out
