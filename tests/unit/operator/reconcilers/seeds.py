"""Objects the Job controller and racing operators leave behind, for table tests.

The harness moves a Job along after a reconcile created it; a table case instead
starts from a world that already holds the Job in some state, so these helpers
build the Jobs the operator's builders would have made and give them a status.
"""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeVar

from driftloop import builders
from driftloop.api import DatasetSpec, KindInfo, TrainingRunSpec
from driftloop.client import ConflictError
from driftloop.config import OperatorConfig
from driftloop.fake import FakeKube
from driftloop.reconcilers._outcome import owner_of

from .harness import CONFIG, NOW, Obj, pod_of_job, stuck_pod, text

R = TypeVar("R")

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


# ------------------------------------------------------------- killed operators


class Killed(Exception):  # noqa: N818 - what happened, not an error of the code under test
    """The operator process died (SIGKILL) while this call was under way."""


class InFlightCreateKube(FakeKube):
    """A killed operator's ModelVersion create that reaches the API server late.

    ``late`` was sent by a process that died before the answer came back.  It lands
    at the worst moment for the restarted process: right after its next list of
    ModelVersions was answered, or right before its next ModelVersion create.
    """

    def __init__(self, objects: builtins.list[Obj], late: Obj) -> None:
        super().__init__(objects, now=text(NOW))
        self.late: Obj | None = late

    def _land(self) -> None:
        if self.late is not None:
            super().create(self.late)
            self.late = None

    def list(self, kind: KindInfo, namespace: str, selector: str = "") -> builtins.list[Obj]:
        found = super().list(kind, namespace, selector)
        if kind.kind == "ModelVersion":
            self._land()
        return found

    def create(self, manifest: Obj) -> tuple[Obj, bool]:
        if manifest["kind"] == "ModelVersion":
            self._land()
        return super().create(manifest)


class CrashingKube(FakeKube):
    """An operator SIGKILLed during its calls number ``kills`` (counted from 0).

    A read during which the process dies just raises :class:`Killed`.  A write
    (create, status patch) is lost when ``lands_after`` is None; otherwise it is in
    flight: the API server applies it once ``lands_after`` more calls of the
    restarted process have been answered (0: before its first), whatever it finds
    then.  A late conditioned status patch that finds a newer object is refused.
    :meth:`land` delivers what is still in flight, as the API server eventually does.
    """

    def __init__(
        self, objects: builtins.list[Obj], kills: Collection[int], lands_after: int | None
    ) -> None:
        super().__init__(objects, now=text(NOW))
        self.calls = 0
        self.kills = kills
        self.lands_after = lands_after
        self.in_flight: builtins.list[tuple[int, Callable[[], object]]] = []

    def land(self, before: int | None = None) -> None:
        due = [w for w in self.in_flight if before is None or w[0] <= before]
        self.in_flight = [w for w in self.in_flight if w not in due]
        for _, write in due:
            with contextlib.suppress(ConflictError):  # nobody is left to hear the 409
                write()

    def _call(self, write: bool, call: Callable[[], R]) -> R:
        index = self.calls
        self.calls += 1
        self.land(before=index)
        if index in self.kills:
            if write and self.lands_after is not None:
                self.in_flight.append((index + 1 + self.lands_after, call))
            raise Killed(f"SIGKILL during call {index}")
        return call()

    def create(self, manifest: Obj) -> tuple[Obj, bool]:
        return self._call(True, lambda: super(CrashingKube, self).create(manifest))

    def patch_status(
        self,
        kind: KindInfo,
        namespace: str,
        name: str,
        patch: Obj,
        resource_version: str | None = None,
    ) -> None:
        parent = super()
        self._call(
            True, lambda: parent.patch_status(kind, namespace, name, patch, resource_version)
        )

    def get(self, kind: KindInfo, namespace: str, name: str) -> Obj | None:
        return self._call(False, lambda: super(CrashingKube, self).get(kind, namespace, name))

    def list(self, kind: KindInfo, namespace: str, selector: str = "") -> builtins.list[Obj]:
        parent = super()
        return self._call(False, lambda: parent.list(kind, namespace, selector))

    def get_job(self, namespace: str, name: str) -> Obj | None:
        return self._call(False, lambda: super(CrashingKube, self).get_job(namespace, name))

    def list_pods(self, namespace: str, selector: str) -> builtins.list[Obj]:
        return self._call(False, lambda: super(CrashingKube, self).list_pods(namespace, selector))


class ConcurrentReconcileKube(FakeKube):
    """Another worker of the same process reconciles the same object in between.

    ``other`` runs once, right after this reconcile's first ModelVersion list was
    answered: the window between looking for a run's version and counting the model's.
    """

    def __init__(self, objects: builtins.list[Obj], other: Callable[[FakeKube], object]) -> None:
        super().__init__(objects, now=text(NOW))
        self.other: Callable[[FakeKube], object] | None = other

    def list(self, kind: KindInfo, namespace: str, selector: str = "") -> builtins.list[Obj]:
        found = super().list(kind, namespace, selector)
        if kind.kind == "ModelVersion" and self.other is not None:
            other, self.other = self.other, None
            other(self)
        return found
