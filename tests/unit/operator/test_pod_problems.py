"""Pure decisions about pods that cannot run: what the scheduler, kubelet and controllers say.

Messages are the ones Kubernetes 1.35 writes (scheduler, kubelet, API server admission).
"""

from __future__ import annotations

from typing import Any

import pytest

from driftloop import policies
from driftloop.policies import PodProblem

from .reconcilers.harness import pod_status

Obj = dict[str, Any]

IMAGE = "registry.invalid/driftloop/nope:1"
PULL_ERROR = (
    f'failed to pull and unpack image "{IMAGE}": failed to resolve reference "{IMAGE}": '
    "dial tcp: lookup registry.invalid: no such host"
)
UNBOUND = (
    "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims. "
    "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
)
NO_CPU = (
    "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: "
    "1 No preemption victims found for incoming pod."
)
QUOTA = "exceeded quota: no-pods, requested: pods=1, used: pods=0, limited: pods=0"
LIMIT = "maximum cpu usage per Container is 500m, but limit is 2"


def pod(
    name: str = "run-train-abcde",
    *,
    phase: str = "Pending",
    waiting: tuple[str, str] | None = None,
    last: Obj | None = None,
    init: bool = False,
    unschedulable: str | None = None,
    deleting: bool = False,
) -> Obj:
    status = pod_status(
        phase=phase,
        waiting=waiting,
        last=last,
        unschedulable=unschedulable,
        container="setup" if init else "train",
        init=init,
    )
    meta: Obj = {"name": name}
    if deleting:
        meta["deletionTimestamp"] = "2026-11-30T12:00:00Z"
    return {"metadata": meta, "status": status}


def created(obj: Obj, at: str) -> Obj:
    obj["metadata"]["creationTimestamp"] = f"2026-11-30{at}"
    return obj


def running(name: str = "run-train-abcde") -> Obj:
    return {
        "metadata": {"name": name},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "PodScheduled", "status": "True"}],
            "containerStatuses": [{"name": "train", "state": {"running": {}}}],
        },
    }


def restarted(state: Obj, restarts: int, last_exit: int | None = 3, ready: bool = False) -> Obj:
    """A predictor pod whose container restarted ``restarts`` times, now in ``state``."""
    container: Obj = {"name": "server", "state": state, "ready": ready, "restartCount": restarts}
    if last_exit is not None:
        container["lastState"] = {"terminated": {"exitCode": last_exit, "reason": "Error"}}
    return {
        "metadata": {"name": "iris-predictor-x"},
        "status": {"phase": "Running", "containerStatuses": [container]},
    }


CRASHED = PodProblem(
    "CrashLooping", "pod iris-predictor-x: container server: restarting after exit code 3 (Error)"
)


def problem(reason: str, message: str, pod_name: str = "run-train-abcde") -> PodProblem:
    return PodProblem(reason, f"pod {pod_name}: {message}")


@pytest.mark.parametrize(
    ("pods", "expected"),
    [
        pytest.param([], None, id="no pods"),
        pytest.param([running()], None, id="running"),
        pytest.param([pod(waiting=("ContainerCreating", ""))], None, id="container creating"),
        pytest.param(
            [pod(unschedulable=UNBOUND)],
            problem("PodUnschedulable", UNBOUND),
            id="unbound claim",
        ),
        pytest.param(
            [pod(unschedulable=NO_CPU)],
            problem("PodUnschedulable", NO_CPU),
            id="insufficient cpu",
        ),
        pytest.param(
            [
                {
                    "metadata": {"name": "gated"},
                    "status": {
                        "phase": "Pending",
                        "conditions": [
                            {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}
                        ],
                    },
                }
            ],
            None,
            id="scheduling gated: not a problem",
        ),
        pytest.param(
            [pod(waiting=("ErrImagePull", PULL_ERROR))],
            problem("ImagePullFailed", f"container train: {PULL_ERROR}"),
            id="image pull error",
        ),
        pytest.param(
            [
                pod(
                    waiting=(
                        "ImagePullBackOff",
                        f'Back-off pulling image "{IMAGE}": ErrImagePull: {PULL_ERROR}',
                    )
                )
            ],
            problem("ImagePullFailed", f"container train: {PULL_ERROR}"),
            id="pull back-off: the same message as the pull error",
        ),
        pytest.param(
            [pod(waiting=("ImagePullBackOff", f'Back-off pulling image "{IMAGE}"'))],
            problem("ImagePullFailed", f'container train: Back-off pulling image "{IMAGE}"'),
            id="pull back-off without the pull's error",
        ),
        pytest.param(
            [pod(waiting=("RegistryUnavailable", "image pull failed: registry unavailable"))],
            problem("ImagePullFailed", "container train: image pull failed: registry unavailable"),
            id="registry unavailable",
        ),
        pytest.param(
            [pod(waiting=("ErrImageNeverPull", ""))],
            problem("ImagePullFailed", "container train: ErrImageNeverPull"),
            id="image absent with pull policy Never, no message",
        ),
        pytest.param(
            [pod(waiting=("InvalidImageName", 'couldn\'t parse image name "Bad Image"'))],
            problem("InvalidImage", 'container train: couldn\'t parse image name "Bad Image"'),
            id="malformed image reference",
        ),
        pytest.param(
            [
                pod(
                    waiting=(
                        "CreateContainerConfigError",
                        "couldn't find key AWS_SECRET_ACCESS_KEY in Secret ml/s3",
                    )
                )
            ],
            problem(
                "ConfigError",
                "container train: couldn't find key AWS_SECRET_ACCESS_KEY in Secret ml/s3",
            ),
            id="missing secret key",
        ),
        pytest.param(
            [
                pod(
                    phase="Running",
                    waiting=("CrashLoopBackOff", "back-off 40s restarting failed container"),
                    last={"exitCode": 3, "reason": "Error", "message": "refusing to serve\n"},
                )
            ],
            problem(
                "CrashLooping",
                "container train: restarting after exit code 3 (Error): refusing to serve",
            ),
            id="crash loop: the last exit, not the back-off",
        ),
        pytest.param(
            [pod(phase="Running", waiting=("CrashLoopBackOff", "back-off 10s"))],
            problem("CrashLooping", "container train: restarting after exit code ?"),
            id="crash loop without a last state",
        ),
        pytest.param(
            [restarted({"running": {}}, 2)],
            CRASHED,
            id="between two back-offs, running: the same crash loop",
        ),
        pytest.param(
            [restarted({"terminated": {"exitCode": 3, "reason": "Error"}}, 1, last_exit=None)],
            CRASHED,
            id="between two back-offs, just exited",
        ),
        pytest.param(
            [restarted({"running": {}}, 2, ready=True)],
            None,
            id="restarted and ready: recovered",
        ),
        pytest.param(
            [restarted({"running": {}}, 1, last_exit=0)],
            None,
            id="restarted after a clean exit",
        ),
        pytest.param(
            [restarted({"terminated": {"exitCode": 1}}, 0, last_exit=None)],
            None,
            id="a Job's pod that failed once (never restarted)",
        ),
        pytest.param(
            [pod(init=True, waiting=("ErrImagePull", PULL_ERROR))],
            problem("ImagePullFailed", f"container setup: {PULL_ERROR}"),
            id="init container",
        ),
        pytest.param(
            [pod(phase="Failed", waiting=("ErrImagePull", PULL_ERROR))],
            None,
            id="a finished pod is not looked at",
        ),
        pytest.param(
            [pod(deleting=True, unschedulable=UNBOUND)],
            None,
            id="a pod being deleted is not looked at",
        ),
        pytest.param(
            [
                pod("b-pod", unschedulable=NO_CPU),
                running("a-pod"),
                pod("c-pod", waiting=("ErrImagePull", PULL_ERROR)),
            ],
            problem("PodUnschedulable", NO_CPU, "b-pod"),
            id="as old as each other: the first stuck pod by name",
        ),
        pytest.param(
            [
                created(pod("a-old", waiting=("ErrImagePull", PULL_ERROR)), "T10:00:00Z"),
                created(pod("b-new", unschedulable=NO_CPU), "T10:05:00Z"),
                created(pod("c-older", waiting=("ErrImagePull", PULL_ERROR)), "T09:00:00Z"),
            ],
            problem("PodUnschedulable", NO_CPU, "b-new"),
            id="the newest pod first: an old template's pod may linger",
        ),
    ],
)
def test_pod_problem(pods: list[Obj], expected: PodProblem | None) -> None:
    assert policies.pod_problem(pods) == expected


def event(reason: str, message: str, at: str, **extra: Any) -> Obj:
    return {"reason": reason, "message": message, "lastTimestamp": at, **extra}


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        pytest.param([], None, id="no events"),
        pytest.param(
            [event("SuccessfulCreate", "Created pod: run-train-abcde", "t1")],
            None,
            id="pods were created",
        ),
        pytest.param(
            [
                event(
                    "FailedCreate",
                    f'Error creating: pods "run-train-x1" is forbidden: {QUOTA}',
                    "t1",
                )
            ],
            PodProblem("QuotaExceeded", f"cannot create pods: {QUOTA}"),
            id="quota: the pod's generated name is dropped",
        ),
        pytest.param(
            [
                event("FailedCreate", f'Error creating: pods "x1" is forbidden: {QUOTA}', "t1"),
                event("FailedCreate", f'Error creating: pods "x2" is forbidden: {LIMIT}', "t2"),
            ],
            PodProblem("PodCreationFailed", f"cannot create pods: {LIMIT}"),
            id="the newest refusal: a LimitRange",
        ),
        pytest.param(
            [
                event("FailedCreate", "Error creating: the server is busy", "", eventTime="t3"),
                event("FailedCreate", f'Error creating: pods "x1" is forbidden: {QUOTA}', "t1"),
            ],
            PodProblem(
                "PodCreationFailed", "cannot create pods: Error creating: the server is busy"
            ),
            id="an events.k8s.io event has eventTime; an unknown refusal is kept whole",
        ),
        pytest.param(
            [
                {
                    "reason": "FailedCreate",
                    "message": f'pods "x" is forbidden: {QUOTA}',
                    "metadata": {"creationTimestamp": "t1"},
                }
            ],
            PodProblem("QuotaExceeded", f"cannot create pods: {QUOTA}"),
            id="no timestamps but the object's",
        ),
        pytest.param([event("FailedCreate", "", "t1")], None, id="no message"),
    ],
)
def test_creation_failure(events: list[Obj], expected: PodProblem | None) -> None:
    assert policies.creation_failure(events) == expected


@pytest.mark.parametrize(
    ("job", "pods", "awaiting"),
    [
        ({}, [], True),
        ({"status": {"active": 0, "startTime": "t"}}, [], True),
        ({"status": {"active": 1}}, [], False),  # the pod list lags behind the Job
        ({}, [running()], False),
    ],
)
def test_awaiting_pods(job: Obj, pods: list[Obj], awaiting: bool) -> None:
    assert policies.awaiting_pods(job, pods) is awaiting


def deployment(*conditions: Obj) -> Obj:
    return {"status": {"conditions": list(conditions)}}


@pytest.mark.parametrize(
    ("predictor", "expected"),
    [
        pytest.param(None, None, id="not applied yet"),
        pytest.param({}, None, id="no status"),
        pytest.param(
            deployment(
                {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"}
            ),
            None,
            id="unavailable is not a creation failure",
        ),
        pytest.param(
            deployment(
                {
                    "type": "ReplicaFailure",
                    "status": "True",
                    "reason": "FailedCreate",
                    "message": f'pods "iris-predictor-5f7c9-x2" is forbidden: {QUOTA}',
                }
            ),
            PodProblem("QuotaExceeded", f"cannot create pods: {QUOTA}"),
            id="quota",
        ),
        pytest.param(
            deployment({"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate"}),
            PodProblem("PodCreationFailed", "cannot create pods: FailedCreate"),
            id="no message",
        ),
        pytest.param(
            deployment({"type": "ReplicaFailure", "status": "False", "reason": "FailedCreate"}),
            None,
            id="cleared",
        ),
    ],
)
def test_replica_failure(predictor: Obj | None, expected: PodProblem | None) -> None:
    assert policies.replica_failure(predictor) == expected
