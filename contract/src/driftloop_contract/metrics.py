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

# Pooled drift across replicas (see docs/drift.md, "Several replicas").  Every pod
# counts the rows it served into the reference bins of each feature; the operator's
# default query sums these counters over all pods of a Deployment in PromQL, so the
# score describes the Deployment's whole traffic whatever the number of replicas.
#: Counter, labels deployment, model, version, feature, bin: live rows per reference bin.
METRIC_FEATURE_BIN_ROWS: Final = "driftloop_feature_bin_rows_total"
#: Gauge, same labels: the reference (training) share of each bin; equal on every pod.
METRIC_FEATURE_REFERENCE: Final = "driftloop_feature_reference_proportion"
#: Counter, labels deployment, model, version: live rows counted into the bins.
METRIC_DRIFT_ROWS: Final = "driftloop_drift_rows_total"
#: Gauge, labels deployment, model, version, feature, method: the calibrated threshold of
#: METRIC_FEATURE_DRIFT for this pod's window and the false-alarm rate (absent for
#: methods or profiles without calibration).
METRIC_FEATURE_DRIFT_THRESHOLD: Final = "driftloop_feature_drift_threshold"
#: Gauge, labels deployment, model, version: rows of the reference profile (the pooled
#: query rescales the calibrated threshold from the window to its live rows with it).
METRIC_REFERENCE_ROWS: Final = "driftloop_drift_reference_rows"
#: Categorical features export at most this many bins: categories from the
#: (MAX_EXPORTED_BINS - 1)-th most frequent on, and unseen values, share the last one.
MAX_EXPORTED_BINS: Final = 32

# Ground truth across replicas: the pod that made a prediction counts the labelled
# rows it receives (forwarded to it by whichever pod took the feedback call); the
# Deployment's live accuracy is sum(increase(correct)) / sum(increase(labelled)).
#: Counter: rows with ground truth.
METRIC_LIVE_LABELED_ROWS: Final = "driftloop_live_labeled_rows_total"
#: Counter (classifiers): labelled rows whose prediction was right.
METRIC_LIVE_CORRECT_ROWS: Final = "driftloop_live_correct_rows_total"
#: Counters (regressors): sums of |error| and error^2 over labelled rows.
METRIC_LIVE_ABS_ERROR: Final = "driftloop_live_absolute_error_total"
METRIC_LIVE_SQUARED_ERROR: Final = "driftloop_live_squared_error_total"

# Shadow promotion: the serving pods mirror live requests to the candidate and compare.
#: Counter, labels deployment, model, version (the serving one), outcome: mirrored (the
#: shadow answered), dropped (the queue was full), failed (no answer, or not a 200).
METRIC_SHADOW_REQUESTS: Final = "driftloop_shadow_requests_total"
#: Counter, labels deployment, model, version, shadow_version: rows both answered.
METRIC_SHADOW_COMPARED_ROWS: Final = "driftloop_shadow_compared_rows_total"
#: Counter, same labels: compared rows whose predictions agree.  The agreement of a
#: shadow is sum(increase(agreed)) / sum(increase(compared)) over the serving pods.
METRIC_SHADOW_AGREED_ROWS: Final = "driftloop_shadow_agreed_rows_total"

# Per-group monitoring (fairness): the groups of each sensitive feature, as training
# reported them (at most MAX_MONITORED_GROUPS per feature, the largest), plus
# OTHER_GROUP and MISSING_GROUP; labels deployment, model, version, feature, group.
#: Counter: predicted rows per group (+ class for classifiers).
METRIC_GROUP_PREDICTIONS: Final = "driftloop_group_predictions_total"
#: Counter (regressors): sum of the predicted values per group (mean = sum / count).
METRIC_GROUP_PREDICTION_SUM: Final = "driftloop_group_prediction_sum_total"
#: Counter: rows with ground truth per group (counted by the pod that predicted them).
METRIC_GROUP_LABELED_ROWS: Final = "driftloop_group_labeled_rows_total"
#: Counter (classifiers): labelled rows per group whose prediction was right.
METRIC_GROUP_CORRECT_ROWS: Final = "driftloop_group_correct_rows_total"
#: Counter (regressors): sum of |prediction - ground truth| per group.
METRIC_GROUP_ABS_ERROR: Final = "driftloop_group_absolute_error_total"
