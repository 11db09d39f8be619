"""Why a reconciler's Job or predictor pods cannot run, and when to announce it.

The reconcilers ask only while the Job is unfinished or the rollout incomplete; the
answer (a :class:`~driftloop.policies.PodProblem`) goes into the object's own
conditions, so each status keeps its one writer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from driftloop import policies
from driftloop.builders import Owner
from driftloop.builders.serving import pods_selector

from ._outcome import Context, Event, Obj


def job_problem(ctx: Context, job: Obj) -> policies.PodProblem | None:
    """Why an unfinished Job's pod cannot run, or why the Job controller cannot create one."""
    meta = job["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    pods = ctx.kube.list_pods(namespace, f"job-name={name}")
    problem = policies.pod_problem(pods)
    if problem is None and policies.awaiting_pods(job, pods):
        # A refused pod create shows only in the Job's events: read them only then.
        events = ctx.kube.list_events(namespace, "Job", name, str(meta.get("uid", "")))
        problem = policies.creation_failure(events)
    return problem


def predictor_problem(
    ctx: Context, owner: Owner, predictor: Obj | None, version: int
) -> policies.PodProblem | None:
    """Why the predictor's pods of ``version`` cannot run, or cannot be created."""
    problem = policies.replica_failure(predictor)
    if problem is None:
        pods = ctx.kube.list_pods(owner.namespace, pods_selector(owner, version))
        problem = policies.pod_problem(pods)
    return problem


def announce(problem: policies.PodProblem, previous: Mapping[str, Any] | None) -> list[Event]:
    """A Warning event when ``problem`` is new: not what the condition said before.

    Compared by reason only: the kubelet's and the scheduler's messages may change
    between polls while the problem stays the same.
    """
    if (previous or {}).get("reason") == problem.reason:
        return []
    return [Event("Warning", problem.reason, problem.message)]
