"""Pure decisions: phases from Job status, pods that cannot run, versions, approval, promotion.

Inputs are plain Kubernetes objects (dicts) or API models; outputs are small
values.  Nothing here does I/O, so every branch has a unit test.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import ValidationError

import driftloop_contract as contract
from driftloop.api import (
    APPROVAL_ANNOTATION,
    Approval,
    Channel,
    DatasetSpec,
    ModelSelector,
    Promotion,
    TrainingRunPhase,
    TrainingRunTemplate,
)

Obj = Mapping[str, Any]
ResultT = TypeVar("ResultT", contract.TrainResult, contract.ProfileResult)


# --------------------------------------------------------------------------- #
# Jobs
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class JobOutcome:
    """What a Job's status says: still running, or finished and how."""

    finished: bool
    succeeded: bool = False
    reason: str = ""
    message: str = ""

    @property
    def phase(self) -> TrainingRunPhase:
        if not self.finished:
            return TrainingRunPhase.running
        return TrainingRunPhase.succeeded if self.succeeded else TrainingRunPhase.failed


_JOB_FAILURE_REASONS = {
    "DeadlineExceeded": "DeadlineExceeded",
    "BackoffLimitExceeded": "JobFailed",
    "PodFailurePolicy": "JobFailed",
}


def job_outcome(job: Obj) -> JobOutcome:
    """Read a batch/v1 Job's terminal conditions (Complete / Failed)."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return JobOutcome(finished=True, succeeded=True, reason="JobComplete")
        if condition.get("type") == "Failed":
            reason = _JOB_FAILURE_REASONS.get(condition.get("reason", ""), "JobFailed")
            return JobOutcome(finished=True, reason=reason, message=condition.get("message", ""))
    return JobOutcome(finished=False, reason="JobRunning")


def superseded_jobs(jobs: Iterable[Obj], owner_uid: str, current: str) -> list[str]:
    """Names of ``owner_uid``'s Jobs other than ``current``: older profiles to delete."""
    return sorted(
        job["metadata"]["name"]
        for job in jobs
        if job["metadata"]["name"] != current
        and any(ref.get("uid") == owner_uid for ref in job["metadata"].get("ownerReferences") or [])
    )


def termination_message(pods: Iterable[Obj], container: str) -> str | None:
    """The newest termination message of ``container`` among a Job's pods."""
    best: tuple[str, str] | None = None
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            if status.get("name") != container:
                continue
            terminated = (status.get("state") or {}).get("terminated") or {}
            message = terminated.get("message")
            if message:
                finished = terminated.get("finishedAt") or ""
                if best is None or finished > best[0]:
                    best = (finished, message)
    return best[1] if best else None


def image_id(pods: Iterable[Obj], container: str) -> str | None:
    """The image digest (``imageID``) ``container`` ran with in the newest finished pod.

    The kubelet reports the image it actually ran, resolved to a digest, whatever
    tag the pod spec named: the lineage records that, not the tag.
    """
    best: tuple[str, str] | None = None
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            image = status.get("imageID")
            if status.get("name") != container or not image:
                continue
            finished = ((status.get("state") or {}).get("terminated") or {}).get("finishedAt")
            if best is None or (finished or "") > best[0]:
                best = (finished or "", str(image))
    return best[1] if best else None


#: Inputs of a training run recorded in a ModelVersion's lineage, compared by a rerun.
_REPRODUCED_INPUTS = (
    "datasetDigest",
    "estimator",
    "hyperparameters",
    "testSize",
    "randomState",
    "imageDigest",
)


def reproduction(
    original: Obj, rerun_lineage: Obj, sha256: str | None, metrics: dict[str, float]
) -> dict[str, Any]:
    """How a rerun compares with the ModelVersion ``original`` (its spec): the
    Reproduction status of the run.  ``rerun_lineage`` holds the rerun's inputs in the
    shape of a ModelVersion's lineage.  An input the original did not record (an
    older ModelVersion) is not a difference: nothing says it differed."""
    spec = original.get("spec") or {}
    lineage = spec.get("lineage") or {}
    differences = [
        name
        for name in _REPRODUCED_INPUTS
        if lineage.get(name) is not None and lineage.get(name) != rerun_lineage.get(name)
    ]
    old_libs = lineage.get("libraryVersions") or {}
    new_libs = rerun_lineage.get("libraryVersions") or {}
    differences += [
        f"libraryVersions.{lib}" for lib in sorted(old_libs) if new_libs.get(lib) != old_libs[lib]
    ]
    recorded = spec.get("metrics") or {}
    return {
        "modelVersion": (original.get("metadata") or {}).get("name", ""),
        "artifactMatches": sha256 is not None
        and sha256 == (spec.get("artifact") or {}).get("sha256"),
        "metricsMatch": dict(recorded) == dict(metrics),
        "sha256": sha256,
        "differences": differences[:16],
    }


def succeeded_pods(pods: Iterable[Obj], container: str) -> list[Obj]:
    """The pods whose ``container`` exited 0: of a Job that succeeded after a retry, the
    attempt whose result counts (a failed attempt's pod may outlive the good one)."""
    return [
        pod
        for pod in pods
        for status in (pod.get("status") or {}).get("containerStatuses") or []
        if status.get("name") == container
        and ((status.get("state") or {}).get("terminated") or {}).get("exitCode") == 0
    ]


def _parse(model: type[ResultT], message: str | None) -> ResultT | None:
    """A runtime result from a termination message; None when absent or garbled."""
    if not message:
        return None
    try:
        return model.model_validate(json.loads(message))
    except (ValueError, ValidationError):
        return None


def parse_train_result(message: str | None) -> contract.TrainResult | None:
    return _parse(contract.TrainResult, message)


def parse_profile_result(message: str | None) -> contract.ProfileResult | None:
    return _parse(contract.ProfileResult, message)


def failure_text(
    result: contract.TrainResult | contract.ProfileResult | None, fallback: str
) -> str:
    """One line naming the failed rule and column when the runtime reported them."""
    if result is None:
        return fallback
    parts = []
    if result.rule:
        parts.append(f"rule {result.rule} failed")
    if result.column:
        parts.append(f"column {result.column!r}")
    text = ", ".join(parts)
    if result.message:
        text = f"{text}: {result.message}" if text else result.message
    return text or fallback


# --------------------------------------------------------------------------- #
# Data that cannot be trained on
# --------------------------------------------------------------------------- #

#: Ready reasons of a Dataset whose data the profile Job refused, one per rule the
#: runtime reports (``contract.ValidationRule``): the file is empty ...
EMPTY_FILE = "EmptyFile"
#: ... it has a header and no data rows ...
NO_ROWS = "NoRows"
#: ... it cannot be parsed as CSV or Parquet at all (or is not UTF-8) ...
UNREADABLE_FILE = "UnreadableFile"
#: ... a CSV row has more or fewer fields than the header ...
MALFORMED_ROW = "MalformedRow"
#: ... two columns have one name ...
DUPLICATE_COLUMN = "DuplicateColumn"
#: ... a feature column, or the target column, is not in the data ...
MISSING_COLUMN = "MissingColumn"
MISSING_TARGET = "MissingTarget"
#: ... fewer rows than ``minRows``, more than ``maxRows`` ...
TOO_FEW_ROWS = "TooFewRows"
TOO_MANY_ROWS = "TooManyRows"
#: ... a column has more missing values (empty, NaN) than ``maxNullRatio`` ...
TOO_MANY_MISSING = "TooManyMissing"
#: ... a categorical value outside ``allowedValues`` ...
UNEXPECTED_CATEGORY = "UnexpectedCategory"
#: ... a numeric feature with a non-numeric value ...
NON_NUMERIC_VALUE = "NonNumericValue"
#: ... an infinite number in a numeric column ...
NON_FINITE_VALUE = "NonFiniteValue"
#: ... a target with fewer than two distinct values (classes) ...
TOO_FEW_CLASSES = "TooFewClasses"
#: ... a regression target that is not numeric ...
TARGET_NOT_NUMERIC = "TargetNotNumeric"
#: ... a prefix (directory) source without a Parquet file ...
NO_FILES = "NoFiles"
#: ... or files of one prefix whose schemas differ.
SCHEMA_MISMATCH = "SchemaMismatch"

_RULE_REASONS: Mapping[contract.ValidationRule, str] = {
    contract.ValidationRule.empty_file: EMPTY_FILE,
    contract.ValidationRule.no_rows: NO_ROWS,
    contract.ValidationRule.readable: UNREADABLE_FILE,
    contract.ValidationRule.malformed_row: MALFORMED_ROW,
    contract.ValidationRule.duplicate_column: DUPLICATE_COLUMN,
    contract.ValidationRule.missing_column: MISSING_COLUMN,
    contract.ValidationRule.missing_target: MISSING_TARGET,
    contract.ValidationRule.min_rows: TOO_FEW_ROWS,
    contract.ValidationRule.max_rows: TOO_MANY_ROWS,
    contract.ValidationRule.max_null_ratio: TOO_MANY_MISSING,
    contract.ValidationRule.allowed_values: UNEXPECTED_CATEGORY,
    contract.ValidationRule.numeric_type: NON_NUMERIC_VALUE,
    contract.ValidationRule.non_finite: NON_FINITE_VALUE,
    contract.ValidationRule.target_classes: TOO_FEW_CLASSES,
    contract.ValidationRule.target_numeric: TARGET_NOT_NUMERIC,
    contract.ValidationRule.no_files: NO_FILES,
    contract.ValidationRule.schema_mismatch: SCHEMA_MISMATCH,
}
#: Every reason of refused data: only other data (or another spec) fixes them.
DATA_REFUSALS = frozenset(_RULE_REASONS.values())


def refusal_reason(result: contract.ProfileResult | contract.TrainResult) -> str | None:
    """The Ready reason of a failed result: the refused rule's own, else the result's."""
    if result.reason == contract.REASON_VALIDATION_FAILED and result.rule:
        try:
            return _RULE_REASONS[contract.ValidationRule(result.rule)]
        except ValueError:  # a rule of a newer runtime: the generic reason
            pass
    return result.reason


#: A TrainingRun whose estimator is for another task than its Dataset's ``task``.
TASK_MISMATCH = "TaskMismatch"


def task_mismatch(run: TrainingRunTemplate, dataset: DatasetSpec) -> str | None:
    """Why ``run``'s estimator cannot train on ``dataset``, or None when it can."""
    estimator = str(run.estimator.type)
    task = contract.ESTIMATORS[estimator][1]
    if dataset.task is None or contract.Task(dataset.task) is task:
        return None
    return (
        f"estimator {estimator} is for {task.value}; Dataset {run.dataset_ref.name!r} "
        f"declares task {dataset.task}"
    )


#: A TrainingRun with fairness gates on a Dataset that declares no sensitive features.
NO_SENSITIVE_FEATURES = "NoSensitiveFeatures"


def fairness_mismatch(run: TrainingRunTemplate, dataset: DatasetSpec) -> str | None:
    """Why ``run``'s fairness gates cannot be checked on ``dataset``, or None."""
    if run.evaluation.fairness is None or dataset.sensitive_features:
        return None
    return (
        f"evaluation.fairness gates need groups, and Dataset {run.dataset_ref.name!r} "
        "declares no spec.sensitiveFeatures"
    )


def failed_gates(result: contract.TrainResult) -> list[str]:
    """Every gate a training result failed: the minScores ones, then the fairness ones."""
    return [*result.failed_gates, *(line for f in result.fairness for line in f.failed_gates)]


# --------------------------------------------------------------------------- #
# Registry
# --------------------------------------------------------------------------- #


def next_version(existing: Iterable[Obj]) -> int:
    """Next version number of a model: one above the highest registered."""
    return 1 + max((int(mv["spec"]["version"]) for mv in existing), default=0)


#: Reasons a Deployment records in ``status.rejectedVersions``.
REJECTED_BY_POLICY = "PromotionPolicy"
REJECTED_AFTER_ROLLOUT = "RolloutFailed"


def user_approval(mv: Obj) -> Approval | None:
    """The approval a user set with the ``driftloop.dev/approval`` annotation, if any."""
    annotations = (mv.get("metadata") or {}).get("annotations") or {}
    chosen = annotations.get(APPROVAL_ANNOTATION)
    return Approval(chosen) if chosen in {a.value for a in Approval} else None


def rejections_of(mv: Obj, deployments: Iterable[Obj]) -> list[tuple[str, Obj]]:
    """(Deployment name, rejection record) for each Deployment that refused ``mv``."""
    name = mv["metadata"]["name"]
    found = []
    for deployment in sorted(deployments, key=lambda d: str(d["metadata"]["name"])):
        for record in (deployment.get("status") or {}).get("rejectedVersions") or []:
            if record.get("modelVersion") == name:
                found.append((str(deployment["metadata"]["name"]), record))
    return found


#: Approval reason of a version that failed a fairness gate (the message names them).
FAIRNESS_GATE_FAILED = "FairnessGateFailed"


def approval(mv: Obj, rejections: Sequence[tuple[str, Obj]] = ()) -> tuple[Approval, str, str]:
    """(approval, reason, message) of a ModelVersion.

    A user's ``driftloop.dev/approval`` annotation wins; then failed evaluation
    gates (a failed fairness gate is named first: the message says which feature,
    disparity, value and groups); then a Deployment's refusal (``rejections``, from the Deployments'
    own status); otherwise it is approved.
    """
    chosen = user_approval(mv)
    if chosen is not None:
        return chosen, "SetByUser", f"{APPROVAL_ANNOTATION}={chosen}"
    spec = mv.get("spec") or {}
    if not spec.get("gatesPassed", True):
        unfair = [line for f in spec.get("fairness") or [] for line in f.get("failedGates") or []]
        if unfair:
            return Approval.rejected, FAIRNESS_GATE_FAILED, "; ".join(unfair)
        return Approval.rejected, "GatesFailed", "evaluation gates of the TrainingRun failed"
    if rejections:
        deployment, record = rejections[0]
        reason = str(record.get("reason") or REJECTED_BY_POLICY)
        return Approval.rejected, reason, f"Deployment {deployment}: {record.get('message', '')}"
    return Approval.approved, "GatesPassed", "evaluation gates passed"


def refused_versions(rejected: Iterable[Obj], versions: Iterable[Obj]) -> dict[int, Obj]:
    """A Deployment's rejected versions by number, less those a user approved since."""
    approved = {
        int(mv["spec"]["version"]) for mv in versions if user_approval(mv) == Approval.approved
    }
    return {
        int(record["version"]): record
        for record in rejected
        if int(record["version"]) not in approved
    }


def resolve_version(
    selector: ModelSelector, versions: Sequence[Obj], refused: Collection[int] = ()
) -> Obj | None:
    """The ModelVersion a Deployment's model selector points at, or None.

    A channel skips the ``refused`` version numbers; a pinned version does not
    (the caller decides what a refused pin means).
    """
    mine = [mv for mv in versions if mv["spec"]["model"] == selector.name]
    if selector.version is not None:
        return next((mv for mv in mine if mv["spec"]["version"] == selector.version), None)
    mine = [mv for mv in mine if int(mv["spec"]["version"]) not in refused]
    channel = selector.channel or Channel.latest_approved
    if channel == Channel.latest_approved:
        eligible = [mv for mv in mine if (mv.get("status") or {}).get("approval") == "approved"]
    else:
        eligible = [
            mv
            for mv in mine
            if (mv.get("status") or {}).get("approval") not in {"rejected", "archived"}
        ]
    return max(eligible, key=lambda mv: int(mv["spec"]["version"]), default=None)


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str
    message: str


def promotion_decision(policy: Promotion, candidate: Obj, serving: Obj | None) -> PromotionDecision:
    """Whether ``candidate`` may replace the ``serving`` ModelVersion."""
    version = candidate["spec"]["version"]
    if serving is None:
        return PromotionDecision(True, "FirstVersion", f"serving version {version}")
    if policy.mode == "manual":
        annotations = (candidate.get("metadata") or {}).get("annotations") or {}
        if annotations.get(APPROVAL_ANNOTATION) != "approved":
            return PromotionDecision(
                False,
                "AwaitingApproval",
                f"version {version} waits for {APPROVAL_ANNOTATION}=approved",
            )
    worse = disparity_increase(policy, candidate, serving)
    if worse is not None:
        return PromotionDecision(False, REJECTED_BY_POLICY, f"version {version} {worse}")
    task = contract.Task(candidate["spec"]["task"])
    metric = contract.Metric(policy.metric or contract.METRICS_BY_TASK[task][0])
    new = (candidate["spec"].get("metrics") or {}).get(metric.value)
    old = (serving["spec"].get("metrics") or {}).get(metric.value)
    if new is None:
        return PromotionDecision(False, "MetricMissing", f"version {version} has no {metric}")
    if old is None:
        return PromotionDecision(True, "NoBaseline", f"serving version has no {metric}")
    if metric in contract.LOWER_IS_BETTER:
        passes = new <= old + policy.tolerance
        bound = f"<= {old:.4g} + {policy.tolerance:g}"
    else:
        passes = new >= old - policy.tolerance
        bound = f">= {old:.4g} - {policy.tolerance:g}"
    verdict = "passes" if passes else "fails"
    return PromotionDecision(
        passes,
        "PolicyPassed" if passes else "PromotionPolicy",
        f"version {version} {metric}={new:.4g} {verdict} {bound}",
    )


def _disparities(mv: Obj) -> dict[tuple[str, str], float]:
    """(feature, disparity) -> value of the difference-type disparities of a version."""
    return {
        (str(f.get("feature")), name): float(value)
        for f in (mv.get("spec") or {}).get("fairness") or []
        for name, value in (f.get("disparities") or {}).items()
        if name.endswith(contract.DIFFERENCE_SUFFIX)
    }


def disparity_increase(policy: Promotion, candidate: Obj, serving: Obj) -> str | None:
    """What makes ``candidate`` more disparate than ``serving`` beyond
    ``maxDisparityIncrease``, or None (also when the policy does not ask)."""
    if policy.max_disparity_increase is None:
        return None
    old = _disparities(serving)
    if not old:
        return None  # nothing to compare with
    new = _disparities(candidate)
    if not new:
        return "has no fairness report to compare with the serving version's"
    tolerance = policy.max_disparity_increase
    worse = [
        f"{feature} {name}={new[feature, name]:.4g} > {old[feature, name]:.4g} + {tolerance:g}"
        for feature, name in sorted(old.keys() & new.keys())
        if new[feature, name] > old[feature, name] + tolerance
    ]
    return "disparity increased: " + ", ".join(worse) if worse else None


# --------------------------------------------------------------------------- #
# Serving rollout
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class RolloutState:
    complete: bool
    ready_replicas: int
    replicas: int
    #: What the rollout waits for, worded as ``kubectl rollout status`` words it.
    progress: str = ""


def rollout_state(deployment: Obj | None, desired_replicas: int) -> RolloutState:
    """Like ``kubectl rollout status``: is the latest template fully rolled out?"""
    if deployment is None:
        return RolloutState(False, 0, desired_replicas, "waiting for the predictor Deployment")
    meta = deployment.get("metadata") or {}
    status = deployment.get("status") or {}
    ready = int(status.get("readyReplicas") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    total = int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    if int(status.get("observedGeneration") or 0) < int(meta.get("generation") or 0):
        progress = "waiting for the Deployment spec update to be observed"
    elif updated < desired_replicas:
        progress = f"{updated} of {desired_replicas} new replicas updated"
    elif total > updated:
        progress = f"{total - updated} old replicas pending termination"
    elif available < desired_replicas:
        progress = f"{available} of {desired_replicas} updated replicas available"
    else:
        return RolloutState(True, ready, desired_replicas)
    return RolloutState(False, ready, desired_replicas, progress)


# --------------------------------------------------------------------------- #
# Pods that cannot run
# --------------------------------------------------------------------------- #

#: Ready reasons of an object whose Job or predictor pods cannot run (as cert-manager
#: names its reasons): the pod is unschedulable (an unbound claim, too little CPU or
#: memory, a node selector no node matches) ...
POD_UNSCHEDULABLE = "PodUnschedulable"
#: ... a ResourceQuota refuses the pod ...
QUOTA_EXCEEDED = "QuotaExceeded"
#: ... another admission check refuses it (a LimitRange, Pod Security, a webhook) ...
POD_CREATION_FAILED = "PodCreationFailed"
#: ... its image cannot be pulled (absent, no access, registry unreachable) ...
IMAGE_PULL_FAILED = "ImagePullFailed"
#: ... its image reference is malformed ...
INVALID_IMAGE = "InvalidImage"
#: ... a Secret or ConfigMap (or a key in it) that its environment names is missing ...
CONFIG_ERROR = "ConfigError"
#: ... or its container keeps exiting (restartPolicy Always: predictor pods only).
CRASH_LOOPING = "CrashLooping"

#: Of these, the reasons a fix outside the spec resolves (a claim that binds, a quota
#: raised, an image pushed, a Secret created, an artifact repaired): kstatus
#: "Reconciling", though some end in "Failed".  A malformed image reference
#: (:data:`INVALID_IMAGE`) is not among them: only a spec change fixes it.
POD_WAITING_REASONS = frozenset(
    {
        POD_UNSCHEDULABLE,
        QUOTA_EXCEEDED,
        POD_CREATION_FAILED,
        IMAGE_PULL_FAILED,
        CONFIG_ERROR,
        CRASH_LOOPING,
    }
)

#: The kubelet's ``state.waiting.reason`` of a container that cannot start, as a reason.
_CONTAINER_WAITING = {
    "ErrImagePull": IMAGE_PULL_FAILED,
    "ImagePullBackOff": IMAGE_PULL_FAILED,
    "ErrImageNeverPull": IMAGE_PULL_FAILED,
    "RegistryUnavailable": IMAGE_PULL_FAILED,
    "SignatureValidationFailed": IMAGE_PULL_FAILED,
    "InvalidImageName": INVALID_IMAGE,
    "CreateContainerConfigError": CONFIG_ERROR,
    "CrashLoopBackOff": CRASH_LOOPING,
}
#: During the back-off between pulls the kubelet says ``Back-off pulling image "x"`` and
#: appends the last pull's error: kept alone, the message stays the same between polls.
_PULL_BACK_OFF = re.compile(
    r'^Back-off pulling image "[^"]*": '
    r"(?:ErrImagePull|RegistryUnavailable|SignatureValidationFailed): (?P<error>.+)$",
    re.S,
)
#: A refused pod create names the pod, whose generated name changes with every attempt.
_CREATE_REFUSED = re.compile(r'^(?:Error creating: )?pods "[^"]*" is forbidden: (?P<why>.+)$', re.S)


@dataclass(frozen=True)
class PodProblem:
    """Why a workload's pods cannot run: a Ready reason and the pod's own message."""

    reason: str
    message: str


def _last_exit(status: Obj) -> Obj:
    """The container's latest termination: now (between restarts), or the one before."""
    state = status.get("state") or {}
    return dict(state.get("terminated") or (status.get("lastState") or {}).get("terminated") or {})


def _crash_looping(status: Obj, waiting_reason: str) -> bool:
    """In CrashLoopBackOff, or restarted after failing and not ready (yet) again.

    Between two back-offs the container runs, or has just exited, for a moment: still
    the same crash loop, not a recovery (which is the container becoming ready).
    """
    if waiting_reason == "CrashLoopBackOff":
        return True
    if status.get("ready") or not int(status.get("restartCount") or 0):
        return False
    return int(_last_exit(status).get("exitCode") or 0) != 0


def _container_problem(pod: str, status: Obj) -> PodProblem | None:
    waiting = (status.get("state") or {}).get("waiting") or {}
    waiting_reason = str(waiting.get("reason", ""))
    reason = _CONTAINER_WAITING.get(waiting_reason)
    if reason is None and _crash_looping(status, waiting_reason):
        reason = CRASH_LOOPING
    if reason is None:
        return None
    container = status.get("name", "")
    detail = str(waiting.get("message") or waiting_reason)
    if reason == CRASH_LOOPING:
        # The back-off message counts seconds; the last exit says what went wrong.
        last = _last_exit(status)
        detail = f"restarting after exit code {last.get('exitCode', '?')}"
        if last.get("reason"):
            detail += f" ({last['reason']})"
        if last.get("message"):
            detail += f": {str(last['message']).strip()}"
    elif reason == IMAGE_PULL_FAILED and (match := _PULL_BACK_OFF.match(detail)):
        detail = match["error"]
    return PodProblem(reason, f"pod {pod}: container {container}: {detail}")


def pod_problem(pods: Iterable[Obj]) -> PodProblem | None:
    """Why one of ``pods`` cannot run, or None while they can (or have finished).

    Read from what the scheduler and the kubelet report in each pod's status: a
    ``PodScheduled=False`` condition with reason ``Unschedulable``, or a container
    waiting in ``ErrImagePull``/``ImagePullBackOff`` (or another pull error),
    ``InvalidImageName``, ``CreateContainerConfigError`` or ``CrashLoopBackOff`` (or,
    between two back-offs, restarted after a failure and not ready).  The newest pod
    speaks first (a Job's latest attempt, the predictor's latest template: an older
    pod may linger with a problem already fixed), then by name, so the same pods give
    the same answer.
    """

    def field(pod: Obj, key: str) -> str:
        return str((pod.get("metadata") or {}).get(key) or "")

    by_name = sorted(pods, key=lambda p: field(p, "name"))
    for pod in sorted(by_name, key=lambda p: field(p, "creationTimestamp"), reverse=True):
        meta = pod.get("metadata") or {}
        status = pod.get("status") or {}
        if meta.get("deletionTimestamp") or status.get("phase") in ("Succeeded", "Failed"):
            continue
        name = str(meta.get("name", ""))
        for container in [
            *(status.get("initContainerStatuses") or []),
            *(status.get("containerStatuses") or []),
        ]:
            problem = _container_problem(name, container)
            if problem is not None:
                return problem
        for condition in status.get("conditions") or []:
            if (condition.get("type"), condition.get("status"), condition.get("reason")) == (
                "PodScheduled",
                "False",
                "Unschedulable",
            ):
                return PodProblem(POD_UNSCHEDULABLE, f"pod {name}: {condition.get('message', '')}")
    return None


def _refused(message: str) -> PodProblem:
    """A refused pod create: a quota, or another admission check."""
    match = _CREATE_REFUSED.match(message)
    why = match["why"] if match else message
    reason = QUOTA_EXCEEDED if "exceeded quota" in why else POD_CREATION_FAILED
    return PodProblem(reason, f"cannot create pods: {why}")


def awaiting_pods(job: Obj, pods: Sequence[Obj]) -> bool:
    """An unfinished Job with no pod: the Job controller may be failing to create one."""
    return not pods and not int((job.get("status") or {}).get("active") or 0)


def creation_failure(events: Iterable[Obj]) -> PodProblem | None:
    """Why a Job's pods could not be created, from its newest ``FailedCreate`` event.

    The Job controller reports a refused pod create (``exceeded quota``, a LimitRange,
    Pod Security) only as a Warning event on the Job, ``Error creating: pods "x" is
    forbidden: ...``; neither its status nor its conditions say so (Kubernetes 1.35).
    """
    failed = [e for e in events if e.get("reason") == "FailedCreate" and e.get("message")]
    if not failed:
        return None

    def when(event: Obj) -> str:
        meta = event.get("metadata") or {}
        return str(
            event.get("lastTimestamp") or event.get("eventTime") or meta.get("creationTimestamp")
        )

    return _refused(str(max(failed, key=when)["message"]))


def replica_failure(deployment: Obj | None) -> PodProblem | None:
    """Why an apps/v1 Deployment's pods could not be created: its ReplicaFailure condition.

    The Deployment controller copies the ReplicaSet's ``FailedCreate`` (a quota, a
    LimitRange, ...) into it, with the API server's message.
    """
    for condition in ((deployment or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == "ReplicaFailure" and condition.get("status") == "True":
            return _refused(str(condition.get("message") or condition.get("reason", "")))
    return None
