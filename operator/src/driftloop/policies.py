"""Pure decisions: phases from Job status, version resolution, approval, promotion.

Inputs are plain Kubernetes objects (dicts) or API models; outputs are small
values.  Nothing here does I/O, so every branch has a unit test.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import ValidationError

import driftloop_contract as contract
from driftloop.api import (
    APPROVAL_ANNOTATION,
    Approval,
    Channel,
    ModelSelector,
    Promotion,
    TrainingRunPhase,
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


def approval(mv: Obj, rejections: Sequence[tuple[str, Obj]] = ()) -> tuple[Approval, str, str]:
    """(approval, reason, message) of a ModelVersion.

    A user's ``driftloop.dev/approval`` annotation wins; then failed evaluation
    gates; then a Deployment's refusal (``rejections``, from the Deployments'
    own status); otherwise it is approved.
    """
    chosen = user_approval(mv)
    if chosen is not None:
        return chosen, "SetByUser", f"{APPROVAL_ANNOTATION}={chosen}"
    if not (mv.get("spec") or {}).get("gatesPassed", True):
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


# --------------------------------------------------------------------------- #
# Serving rollout
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class RolloutState:
    complete: bool
    ready_replicas: int
    replicas: int


def rollout_state(deployment: Obj | None, desired_replicas: int) -> RolloutState:
    """Like ``kubectl rollout status``: is the latest template fully rolled out?"""
    if deployment is None:
        return RolloutState(False, 0, desired_replicas)
    meta = deployment.get("metadata") or {}
    status = deployment.get("status") or {}
    ready = int(status.get("readyReplicas") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    total = int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    complete = (
        int(status.get("observedGeneration") or 0) >= int(meta.get("generation") or 0)
        and updated >= desired_replicas
        and total == updated
        and available >= desired_replicas
    )
    return RolloutState(complete, ready, desired_replicas)
