"""Deployment (driftloop.dev): serve a model, watch drift, retrain, promote."""

from __future__ import annotations

import enum
import itertools
from typing import Annotated

from pydantic import Field

import driftloop_contract as contract

from ._base import (
    ApiModel,
    Duration,
    ModelName,
    ResourceRequirements,
    Rule,
    SecretKeySelector,
    StatusBase,
)
from .trainingrun import TrainingRunTemplate

#: A user asks for a retraining run now by setting this annotation to a new request id
#: (``kubectl driftloop retrain``): the operator starts one TrainingRun per id from
#: ``spec.retraining.template``, admitted by the same cooldown and maxConcurrent as a trigger.
RETRAIN_REQUEST_ANNOTATION = "driftloop.dev/retrain-request"


#: The trigger names of scheduled runs and of runs a user requested: reserved.
SCHEDULE_TRIGGER = "schedule"
REQUEST_TRIGGER = "manual"

#: Five cron fields of the characters cron allows, or one of the @ macros.  The shape
#: is checked at admission; a value out of range (minute 61) or an unknown name is
#: refused by the operator with the InvalidSchedule reason (CEL cannot parse cron).
CRON_PATTERN = (
    r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|"
    r"[0-9A-Za-z*/,#-]+( +[0-9A-Za-z*/,#-]+){4})$"
)
CronSchedule = Annotated[str, Field(min_length=1, max_length=128, pattern=CRON_PATTERN)]
#: An IANA zone name's shape; whether the zone exists is the operator's to say
#: (InvalidTimeZone), as the API server cannot read the tz database from CEL.
TimeZoneName = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$")
]


class Channel(enum.StrEnum):
    latest_approved = "latestApproved"
    latest = "latest"


class ModelSelector(ApiModel):
    """Which version to serve: a pinned version or a channel."""

    name: ModelName = Field(description="Model name.")
    version: int | None = Field(
        default=None, ge=1, description="Serve exactly this version (pinned)."
    )
    channel: Channel | None = Field(
        default=None,
        description=(
            "Follow a channel: latestApproved (the default), the highest approved "
            "version; or latest, the highest not rejected or archived. Both skip "
            "versions this Deployment refused."
        ),
    )

    __rules__ = (
        Rule(
            cel="!(has(self.version) && has(self.channel))",
            message="spec.model: set either version or channel, not both",
            check=lambda m: m.version is None or m.channel is None,
        ),
    )


class DriftMonitoring(ApiModel):
    """How the server measures drift of live inputs."""

    method: contract.DriftMethod = Field(
        default=contract.DriftMethod.psi, description="Drift statistic per feature."
    )
    window: int = Field(
        default=1000,
        ge=50,
        le=100_000,
        description="Live rows in the sliding window (per pod, shared by its workers).",
    )
    pool_range: Duration = Field(
        default="5m",
        alias="range",
        description=(
            "PSI and Jensen-Shannon: the default trigger pools the live rows of all "
            "replicas over this range (PromQL range of the summed per-bin counters)."
        ),
    )
    # No schema default (None means the contract's 0.01): an object admitted by this CRD
    # then carries no field an operator of the previous API version would refuse.
    false_alarm_rate: float | None = Field(
        default=None,
        alias="falseAlarmRate",
        ge=1e-4,
        le=0.2,
        description=(
            "Calibrated triggers (the default, or a drift trigger without threshold): the "
            "target share of evaluations with no drift that cross the threshold, over all "
            f"features together (each feature is tested at the Sidak level). Default "
            f"{contract.DEFAULT_FALSE_ALARM_RATE}."
        ),
    )

    # No schema default either (None means the contract's), for the same reason.
    max_rows_per_second: int | None = Field(
        default=None,
        alias="maxRowsPerSecond",
        ge=100,
        le=10_000_000,
        description=(
            "Live rows a second each pod counts into drift (its window and the pooled "
            "bins); above it a uniform sample of requests is counted, and every prediction "
            "is still kept for feedback. Default "
            f"{contract.DEFAULT_DRIFT_MAX_ROWS_PER_SECOND}."
        ),
    )

    __rules__ = (
        Rule(
            cel=(
                "!(self.method in ["
                + ", ".join(f"'{m.value}'" for m in sorted(contract.BINNED_METHODS))
                + f"]) || self.window >= {contract.MIN_BINNED_ROWS}"
            ),
            message=(
                f"spec.monitoring.window: psi, jensen_shannon and chi2 need at least "
                f"{contract.MIN_BINNED_ROWS} rows (10 per reference decile bin); fewer are "
                "mostly sampling noise"
            ),
            check=lambda m: (
                m.method not in contract.BINNED_METHODS or m.window >= contract.MIN_BINNED_ROWS
            ),
        ),
    )


class PrometheusSource(ApiModel):
    """Where the operator reads metrics from."""

    address: str | None = Field(
        default=None,
        max_length=2048,
        pattern=r"^https?://",
        description="Prometheus base URL; defaults to the operator-wide setting.",
    )
    bearer_token_secret_ref: SecretKeySelector | None = Field(
        default=None, description="Secret key holding a bearer token for Prometheus."
    )


class TriggerOperator(enum.StrEnum):
    greater_than = ">"
    less_than = "<"


class Trigger(ApiModel):
    """A PromQL condition that, held long enough, starts a retraining run."""

    name: str = Field(
        min_length=1,
        max_length=20,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="Trigger name (part of the TrainingRun name).",
    )
    query: str | None = Field(
        default=None,
        max_length=4096,
        description=(
            "PromQL returning one value. Default: the max drift score of this "
            "Deployment's features for the monitoring method and serving version."
        ),
    )
    threshold: float | None = Field(
        default=None,
        ge=-1e12,
        le=1e12,
        description=(
            "Fires when the value has been beyond this threshold for `for`. Unset (only "
            "without `query`): calibrated, the drift score relative to each feature's "
            "threshold calibrated on the training data for spec.monitoring.window and "
            "falseAlarmRate, firing above 1."
        ),
    )
    operator: TriggerOperator = Field(
        default=TriggerOperator.greater_than, description="'>' or '<' the threshold."
    )
    for_: Duration = Field(
        default="1m", alias="for", description="How long the condition must hold."
    )

    __rules__ = (
        Rule(
            cel="has(self.threshold) || !has(self.query)",
            message="spec.retraining.triggers: a trigger with a query needs a threshold",
            check=lambda t: t.threshold is not None or t.query is None,
        ),
    )


class Retraining(ApiModel):
    """Drift-triggered retraining policy."""

    enabled: bool = Field(default=True, description="Turn automatic retraining on or off.")
    prometheus: PrometheusSource = Field(default_factory=PrometheusSource)
    interval: Duration = Field(
        default="30s",
        description=(
            "How often triggers are evaluated (checked at each reconcile: every operator "
            "poll interval, 5s by default)."
        ),
    )
    triggers: list[Trigger] = Field(
        default_factory=list,
        max_length=8,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
        description="Conditions that start retraining; empty means the default drift trigger.",
    )
    cooldown: Duration = Field(
        default="30m",
        description="Minimum time between two retraining runs of this Deployment.",
    )
    max_concurrent: int = Field(
        default=1, ge=1, le=10, description="Most retraining runs in flight at once."
    )
    schedule: CronSchedule | None = Field(
        default=None,
        description=(
            "Also retrain on a schedule, in cron syntax (minute hour day-of-month month "
            "day-of-week, or @hourly, @daily, @weekly, @monthly, @yearly), beside the "
            "triggers: one TrainingRun per tick, admitted by the same cooldown and "
            "maxConcurrent (a refused tick is skipped, as a CronJob with "
            "concurrencyPolicy Forbid). After operator downtime only the latest missed "
            "tick runs."
        ),
    )
    time_zone: TimeZoneName | None = Field(
        default=None,
        description="IANA time zone of the schedule (e.g. Europe/Berlin); default UTC.",
    )
    starting_deadline: Duration | None = Field(
        default=None,
        description=(
            "A tick not started within this long of its time (the operator was down) "
            "is skipped, as a CronJob's startingDeadlineSeconds; unset: the latest "
            "missed tick runs however late."
        ),
    )
    template: TrainingRunTemplate = Field(
        description="The TrainingRun to create (its model is spec.model.name)."
    )

    __rules__ = (
        Rule(
            cel="!has(self.timeZone) || has(self.schedule)",
            message="spec.retraining.timeZone needs spec.retraining.schedule",
            check=lambda r: r.time_zone is None or r.schedule is not None,
        ),
        Rule(
            cel="!has(self.startingDeadline) || has(self.schedule)",
            message="spec.retraining.startingDeadline needs spec.retraining.schedule",
            check=lambda r: r.starting_deadline is None or r.schedule is not None,
        ),
        Rule(
            cel="!has(self.triggers) || self.triggers.all(t, "
            f"t.name != '{SCHEDULE_TRIGGER}' && t.name != '{REQUEST_TRIGGER}')",
            message=(
                f"spec.retraining.triggers: the names {SCHEDULE_TRIGGER!r} and "
                f"{REQUEST_TRIGGER!r} are reserved (scheduled and requested runs)"
            ),
            check=lambda r: all(
                t.name not in (SCHEDULE_TRIGGER, REQUEST_TRIGGER) for t in r.triggers
            ),
        ),
    )


class PromotionMode(enum.StrEnum):
    auto = "auto"
    manual = "manual"


class PromotionStrategy(enum.StrEnum):
    rolling = "rolling"
    canary = "canary"
    shadow = "shadow"


class ShadowAnalysis(ApiModel):
    """How a shadowed candidate is judged before it is promoted."""

    window: Duration = Field(
        default="5m",
        description=(
            "How long the candidate, once ready, receives a mirrored copy of live requests "
            "before it is judged on that window."
        ),
    )
    min_agreement: float = Field(
        default=0.95,
        ge=0.0,
        le=1.0,
        description=(
            "Share of compared rows on which the candidate's prediction must agree with "
            "the serving version's (same class; regressors: within tolerance)."
        ),
    )
    tolerance: float = Field(
        default=0.05,
        ge=0.0,
        le=1e6,
        description="Regressors: predictions agree within this relative tolerance.",
    )
    min_rows: int = Field(
        default=100,
        ge=1,
        le=10_000_000,
        description=(
            "Compared rows the window must hold; with fewer the candidate waits for traffic."
        ),
    )
    max_error_ratio: float = Field(
        default=0.01,
        ge=0.0,
        le=1.0,
        description=(
            "The candidate's own health: most share of the mirrored requests it may answer "
            "with an error (any status but 200) over the window."
        ),
    )


class AnalysisOperator(enum.StrEnum):
    less_than = "<"
    less_or_equal = "<="
    greater_than = ">"
    greater_or_equal = ">="


class AnalysisMetric(ApiModel):
    """One PromQL check: the version under analysis passes while ``value operator threshold``.

    The query may name ``${namespace}``, ``${deployment}``, ``${model}``, ``${version}``
    (the version under analysis: the canary, or the version just promoted) and
    ``${baseline}`` (the version it is compared with: the serving one, or the previous).
    """

    name: str = Field(
        min_length=1,
        max_length=32,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="Name of the check (in conditions, events and status).",
    )
    query: str = Field(
        min_length=1, max_length=4096, description="PromQL returning exactly one value."
    )
    operator: AnalysisOperator = Field(
        default=AnalysisOperator.less_than,
        description="How the value must compare with the threshold to pass.",
    )
    threshold: float = Field(ge=-1e12, le=1e12, description="The bound the value is held to.")


class Analysis(ApiModel):
    """Live checks of a version, evaluated against Prometheus."""

    metrics: list[AnalysisMetric] = Field(
        default_factory=list,
        max_length=8,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
        description="Every check must pass; empty: steps only wait out their pauses.",
    )
    no_data_grace: Duration = Field(
        default="1m",
        description=(
            "A query returning no data (no samples, NaN) waits this long after its first "
            "evaluation, then fails with reason AnalysisNoData."
        ),
    )
    interval: Duration = Field(
        default="10s",
        description="How often checks are re-run while waiting for data or a window.",
    )
    prometheus: PrometheusSource | None = Field(
        default=None,
        description="Where to query; default: spec.retraining.prometheus, else the operator's.",
    )


class CanaryStep(ApiModel):
    """One canary step: this share of the traffic goes to the candidate for ``pause``."""

    weight: int = Field(
        ge=1, le=100, description="Percent of the serving pods running the candidate."
    )
    pause: Duration = Field(
        default="1m",
        description="How long the step holds (from its pods being ready) before analysis.",
    )


def _strictly_increasing(weights: list[int]) -> bool:
    return all(a < b for a, b in itertools.pairwise(weights))


class PostPromotion(ApiModel):
    """Keep checking a newly promoted version; roll back to the previous one on failure."""

    window: Duration = Field(
        description="How long after a promotion the analysis keeps running.",
    )


class Promotion(ApiModel):
    """When a new version replaces the serving one."""

    mode: PromotionMode = Field(
        default=PromotionMode.auto,
        description=(
            "auto: promote versions passing the policy; manual: also require the "
            "driftloop.dev/approval=approved annotation on the version."
        ),
    )
    metric: contract.Metric | None = Field(
        default=None,
        description="Metric compared with the serving version (default: the task's first).",
    )
    tolerance: float = Field(
        default=0.0,
        ge=0.0,
        le=1e6,
        description="Promote when new >= serving - tolerance (<= + for error metrics).",
    )
    max_disparity_increase: float | None = Field(
        default=None,
        ge=0.0,
        le=1e6,
        description=(
            "Refuse a candidate whose disparity between groups exceeds the serving "
            "version's by more than this: every difference-type disparity "
            "(demographicParityDifference, equalizedOddsDifference, <metric>Difference) "
            "of every sensitive feature both versions report (their spec.fairness). A "
            "candidate without a fairness report is refused when the serving version has "
            "one. Unset: disparities are not compared."
        ),
    )
    rollout_deadline: Duration = Field(
        default="5m",
        description="Roll back when the new version's rollout has not completed by then.",
    )
    # No schema default: an operator that predates the field must not find it
    # defaulted into its objects (unset means rolling).
    strategy: PromotionStrategy | None = Field(
        default=None,
        description=(
            "rolling (when unset): a version passing the policy replaces the serving one in "
            "one rolling update. canary: the new version first serves the share of traffic "
            "of each step, checked by the analysis. shadow: it first runs as its own "
            "predictor Deployment (<name>-shadow) that receives a mirrored copy of live "
            "requests (answers discarded, off the callers' latency path); it is promoted "
            "when its predictions agree with the serving version's and it stays healthy "
            "over shadow.window, and refused otherwise."
        ),
    )
    shadow: ShadowAnalysis | None = Field(
        default=None, description="The shadow strategy's analysis (defaults when unset)."
    )
    steps: list[CanaryStep] = Field(
        default_factory=list,
        max_length=10,
        description="Canary steps, weights strictly increasing (canary strategy).",
    )
    analysis: Analysis | None = Field(
        default=None,
        description="Checks run at the end of each canary step and after a promotion.",
    )
    post_promotion: PostPromotion | None = Field(
        default=None,
        description="Run the analysis for a window after each promotion; roll back on failure.",
    )

    __rules__ = (
        Rule(
            cel="!has(self.steps) || (self.steps.map(s, s.weight).isSorted() && "
            "self.steps.all(s, self.steps.exists_one(t, t.weight == s.weight)))",
            message="spec.promotion.steps: weights must be strictly increasing",
            check=lambda p: _strictly_increasing([s.weight for s in p.steps]),
        ),
        Rule(
            cel="!has(self.strategy) || self.strategy != 'canary' || "
            "(has(self.steps) && size(self.steps) > 0)",
            message="spec.promotion: strategy canary needs at least one step",
            check=lambda p: p.strategy != PromotionStrategy.canary or bool(p.steps),
        ),
        Rule(
            cel="!has(self.postPromotion) || has(self.analysis)",
            message="spec.promotion.postPromotion needs spec.promotion.analysis",
            check=lambda p: p.post_promotion is None or p.analysis is not None,
        ),
        Rule(
            cel="!has(self.shadow) || (has(self.strategy) && self.strategy == 'shadow')",
            message="spec.promotion.shadow needs spec.promotion.strategy: shadow",
            check=lambda p: p.shadow is None or p.strategy == PromotionStrategy.shadow,
        ),
    )

    @property
    def shadow_analysis(self) -> ShadowAnalysis:
        return self.shadow or ShadowAnalysis()


class Autoscaling(ApiModel):
    """An autoscaling/v2 HorizontalPodAutoscaler for the predictor, owned by the Deployment.

    While set, the HPA owns the predictor's replica count: the operator leaves
    ``replicas`` out of the predictor it applies, so the two never fight.
    """

    min_replicas: int = Field(default=1, ge=1, le=100, description="Fewest serving pods.")
    max_replicas: int = Field(ge=1, le=100, description="Most serving pods.")
    target_cpu_utilization: int | None = Field(
        default=None,
        alias="targetCPUUtilization",
        ge=1,
        le=1000,
        description=(
            "Average CPU use, % of the container's CPU request (needs resources.requests.cpu "
            "and the metrics API, e.g. metrics-server). The default target when "
            "targetRequestsPerSecond is unset: 80."
        ),
    )
    target_requests_per_second: float | None = Field(
        default=None,
        gt=0,
        le=1e6,
        description=(
            "Average inference requests per second per pod, read by the HPA as the Pods "
            "metric driftloop_inference_requests_per_second from the custom metrics API "
            "(e.g. prometheus-adapter over rate(driftloop_inference_requests_total[1m]))."
        ),
    )
    scale_down_stabilization_seconds: int | None = Field(
        default=None,
        ge=0,
        le=3600,
        description=(
            "How long the HPA looks back before removing pods: it scales down to the "
            "highest recommendation of this window (behavior.scaleDown."
            "stabilizationWindowSeconds). Unset: the HPA's default, 300."
        ),
    )

    __rules__ = (
        Rule(
            cel="self.minReplicas <= self.maxReplicas",
            message="spec.autoscaling: minReplicas must not exceed maxReplicas",
            check=lambda a: a.min_replicas <= a.max_replicas,
        ),
        Rule(
            cel="!(has(self.targetCPUUtilization) && has(self.targetRequestsPerSecond))",
            message="spec.autoscaling: set targetCPUUtilization or targetRequestsPerSecond, "
            "not both",
            check=lambda a: (
                a.target_cpu_utilization is None or a.target_requests_per_second is None
            ),
        ),
    )


class DeploymentSpec(ApiModel):
    """Desired state of a model Deployment."""

    model: ModelSelector
    replicas: int = Field(
        default=1, ge=0, le=100, description="Serving pods (ignored while autoscaling is set)."
    )
    autoscaling: Autoscaling | None = Field(
        default=None, description="Scale the serving pods with a HorizontalPodAutoscaler."
    )
    workers: int = Field(default=1, ge=1, le=32, description="Server processes per pod.")
    resources: ResourceRequirements | None = Field(default=None)
    image: str | None = Field(default=None, max_length=512, description="Runtime image override.")
    monitoring: DriftMonitoring = Field(default_factory=DriftMonitoring)
    retraining: Retraining | None = Field(
        default=None, description="Drift-triggered retraining; unset: never retrain."
    )
    promotion: Promotion = Field(default_factory=Promotion)

    __rules__ = (
        Rule(
            cel="!has(self.autoscaling) || !has(self.promotion) || "
            "!has(self.promotion.strategy) || self.promotion.strategy != 'canary'",
            message="spec.promotion.strategy canary splits fixed replicas: not with autoscaling",
            check=lambda d: d.autoscaling is None or d.promotion.strategy != "canary",
        ),
    )


class DriftObservation(ApiModel):
    """The last reading of one trigger."""

    trigger: str = Field(max_length=20)
    value: float | None = Field(default=None)
    threshold: float
    calibrated: bool | None = Field(
        default=None,
        description="The value is the drift relative to the calibrated thresholds (fires above 1).",
    )
    time: str = Field(json_schema_extra={"format": "date-time"})
    firing_since: str | None = Field(default=None, json_schema_extra={"format": "date-time"})


class RetrainRecord(ApiModel):
    """One retraining the operator started."""

    training_run: str = Field(max_length=253)
    trigger: str = Field(max_length=20)
    value: float | None = None
    time: str = Field(json_schema_extra={"format": "date-time"})
    outcome: str | None = Field(default=None, max_length=256)


class VersionRejection(ApiModel):
    """A version this Deployment refused or rolled back, and why."""

    version: int = Field(ge=1, description="Version number.")
    model_version: str = Field(max_length=253, description="The ModelVersion's name.")
    reason: str = Field(
        max_length=64,
        description="PromotionPolicy, RolloutFailed, ShadowDisagrees or ShadowUnhealthy.",
    )
    message: str = Field(default="", max_length=1024)
    time: str = Field(json_schema_extra={"format": "date-time"})


class AnalysisReading(ApiModel):
    """The last value of one analysis check."""

    name: str = Field(max_length=32)
    value: float | None = Field(default=None, description="None: the query returned no data.")
    operator: str = Field(max_length=2)
    threshold: float
    passed: bool | None = Field(default=None, description="None: no data yet, within the grace.")
    time: str = Field(json_schema_extra={"format": "date-time"})


class CanaryStatus(ApiModel):
    """The canary under way."""

    version: int = Field(ge=1, description="The candidate version.")
    model_version: str = Field(max_length=253)
    step: int = Field(ge=0, description="Index of the current step in spec.promotion.steps.")
    weight: int = Field(ge=0, le=100, description="The step's weight.")
    step_started: str = Field(
        json_schema_extra={"format": "date-time"},
        description="When the step began (its pods must be ready within rolloutDeadline).",
    )
    canary_replicas: int = Field(ge=0, description="Pods running the candidate.")
    stable_replicas: int = Field(ge=0, description="Pods running the serving version.")
    step_ready: str | None = Field(
        default=None,
        json_schema_extra={"format": "date-time"},
        description="When the step's pods were all ready: its pause counts from here.",
    )
    analysis_started: str | None = Field(
        default=None,
        json_schema_extra={"format": "date-time"},
        description="When the step's analysis first ran (the no-data grace counts from here).",
    )
    promoting: bool = Field(default=False, description="Every step passed: rolling it out.")
    readings: list[AnalysisReading] = Field(default_factory=list, max_length=8)


class PostPromotionStatus(ApiModel):
    """The analysis of a version just promoted."""

    version: int = Field(ge=1, description="The version promoted.")
    previous_version: int = Field(ge=1, description="Where a failure rolls back to.")
    started: str = Field(json_schema_extra={"format": "date-time"})
    until: str = Field(json_schema_extra={"format": "date-time"})
    readings: list[AnalysisReading] = Field(default_factory=list, max_length=8)


class ServingChange(ApiModel):
    """One change of the version a Deployment serves."""

    version: int = Field(ge=1, description="The version served after the change.")
    from_: int | None = Field(
        default=None, alias="from", description="The version served before, if any."
    )
    reason: str = Field(
        max_length=64,
        description=(
            "FirstVersion, Promoted, CanaryPromoted, ManualApproval, PinChanged, "
            "RolledBack (post-promotion analysis), CanaryAborted or RolloutFailed."
        ),
    )
    message: str = Field(default="", max_length=1024)
    time: str = Field(json_schema_extra={"format": "date-time"})


class ShadowStatus(ApiModel):
    """The candidate shadowing live traffic, and its last analysis."""

    version: int = Field(ge=1, description="The candidate's version number.")
    model_version: str = Field(max_length=253, description="The candidate's ModelVersion.")
    started: str = Field(
        json_schema_extra={"format": "date-time"}, description="When it started shadowing."
    )
    ready_since: str | None = Field(
        default=None,
        json_schema_extra={"format": "date-time"},
        description="When its pods were all ready: the analysis window starts here.",
    )
    agreement: float | None = Field(default=None, description="Last agreement measured.")
    compared_rows: float | None = Field(default=None, description="Rows behind it.")
    error_ratio: float | None = Field(default=None, description="Its own error share.")


class DeploymentStatus(StatusBase):
    """Observed state of a model Deployment."""

    serving_version: int | None = Field(default=None, description="Version being served.")
    serving_model_version: str | None = Field(default=None, max_length=253)
    desired_version: int | None = Field(
        default=None, description="Version being rolled out (equals serving when settled)."
    )
    previous_version: int | None = Field(
        default=None, description="Version served before servingVersion."
    )
    url: str | None = Field(default=None, max_length=2048, description="In-cluster URL.")
    replicas: int | None = Field(default=None, ge=0)
    ready_replicas: int | None = Field(default=None, ge=0)
    rollout_started: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    drift: list[DriftObservation] = Field(
        default_factory=list, max_length=8, description="Last reading per trigger."
    )
    retrain_history: list[RetrainRecord] = Field(
        default_factory=list, max_length=20, description="Recent retraining runs, newest first."
    )
    shadow: ShadowStatus | None = Field(
        default=None, description="The candidate shadowing live traffic (strategy shadow)."
    )
    next_schedule_time: str | None = Field(
        default=None,
        json_schema_extra={"format": "date-time"},
        description="The next tick of spec.retraining.schedule.",
    )
    last_schedule_time: str | None = Field(
        default=None,
        json_schema_extra={"format": "date-time"},
        description="The last tick of the schedule that started a TrainingRun.",
    )
    rejected_versions: list[VersionRejection] = Field(
        default_factory=list,
        max_length=20,
        description=(
            "Versions this Deployment will not serve again unless a user approves them, "
            "newest first: refused by the promotion policy or rolled back after a failed "
            "rollout. The ModelVersion reconciler reads them into each version's approval."
        ),
    )
    canary: CanaryStatus | None = Field(default=None, description="The canary under way.")
    post_promotion: PostPromotionStatus | None = Field(
        default=None, description="The post-promotion analysis under way."
    )
    history: list[ServingChange] = Field(
        default_factory=list,
        max_length=20,
        description="Changes of the version served, newest first (at most 20).",
    )
