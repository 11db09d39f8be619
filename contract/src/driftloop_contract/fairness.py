"""Per-group evaluation: the fairness gates a run asks for and the report training gives.

The metrics are fairlearn's (``MetricFrame`` and its disparity functions), computed by
the runtime on the held-out rows; this module only names and carries them.
"""

from __future__ import annotations

from typing import Final

from pydantic import Field

from ._base import Payload

#: Disparity names (keys of FeatureFairness.disparities), camelCase like the CRDs.
DEMOGRAPHIC_PARITY_DIFFERENCE: Final = "demographicParityDifference"
DEMOGRAPHIC_PARITY_RATIO: Final = "demographicParityRatio"
EQUALIZED_ODDS_DIFFERENCE: Final = "equalizedOddsDifference"
#: Per-group metric of classifiers: the share of rows predicted as the positive class.
SELECTION_RATE: Final = "selectionRate"
#: Disparities where larger means more disparate (a ratio is the other way round).
DIFFERENCE_SUFFIX: Final = "Difference"

#: Groups of one feature kept in a report; the rest fold into otherGroups/otherRows.
MAX_REPORTED_GROUPS: Final = 8
#: Longest group label kept (a categorical value may be up to 256 characters).
MAX_GROUP_LABEL: Final = 48
#: Label of the rows whose sensitive value is missing (they form a group of their own).
MISSING_GROUP: Final = "(missing)"


def metric_difference(metric: str) -> str:
    """The disparity name of a metric's spread across groups (max - min)."""
    return f"{metric}{DIFFERENCE_SUFFIX}"


class FairnessGates(Payload):
    """Bounds on the disparities between the groups of every sensitive feature."""

    max_demographic_parity_difference: float | None = Field(
        default=None, alias="maxDemographicParityDifference", ge=0.0, le=1.0
    )
    min_demographic_parity_ratio: float | None = Field(
        default=None, alias="minDemographicParityRatio", ge=0.0, le=1.0
    )
    max_equalized_odds_difference: float | None = Field(
        default=None, alias="maxEqualizedOddsDifference", ge=0.0, le=1.0
    )
    #: Metric name -> largest spread (max - min across groups) allowed.
    max_metric_difference: dict[str, float] = Field(
        default_factory=dict, alias="maxMetricDifference"
    )
    #: Groups with fewer held-out rows are reported but not gated (too noisy to judge).
    min_group_size: int = Field(default=30, alias="minGroupSize", ge=1)


class GroupMetrics(Payload):
    """The held-out metrics of one group."""

    group: str = Field(max_length=MAX_GROUP_LABEL)
    #: Held-out rows in the group.
    size: int = Field(ge=0)
    #: Whether the group counts in the disparities (size >= minGroupSize).
    gated: bool
    metrics: dict[str, float] = Field(default_factory=dict)


class FeatureFairness(Payload):
    """One sensitive feature: its groups, the disparities between them, failed gates."""

    feature: str
    #: Binary classification: the class whose selection rate is compared (the
    #: estimator's second class).  Multiclass: None, the disparities are the worst
    #: one-vs-rest class's.  Regression: None.
    positive_class: str | None = Field(default=None, alias="positiveClass")
    #: Largest groups first, at most MAX_REPORTED_GROUPS (fewer to fit the result).
    groups: list[GroupMetrics] = Field(default_factory=list)
    #: Groups not listed in ``groups``, and their held-out rows.
    other_groups: int = Field(default=0, alias="otherGroups", ge=0)
    other_rows: int = Field(default=0, alias="otherRows", ge=0)
    #: Over the gated groups; absent when fewer than two groups are gated.
    disparities: dict[str, float] = Field(default_factory=dict)
    #: One line per failed gate: the disparity, its value and bound, and the groups.
    failed_gates: list[str] = Field(default_factory=list, alias="failedGates")


def keep_groups(report: list[FeatureFairness], limit: int) -> list[FeatureFairness]:
    """The report with at most ``limit`` groups per feature (the largest are listed
    first, so the first ones are kept); the others are counted, not dropped."""
    bounded = []
    for feature in report:
        kept, folded = feature.groups[:limit], feature.groups[limit:]
        bounded.append(
            feature.model_copy(
                update={
                    "groups": kept,
                    "other_groups": feature.other_groups + len(folded),
                    "other_rows": feature.other_rows + sum(g.size for g in folded),
                }
            )
        )
    return bounded


#: Groups of one sensitive feature the server counts on their own (the largest of the
#: training report); any other value is OTHER_GROUP, so series stay bounded.
MAX_MONITORED_GROUPS: Final = 16
#: Label of served values that are not a monitored group.  In parentheses, like
#: MISSING_GROUP, so that it cannot be mistaken for a real value "other".
OTHER_GROUP: Final = "(other)"
#: Request parameter carrying the sensitive attributes of an inference request:
#: {"<feature>": value, or a list of one value per row}.
PARAMETER_GROUPS: Final = "driftloop.dev/groups"
