"""Drift statistics and the threshold each is tested against."""

from __future__ import annotations

import enum
from typing import Final


class DriftMethod(enum.StrEnum):
    """Drift statistics; defaults and thresholds follow Evidently."""

    psi = "psi"
    ks = "ks"
    chi2 = "chi2"
    jensen_shannon = "jensen_shannon"
    wasserstein = "wasserstein"


DEFAULT_DRIFT_METHOD: Final = DriftMethod.psi
#: Rows of live input kept in the sliding drift window (shared by all workers).
DEFAULT_DRIFT_WINDOW: Final = 1000
#: Live rows a second a pod counts into drift (window and pooled bins); above it a
#: uniform sample of requests is counted.  2,000 rows a second pool 600,000 rows into a
#: 5m range, where the live sample adds (bins - 1) / rows to PSI's no-drift average,
#: 1.5e-5 for ten bins, thousands of times below the fixed threshold (0.1): counting
#: more resolves nothing anyone acts on.
DEFAULT_DRIFT_MAX_ROWS_PER_SECOND: Final = 2_000

#: ``driftloop_feature_drift_score`` is "higher means more drift" for every
#: method, so ``max(...) > threshold`` is always the drift test:
#:   psi, jensen_shannon, wasserstein (normed by the reference std): the distance;
#:   ks, chi2: 1 - p-value (0.95 == Evidently's "p < 0.05").
#: The raw statistic and p-value are exported too (METRIC_FEATURE_DRIFT_STATISTIC,
#: METRIC_FEATURE_DRIFT_PVALUE).  Categorical features use chi2 under ``ks`` and
#: jensen_shannon under ``wasserstein`` (the label keeps the configured method).
DRIFT_THRESHOLDS: Final[dict[DriftMethod, float]] = {
    DriftMethod.psi: 0.1,
    DriftMethod.ks: 0.95,
    DriftMethod.chi2: 0.95,
    DriftMethod.jensen_shannon: 0.1,
    DriftMethod.wasserstein: 0.1,
}


# Calibrated thresholds (see docs/drift.md, "Calibrated thresholds").  The training and
# profile Jobs bootstrap each feature's binned statistic under no drift for these live
# window sizes and store it in profile.json ("calibration"); the server turns it into a
# per-feature threshold for its own window and the Deployment's false-alarm rate.
#: Live window sizes (rows) the no-drift distribution is estimated for.
CALIBRATION_WINDOWS: Final = (100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000, 100_000)
#: Methods with a calibrated threshold: the binned ones by bootstrap, ks and chi2 from
#: their p-values.  Wasserstein has none (the fixed DRIFT_THRESHOLDS value applies).
CALIBRATED_METHODS: Final = frozenset(
    {DriftMethod.psi, DriftMethod.jensen_shannon, DriftMethod.ks, DriftMethod.chi2}
)
#: Target rate of false alarms per evaluation of a calibrated trigger with no drift,
#: over all features together (each feature is tested at the Sidak level).
DEFAULT_FALSE_ALARM_RATE: Final = 0.01
#: Binned methods compare live rows per reference decile bin: below 10 expected rows per
#: bin (100 rows) the statistic is mostly sampling noise.  The smallest window they
#: accept, and the fewest live rows the pooled trigger query evaluates.
MIN_BINNED_ROWS: Final = 100
BINNED_METHODS: Final = frozenset({DriftMethod.psi, DriftMethod.jensen_shannon, DriftMethod.chi2})


def sidak_level(false_alarm_rate: float, features: int) -> float:
    """Per-feature level whose max over ``features`` independent tests fires at
    ``false_alarm_rate``: 1 - (1 - rate)^(1/features) (Sidak; conservative for the
    positively dependent features real data has)."""
    return float(1.0 - (1.0 - false_alarm_rate) ** (1.0 / max(features, 1)))
