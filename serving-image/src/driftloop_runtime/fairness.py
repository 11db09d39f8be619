"""Per-group evaluation of a trained model and the fairness gates, with fairlearn.

Every number comes from fairlearn: per-group metrics from ``MetricFrame`` (its
``difference()`` is a metric's spread, max - min, across groups), and for
classifiers ``demographic_parity_difference``/``_ratio`` and
``equalized_odds_difference``.  Those three need binary labels: a binary
classifier's second class (``classes_[1]``, as roc_auc takes it) is the positive
one; for a multiclass classifier each class in turn is positive against the rest
(one-vs-rest) and the worst class's value is reported and gated.

Disparities are measured over the groups with at least ``minGroupSize`` held-out
rows only; smaller groups are reported, not gated.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import driftloop_contract as contract
from driftloop_contract import (
    DEMOGRAPHIC_PARITY_DIFFERENCE,
    DEMOGRAPHIC_PARITY_RATIO,
    EQUALIZED_ODDS_DIFFERENCE,
    SELECTION_RATE,
    FairnessGates,
    FeatureFairness,
    GroupMetrics,
    Metric,
    SensitiveFeature,
    Task,
)
from driftloop_runtime import scoring
from driftloop_runtime.errors import RuntimeFailureError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

#: Decimals kept in the report (it travels in a 4 KiB termination message).
DIGITS = 4


def group_labels(values: Any, feature: SensitiveFeature) -> pd.Categorical:
    """Each row's group: its value as text, or with ``bins`` the bin it falls in
    ("<30", "[30, 50)", ">=50"); a missing value is the group MISSING_GROUP."""
    import numpy as np
    import pandas as pd

    series = pd.Series(values)
    missing = series.isna().to_numpy()
    if feature.bins is None:
        text = series.astype(object).where(~missing, contract.MISSING_GROUP).astype(str)
        return pd.Categorical(text.to_numpy(dtype=object))
    cuts = [f"{b:g}" for b in feature.bins]
    names = [f"<{cuts[0]}"]
    names += [f"[{lo}, {hi})" for lo, hi in itertools.pairwise(cuts)]
    names.append(f">={cuts[-1]}")
    edges = [-math.inf, *feature.bins, math.inf]
    binned = pd.cut(series.astype(float), edges, right=False, labels=names)
    labels = np.array(binned.astype(object), dtype=object)
    labels[missing] = contract.MISSING_GROUP
    return pd.Categorical(labels)


def _round(value: Any) -> float | None:
    number = float(value)
    return round(number, DIGITS) if math.isfinite(number) else None


def _per_group_metrics(
    task: Task, wanted: Sequence[Metric], positive: str | None
) -> dict[str, scoring.Scorer]:
    from fairlearn.metrics import selection_rate

    metrics: dict[str, scoring.Scorer] = {}
    for metric in wanted:
        score = scoring.scorer(metric)
        if score is not None:  # roc_auc needs scores, not labels: overall only
            metrics[metric.value] = score
    if task is Task.classification and positive is not None:
        metrics[SELECTION_RATE] = functools.partial(selection_rate, pos_label=positive)
    return metrics


def _extremes(by_group: pd.Series) -> str:
    """ "<highest group> <value>, <lowest group> <value>" of a per-group series."""
    values = by_group.dropna()
    if values.empty:
        return "no values"
    hi, lo = values.idxmax(), values.idxmin()
    return f"{_label(hi)} {values[hi]:.4g}, {_label(lo)} {values[lo]:.4g}"


def _label(group: Any) -> str:
    return str(group)[:32]


class _Disparity:
    """One measured disparity: its value and the groups that set it (for messages)."""

    def __init__(self, value: float, groups: str, of_class: str | None = None) -> None:
        self.value = value
        self.groups = groups
        self.of_class = of_class

    def where(self) -> str:
        prefix = f"class {self.of_class!r} vs rest: " if self.of_class is not None else ""
        return f"({prefix}{self.groups})"


def _binary_disparities(y_true: Any, y_pred: Any, groups: Any) -> dict[str, _Disparity]:
    """Demographic parity (difference, ratio) and equalised odds of binary 0/1 labels."""
    from fairlearn.metrics import (
        MetricFrame,
        demographic_parity_difference,
        demographic_parity_ratio,
        equalized_odds_difference,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )

    rates = MetricFrame(
        metrics={
            "selection": selection_rate,
            "tpr": true_positive_rate,
            "fpr": false_positive_rate,
        },
        y_true=y_true,
        y_pred=y_pred,
        sensitive_features=groups,
    )
    by_group = rates.by_group
    spread = rates.difference()
    odds = "tpr" if spread["tpr"] >= spread["fpr"] else "fpr"
    selection = _extremes(by_group["selection"])
    kwargs = {"sensitive_features": groups}
    return {
        DEMOGRAPHIC_PARITY_DIFFERENCE: _Disparity(
            float(demographic_parity_difference(y_true, y_pred, **kwargs)), selection
        ),
        DEMOGRAPHIC_PARITY_RATIO: _Disparity(
            float(demographic_parity_ratio(y_true, y_pred, **kwargs)), selection
        ),
        EQUALIZED_ODDS_DIFFERENCE: _Disparity(
            float(equalized_odds_difference(y_true, y_pred, **kwargs)),
            f"{odds} {_extremes(by_group[odds])}",
        ),
    }


def _worst(per_class: Mapping[str, dict[str, _Disparity]]) -> dict[str, _Disparity]:
    """Of one-vs-rest disparities per class, the worst of each (lowest ratio)."""
    worst: dict[str, _Disparity] = {}
    for of_class, disparities in per_class.items():
        for name, found in disparities.items():
            found.of_class = of_class
            kept = worst.get(name)
            lower_is_worse = name == DEMOGRAPHIC_PARITY_RATIO
            if (
                kept is None
                or math.isnan(kept.value)
                or (found.value < kept.value if lower_is_worse else found.value > kept.value)
            ):
                worst[name] = found
    return worst


def _classification_disparities(
    y_true: np.ndarray, y_pred: np.ndarray, groups: Any, classes: Sequence[str]
) -> dict[str, _Disparity]:
    true_text, pred_text = y_true.astype(str), y_pred.astype(str)
    if len(classes) == 2:
        positive = classes[1]
        return _binary_disparities(
            (true_text == positive).astype(int), (pred_text == positive).astype(int), groups
        )
    return _worst(
        {
            c: _binary_disparities(
                (true_text == c).astype(int), (pred_text == c).astype(int), groups
            )
            for c in classes
        }
    )


def _check(
    name: str, found: _Disparity | None, bound: float | None, *, at_least: bool = False
) -> str | None:
    """The failure line of one gate, or None when it passes (or is not asked for)."""
    if bound is None:
        return None
    if found is None or math.isnan(found.value):
        return f"{name}: not computed (needs two groups of at least minGroupSize rows)"
    if at_least and found.value < bound:
        return f"{name} {found.value:.4g} < min {bound:g} {found.where()}"
    if not at_least and found.value > bound:
        return f"{name} {found.value:.4g} > max {bound:g} {found.where()}"
    return None


def evaluate_feature(
    name: str,
    task: Task,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    groups: pd.Categorical,
    wanted: Sequence[Metric],
    gates: FairnessGates,
    classes: Sequence[str] | None,
) -> FeatureFairness:
    """One sensitive feature's report: per-group metrics (every group), disparities
    over the gated groups, and the gates they fail (each line prefixed ``name``)."""
    import numpy as np
    import pandas as pd
    from fairlearn.metrics import MetricFrame

    positive = classes[1] if classes is not None and len(classes) == 2 else None
    labels = np.asarray(groups, dtype=object)
    metrics = _per_group_metrics(task, wanted, positive)
    frame = MetricFrame(metrics=metrics, y_true=y_true, y_pred=y_pred, sensitive_features=labels)
    sizes = pd.Series(labels).value_counts()  # one pass, not one per group
    order = sorted(sizes.index, key=lambda g: (-int(sizes[g]), str(g)))
    reported = [
        GroupMetrics(
            group=str(g)[: contract.MAX_GROUP_LABEL],
            size=int(sizes[g]),
            gated=int(sizes[g]) >= gates.min_group_size,
            metrics={
                k: v
                for k, v in ((k, _round(frame.by_group.loc[g, k])) for k in metrics)
                if v is not None
            },
        )
        for g in order
    ]

    gated_groups = [g for g in order if int(sizes[g]) >= gates.min_group_size]
    found: dict[str, _Disparity] = {}
    if len(gated_groups) >= 2:
        rows = np.isin(labels, gated_groups)
        sub_true, sub_pred, sub_groups = y_true[rows], y_pred[rows], labels[rows]
        spread = MetricFrame(
            metrics=metrics, y_true=sub_true, y_pred=sub_pred, sensitive_features=sub_groups
        )
        differences = spread.difference()
        for metric in metrics:
            if metric != SELECTION_RATE:
                found[contract.metric_difference(metric)] = _Disparity(
                    float(differences[metric]), _extremes(spread.by_group[metric])
                )
        if task is Task.classification and classes is not None:
            found.update(_classification_disparities(sub_true, sub_pred, sub_groups, classes))

    failed = [
        _check(
            DEMOGRAPHIC_PARITY_DIFFERENCE,
            found.get(DEMOGRAPHIC_PARITY_DIFFERENCE),
            gates.max_demographic_parity_difference,
        ),
        _check(
            DEMOGRAPHIC_PARITY_RATIO,
            found.get(DEMOGRAPHIC_PARITY_RATIO),
            gates.min_demographic_parity_ratio,
            at_least=True,
        ),
        _check(
            EQUALIZED_ODDS_DIFFERENCE,
            found.get(EQUALIZED_ODDS_DIFFERENCE),
            gates.max_equalized_odds_difference,
        ),
        *(
            _check(contract.metric_difference(m), found.get(contract.metric_difference(m)), b)
            for m, b in sorted(gates.max_metric_difference.items())
        ),
    ]
    disparities = {
        k: v for k, v in ((k, _round(d.value)) for k, d in found.items()) if v is not None
    }
    return FeatureFairness(
        feature=name,
        positive_class=positive,
        groups=reported,
        disparities=dict(sorted(disparities.items())),
        failed_gates=[f"{name}: {line}" for line in failed if line is not None],
    )


def evaluate(
    task: Task,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    groups: Mapping[str, pd.Categorical],
    wanted: Sequence[Metric],
    gates: FairnessGates | None,
    classes: Sequence[str] | None,
) -> list[FeatureFairness]:
    """The report of every sensitive feature (``groups``: each one's group labels of
    the held-out rows, in the order of ``y_true``).  Without gates every group is
    reported and gated with the default minGroupSize, and nothing fails."""
    chosen = gates or FairnessGates()
    metrics = list(wanted) or list(contract.METRICS_BY_TASK[task])
    for name in chosen.max_metric_difference:
        metric = next((m for m in contract.METRICS_BY_TASK[task] if m.value == name), None)
        if metric is None or scoring.scorer(metric) is None:
            raise RuntimeFailureError(
                contract.REASON_INVALID_REQUEST,
                f"fairness.maxMetricDifference names {name!r}; use a metric of "
                f"{task.value} computed from predictions: "
                f"{[m.value for m in contract.METRICS_BY_TASK[task] if scoring.scorer(m)]}",
            )
        if metric not in metrics:
            metrics.append(metric)
    if task is Task.classification:  # labels as the classes are named (str)
        y_true, y_pred = y_true.astype(str), y_pred.astype(str)
    return [
        evaluate_feature(name, task, y_true, y_pred, labels, metrics, chosen, classes)
        for name, labels in groups.items()
    ]
