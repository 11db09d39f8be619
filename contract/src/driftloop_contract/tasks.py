"""What a model predicts and how it is scored: tasks, metrics, the estimator allow-list."""

from __future__ import annotations

import enum
from typing import Final


class Task(enum.StrEnum):
    classification = "classification"
    regression = "regression"


class Metric(enum.StrEnum):
    """Evaluation metrics; higher is better for all but mae and rmse."""

    accuracy = "accuracy"
    f1 = "f1"
    roc_auc = "roc_auc"
    r2 = "r2"
    mae = "mae"
    rmse = "rmse"


METRICS_BY_TASK: Final[dict[Task, tuple[Metric, ...]]] = {
    Task.classification: (Metric.accuracy, Metric.f1, Metric.roc_auc),
    Task.regression: (Metric.r2, Metric.mae, Metric.rmse),
}
LOWER_IS_BETTER: Final = frozenset({Metric.mae, Metric.rmse})

#: Estimators a TrainingRun may name, with the module that defines them.
#: An allow-list: the runtime imports nothing outside it.
ESTIMATORS: Final[dict[str, tuple[str, Task]]] = {
    "LogisticRegression": ("sklearn.linear_model", Task.classification),
    "RandomForestClassifier": ("sklearn.ensemble", Task.classification),
    "GradientBoostingClassifier": ("sklearn.ensemble", Task.classification),
    "HistGradientBoostingClassifier": ("sklearn.ensemble", Task.classification),
    "DecisionTreeClassifier": ("sklearn.tree", Task.classification),
    "KNeighborsClassifier": ("sklearn.neighbors", Task.classification),
    "LinearRegression": ("sklearn.linear_model", Task.regression),
    "Ridge": ("sklearn.linear_model", Task.regression),
    "RandomForestRegressor": ("sklearn.ensemble", Task.regression),
    "GradientBoostingRegressor": ("sklearn.ensemble", Task.regression),
    "HistGradientBoostingRegressor": ("sklearn.ensemble", Task.regression),
    "DecisionTreeRegressor": ("sklearn.tree", Task.regression),
}
