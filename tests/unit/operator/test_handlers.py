"""The kopf wiring: how a reconcile's outcome becomes (at most) one status write."""

from __future__ import annotations

import copy
from typing import Any

import kopf
import pytest

from driftloop import handlers, metrics
from driftloop.__main__ import operator_settings, parse_config
from driftloop.api import ALL_KINDS, MODEL_VERSION
from driftloop.client import CrdCache
from driftloop.config import OperatorConfig
from driftloop.fake import FakeKube
from driftloop.reconcilers import Context, Outcome
from driftloop_testkit.imports import loaded_packages

BODY = {
    "apiVersion": "driftloop.dev/v1alpha1",
    "kind": "ModelVersion",
    "metadata": {"name": "m-v1", "namespace": "ns", "uid": "u1"},
    "spec": {"model": "m", "version": 1},
    "status": {"approval": "approved"},
}


@pytest.fixture
def kube() -> FakeKube:
    return FakeKube([BODY])


def _services(kube: FakeKube) -> handlers.Services:
    return handlers.Services(OperatorConfig(), kube, CrdCache(kube))


def _stored(kube: FakeKube) -> dict[str, Any]:
    return kube.stored("driftloop.dev/v1alpha1", "ModelVersion", "ns", "m-v1")


def _reconciler(status: dict[str, Any]) -> Any:
    return lambda ctx, body: Outcome(status=status, phase="approved")


def _count(result: str) -> float:
    return metrics.RECONCILES.labels(MODEL_VERSION.kind, result)._value.get()  # type: ignore[no-any-return]


def test_an_unchanged_status_is_not_written(kube: FakeKube) -> None:
    handlers.run(
        MODEL_VERSION, _reconciler({"approval": "approved"}), _stored(kube), _services(kube)
    )
    assert kube.writes == []


def test_a_change_is_written_against_the_version_read(kube: FakeKube) -> None:
    read = _stored(kube)
    handlers.run(MODEL_VERSION, _reconciler({"approval": "rejected"}), read, _services(kube))
    assert [(w.verb, w.name, w.body) for w in kube.writes] == [
        ("patch_status", "m-v1", {"approval": "rejected"})
    ]


def test_a_conflict_is_retried_not_counted_ok(kube: FakeKube) -> None:
    stale = copy.deepcopy(_stored(kube))
    kube.update_status(stale, approval="archived")  # another writer got there first
    ok, conflicts = _count("ok"), _count("conflict")
    with pytest.raises(kopf.TemporaryError, match="changed since it was read"):
        handlers.run(MODEL_VERSION, _reconciler({"approval": "rejected"}), stale, _services(kube))
    assert (_count("ok"), _count("conflict")) == (ok, conflicts + 1)
    assert _stored(kube)["status"]["approval"] == "archived"


def test_a_requeue_is_asked_for_after_the_status_is_written(kube: FakeKube) -> None:
    def claims(ctx: Context, body: Any) -> Outcome:
        return Outcome(status={"approval": "rejected"}, requeue_after=1.0)

    with pytest.raises(kopf.TemporaryError, match="reconciling again") as error:
        handlers.run(MODEL_VERSION, claims, _stored(kube), _services(kube))
    assert error.value.delay == 1.0
    assert [(w.verb, w.body) for w in kube.writes] == [("patch_status", {"approval": "rejected"})]


def test_reconcilers_get_a_private_copy(kube: FakeKube) -> None:
    def scribble(ctx: Context, body: Any) -> Outcome:
        body["status"]["approval"] = "scribbled"
        return Outcome(status={"approval": "approved"})

    read = _stored(kube)
    handlers.run(MODEL_VERSION, scribble, read, _services(kube))
    assert read["status"] == {"approval": "approved"}


def test_registration_is_explicit_and_complete() -> None:
    registry = kopf.OperatorRegistry()
    handlers.register(registry, OperatorConfig(poll_interval=7.0))
    ids = {h.id for h in registry._spawning.get_all_handlers()} | {
        h.id for h in registry._changing.get_all_handlers()
    }
    for kind in ("dataset", "trainingrun", "modelversion", "deployment"):
        assert {f"{kind}-create", f"{kind}-update", f"{kind}-resume", f"{kind}-poll"} <= ids
    activities = {h.id for h in registry._activities.get_all_handlers()}
    assert {"login_via_client", "configure"} <= activities  # no implicit login otherwise
    timers = {h.id: h.interval for h in registry._spawning.get_all_handlers()}
    assert timers["dataset-poll"] == 7.0
    assert timers["modelversion-poll"] == 42.0


def test_importing_the_handlers_registers_nothing() -> None:
    before = kopf.get_default_registry()
    ids = {h.id for h in before._changing.get_all_handlers()}
    assert not any(i.startswith(("dataset-", "deployment-")) for i in ids)


def test_missing_crds_are_waited_for_then_named() -> None:
    kube = FakeKube()
    with pytest.raises(kopf.PermanentError, match=r"trainingruns\.driftloop\.dev"):
        handlers.wait_for_crds(kube, timeout=0.0, sleep=lambda _: None)
    kube.crds.update(kind.crd_name for kind in ALL_KINDS)
    handlers.wait_for_crds(kube, timeout=0.0, sleep=lambda _: None)


def test_flags_override_the_environment() -> None:
    env = {"DRIFTLOOP_WATCH_NAMESPACES": "a,b", "DRIFTLOOP_METRICS_PORT": "9999"}
    assert parse_config([], env).watch_namespaces == ("a", "b")
    assert parse_config([], env).metrics_port == 9999
    config = parse_config(["-n", "c", "--metrics-port", "0", "--log-format", "json"], env)
    assert (config.watch_namespaces, config.metrics_port, config.log_format) == (("c",), 0, "json")


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


def test_the_reconcilers_import_neither_kopf_nor_the_kubernetes_client() -> None:
    """They see the API through driftloop.client's Protocol only (kopf is the handlers')."""
    assert not loaded_packages("driftloop.reconcilers", "driftloop.fake") & {"kopf", "kubernetes"}
