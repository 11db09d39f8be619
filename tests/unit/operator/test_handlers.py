"""The kopf wiring: how a reconcile's outcome becomes (at most) one status write."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import kopf
import pytest

from driftloop import handlers, metrics
from driftloop.__main__ import operator_settings
from driftloop.api import MODEL_VERSION, KindInfo
from driftloop.config import OperatorConfig
from driftloop.kube import ConflictError
from driftloop.reconcilers import Context, Outcome


class StatusRecorder:
    """Stands in for Kube.patch_status only: the wiring under test makes no other call."""

    def __init__(self, conflict: bool = False) -> None:
        self.conflict = conflict
        self.writes: list[tuple[str, dict[str, Any], str | None]] = []

    def patch_status(
        self,
        kind: KindInfo,
        namespace: str,
        name: str,
        patch: dict[str, Any],
        resource_version: str | None = None,
    ) -> None:
        if self.conflict:
            raise ConflictError(f"{kind.kind} {namespace}/{name} changed since it was read")
        self.writes.append((name, patch, resource_version))


@pytest.fixture
def recorder() -> Iterator[StatusRecorder]:
    saved = dict(handlers._state)
    kube = StatusRecorder()
    handlers._state.update(kube=kube, config=OperatorConfig())
    yield kube
    handlers._state.clear()
    handlers._state.update(saved)


BODY = {
    "kind": "ModelVersion",
    "metadata": {"name": "m-v1", "namespace": "ns", "uid": "u1", "resourceVersion": "42"},
    "status": {"approval": "approved"},
}


def _reconciler(status: dict[str, Any]) -> Any:
    return lambda ctx, body: Outcome(status=status, phase="approved")


def _count(result: str) -> float:
    return metrics.RECONCILES.labels(MODEL_VERSION.kind, result)._value.get()  # type: ignore[no-any-return]


def test_an_unchanged_status_is_not_written(recorder: StatusRecorder) -> None:
    handlers._run(MODEL_VERSION, _reconciler({"approval": "approved"}), BODY)  # type: ignore[arg-type]
    assert recorder.writes == []


def test_a_change_is_written_against_the_version_read(recorder: StatusRecorder) -> None:
    handlers._run(MODEL_VERSION, _reconciler({"approval": "rejected"}), BODY)  # type: ignore[arg-type]
    assert recorder.writes == [("m-v1", {"approval": "rejected"}, "42")]


def test_a_conflict_is_retried_not_counted_ok(recorder: StatusRecorder) -> None:
    recorder.conflict = True
    ok, conflicts = _count("ok"), _count("conflict")
    with pytest.raises(kopf.TemporaryError, match="changed since it was read"):
        handlers._run(MODEL_VERSION, _reconciler({"approval": "rejected"}), BODY)  # type: ignore[arg-type]
    assert (_count("ok"), _count("conflict")) == (ok, conflicts + 1)


def test_reconcilers_get_a_private_copy(recorder: StatusRecorder) -> None:
    def scribble(ctx: Context, body: Any) -> Outcome:
        body["status"]["approval"] = "scribbled"
        return Outcome(status={"approval": "approved"})

    handlers._run(MODEL_VERSION, scribble, BODY)  # type: ignore[arg-type]
    assert BODY["status"] == {"approval": "approved"}


@pytest.mark.parametrize(
    ("namespaces", "scanning_disabled"),
    [
        ([], False),  # cluster-wide: kopf follows namespaces and CRDs as they come and go
        (["models"], True),  # exact names: nothing to discover, no namespace list needed
        (["models", "team-b"], True),
        (["team-*"], False),  # a kopf glob needs the namespace list to expand
        (["!kube-system"], False),
    ],
)
def test_only_exact_namespaces_turn_off_cluster_scanning(
    namespaces: list[str], scanning_disabled: bool
) -> None:
    assert operator_settings(namespaces).scanning.disabled is scanning_disabled
