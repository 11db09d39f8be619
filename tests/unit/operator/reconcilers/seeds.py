"""Objects the Job controller and racing operators leave behind, for table tests.

The harness moves a Job along after a reconcile created it; a table case instead
starts from a world that already holds the Job in some state, so these helpers
build the Jobs the operator's builders would have made and give them a status.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import Any

from driftloop import builders
from driftloop.api import DatasetSpec, KindInfo, TrainingRunSpec
from driftloop.config import OperatorConfig
from driftloop.fake import FakeKube
from driftloop.reconcilers import Outcome
from driftloop.reconcilers._outcome import owner_of

from .harness import CONFIG, NOW, Obj, pod_of_job, stuck_pod, text

#: A Job's state as the Job controller reports it: running (no terminal condition),
#: complete, or failed with one of the Job controller's reasons.
RUNNING = "running"
COMPLETE = "complete"


#: An unfinished Job none of whose pods exists: the API server refuses them, or they
#: are not created yet.
NO_PODS = "no pods"


def job_status(state: str, *, completion: str | None = text(NOW)) -> Obj:
    """``status`` of a Job: ``state`` is running, without pods, complete, or a Failed reason."""
    status: Obj = {"startTime": text(NOW), "active": 1}
    if state == RUNNING:
        return status
    if state == NO_PODS:
        return {"startTime": text(NOW)}
    status.pop("active")
    if state == COMPLETE:
        status["conditions"] = [{"type": "Complete", "status": "True"}]
        if completion is not None:
            status["completionTime"] = completion
        return status
    status["conditions"] = [
        {"type": "Failed", "status": "True", "reason": state, "message": f"Job has {state}"}
    ]
    return status


def profile_job(
    ds: Obj,
    state: str,
    *,
    generation: int = 1,
    refresh: int = 0,
    completion: str | None = text(NOW),
    config: OperatorConfig = CONFIG,
) -> Obj:
    """The profile Job the Dataset reconciler makes, in ``state``."""
    spec = DatasetSpec.model_validate(ds["spec"])
    job = builders.profile_job(owner_of(ds), spec, generation, refresh, config)
    job["metadata"]["uid"] = f"{job['metadata']['name']}-uid"
    job["status"] = job_status(state, completion=completion)
    return job


def training_job(run: Obj, ds: Obj, state: str, *, completion: str | None = text(NOW)) -> Obj:
    """The training Job the TrainingRun reconciler makes, in ``state``."""
    spec = TrainingRunSpec.model_validate(run["spec"])
    job = builders.training_job(owner_of(run), spec, DatasetSpec.model_validate(ds["spec"]), CONFIG)
    job["metadata"]["uid"] = f"{job['metadata']['name']}-uid"
    job["status"] = job_status(state, completion=completion)
    return job


def pod(job: Obj, container: str, message: Mapping[str, Any] | str | None) -> Obj:
    """The Job's pod, terminated with ``message`` (a result dict, raw text or nothing)."""
    return pod_of_job(job["metadata"]["name"], container, message)


def job_pod(job: Obj, **problem: Any) -> Obj:
    """A pod of ``job`` that cannot run (see :func:`~.harness.stuck_pod`)."""
    name = job["metadata"]["name"]
    container = job["spec"]["template"]["spec"]["containers"][0]["name"]
    return stuck_pod(f"{name}-abcde", {"job-name": name}, container=container, **problem)


def events(outcome: Outcome) -> list[tuple[str, str, str]]:
    return [(e.type, e.reason, e.message) for e in outcome.events]


# --------------------------------------------------------------- racing worlds


class StaleJobCacheKube(FakeKube):
    """A read that has not seen the Job yet: another worker created it just now."""

    def get_job(self, namespace: str, name: str) -> Obj | None:
        return None


class StaleModelVersionListKube(FakeKube):
    """Lists of ModelVersions that lag behind: creates still find what exists."""

    def list(self, kind: KindInfo, namespace: str, selector: str = "") -> builtins.list[Obj]:
        if kind.kind == "ModelVersion":
            return []
        return super().list(kind, namespace, selector)


class RacingRunKube(FakeKube):
    """Another run of the model registers ``claim`` just before this one creates it."""

    def __init__(self, objects: list[Obj], claim: Obj) -> None:
        super().__init__(objects, now=text(NOW))
        self.claim: Obj | None = claim

    def create(self, manifest: Obj) -> tuple[Obj, bool]:
        if manifest["kind"] == "ModelVersion" and self.claim is not None:
            self.add(self.claim)  # the other operator worker's create: not ours, not recorded
            self.claim = None
        return super().create(manifest)
