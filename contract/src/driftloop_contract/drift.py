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
