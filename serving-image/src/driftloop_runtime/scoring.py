"""The metrics computed from predicted labels or values (all but roc_auc, which needs
scores): one definition for the overall evaluation and the per-group one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from driftloop_contract import Metric

Scorer = Callable[[Any, Any], float]


def _accuracy(y_true: Any, y_pred: Any) -> float:
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(y_true, y_pred))


def _f1(y_true: Any, y_pred: Any) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y_true, y_pred, average="macro"))


def _r2(y_true: Any, y_pred: Any) -> float:
    from sklearn.metrics import r2_score

    return float(r2_score(y_true, y_pred))


def _mae(y_true: Any, y_pred: Any) -> float:
    from sklearn.metrics import mean_absolute_error

    return float(mean_absolute_error(y_true, y_pred))


def _rmse(y_true: Any, y_pred: Any) -> float:
    import numpy as np
    from sklearn.metrics import mean_squared_error

    return float(np.sqrt(mean_squared_error(y_true, y_pred)))


_SCORERS: dict[Metric, Scorer] = {
    Metric.accuracy: _accuracy,
    Metric.f1: _f1,
    Metric.r2: _r2,
    Metric.mae: _mae,
    Metric.rmse: _rmse,
}


def scorer(metric: Metric) -> Scorer | None:
    """``metric(y_true, y_pred)``; None for a metric that needs scores (roc_auc)."""
    return _SCORERS.get(metric)
