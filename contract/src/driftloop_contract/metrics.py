"""Prometheus metrics exported by the model server.

The operator's default PromQL is built from these names.  Labels of the drift
gauges: deployment, model, version, feature, method.
"""

from __future__ import annotations

from typing import Final

METRIC_REQUESTS: Final = "driftloop_inference_requests_total"
METRIC_REQUEST_DURATION: Final = "driftloop_inference_request_duration_seconds"
METRIC_PREDICTIONS: Final = "driftloop_predictions_total"

#: "Higher means more drift" for every method (see drift.DRIFT_THRESHOLDS).
METRIC_FEATURE_DRIFT: Final = "driftloop_feature_drift_score"
METRIC_FEATURE_DRIFT_STATISTIC: Final = "driftloop_feature_drift_statistic"
METRIC_FEATURE_DRIFT_PVALUE: Final = "driftloop_feature_drift_p_value"
#: Drift of the prediction distribution vs the reference predictions.
METRIC_PREDICTION_DRIFT: Final = "driftloop_prediction_drift_score"
METRIC_DRIFT_WINDOW_FILL: Final = "driftloop_drift_window_fill_ratio"
#: Rows currently in the drift window (fill ratio = rows / window).
METRIC_DRIFT_WINDOW_ROWS: Final = "driftloop_drift_window_rows"
#: Regression predictions: histogram over the reference prediction quantiles.
METRIC_PREDICTION_VALUE: Final = "driftloop_prediction_value"

METRIC_FEEDBACK: Final = "driftloop_feedback_total"
METRIC_LIVE_SCORE: Final = "driftloop_live_score"
#: Rows of ground truth behind METRIC_LIVE_SCORE.
METRIC_LIVE_SCORE_ROWS: Final = "driftloop_live_score_rows"
