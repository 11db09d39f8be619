"""The kopf wiring: how a reconcile's outcome becomes (at most) one status write."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import kopf
import pytest

from driftloop import handlers, metrics
from driftloop.__main__ import operator_settings, parse_config
from driftloop.api import ALL_KINDS, MODEL_VERSION
from driftloop.client import ConflictError, CrdCache
from driftloop.config import OperatorConfig
from driftloop.fake import FakeKube
from driftloop.leadership import NotLeaderError
from driftloop.reconcilers import Context, Event, Outcome
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


def test_a_conflict_is_raised_for_a_retry_not_counted_ok(kube: FakeKube) -> None:
    stale = copy.deepcopy(_stored(kube))
    kube.update_status(stale, approval="archived")  # another writer got there first
    ok, conflicts = _count("ok"), _count("conflict")
    with pytest.raises(ConflictError, match="changed since it was read"):
        handlers.run(MODEL_VERSION, _reconciler({"approval": "rejected"}), stale, _services(kube))
    assert (_count("ok"), _count("conflict")) == (ok, conflicts + 1)
    assert _stored(kube)["status"]["approval"] == "archived"


def test_the_outcome_carries_the_requeue_after_the_status_is_written(kube: FakeKube) -> None:
    def claims(ctx: Context, body: Any) -> Outcome:
        return Outcome(status={"approval": "rejected"}, requeue_after=1.0)

    outcome = handlers.run(MODEL_VERSION, claims, _stored(kube), _services(kube))
    assert outcome.requeue_after == 1.0
    assert [(w.verb, w.body) for w in kube.writes] == [("patch_status", {"approval": "rejected"})]


def test_events_are_posted_as_core_events_about_the_object(kube: FakeKube) -> None:
    def announces(ctx: Context, body: Any) -> Outcome:
        return Outcome(events=[Event("Warning", "RolledBack", "v2 not ready")])

    handlers.run(MODEL_VERSION, announces, _stored(kube), _services(kube))
    (event,) = kube.of_kind("Event")
    assert event["involvedObject"] == {
        "apiVersion": "driftloop.dev/v1alpha1",
        "kind": "ModelVersion",
        "name": "m-v1",
        "namespace": "ns",
        "uid": "u1",
        "resourceVersion": _stored(kube)["metadata"]["resourceVersion"],
    }
    assert (event["type"], event["reason"], event["message"]) == (
        "Warning",
        "RolledBack",
        "v2 not ready",
    )
    assert event["metadata"]["name"].startswith("m-v1.")


def test_reconcilers_get_a_private_copy(kube: FakeKube) -> None:
    def scribble(ctx: Context, body: Any) -> Outcome:
        body["status"]["approval"] = "scribbled"
        return Outcome(status={"approval": "approved"})

    read = _stored(kube)
    handlers.run(MODEL_VERSION, scribble, read, _services(kube))
    assert read["status"] == {"approval": "approved"}


def test_registration_is_explicit_watches_only() -> None:
    """Every kind and child is cached and watched; no timers, no change handlers (so
    kopf writes neither progress annotations nor finalizers on users' objects)."""
    registry = kopf.OperatorRegistry()
    handlers.register(registry, OperatorConfig())
    watched = {"dataset", "trainingrun", "modelversion", "deployment"} | {
        "batch-jobs",
        "apps-deployments",
        "core-pods",
        "core-events",
    }
    assert {h.id for h in registry._indexing.get_all_handlers()} == {
        f"{name}-cache" for name in watched
    }
    assert {h.id for h in registry._watching.get_all_handlers()} == {
        f"{name}-event" for name in watched
    }
    assert not list(registry._spawning.get_all_handlers())
    assert not list(registry._changing.get_all_handlers())
    activities = {h.id for h in registry._activities.get_all_handlers()}
    assert {"login_via_client", "configure"} <= activities  # no implicit login otherwise


def test_children_are_selected_on_the_server() -> None:
    settings = kopf.OperatorSettings()
    services = handlers.Services(OperatorConfig(), FakeKube(), CrdCache(FakeKube()))
    handlers.configure(settings, kopf.Memo(services=services))
    assert settings.posting.enabled is False
    labels = dict(settings.watching.label_selectors.items())
    fields = dict(settings.watching.field_selectors.items())
    assert sorted(labels.values()) == ["app.kubernetes.io/managed-by=driftloop"] * 3
    assert list(fields.values()) == ["involvedObject.kind=Job,reason=FailedCreate"]


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


def test_a_replica_without_the_lease_neither_reconciles_nor_writes(kube: FakeKube) -> None:
    class Lost:
        def held(self) -> bool:
            return False

    calls: list[str] = []

    def reconcile(ctx: Context, body: Any) -> Outcome:
        calls.append("reconciled")
        return Outcome(status={"approval": "rejected"})

    services = handlers.Services(OperatorConfig(), kube, CrdCache(kube), leadership=Lost())
    with pytest.raises(NotLeaderError, match="no longer holds the leader lease"):
        handlers.run(MODEL_VERSION, reconcile, _stored(kube), services)
    assert (calls, kube.writes) == ([], [])


def test_a_write_refused_by_the_fence_stops_the_reconcile(kube: FakeKube) -> None:
    class Fence:
        def held(self) -> bool:
            return True

        def patch_status(self, *args: Any, **kwargs: Any) -> None:
            raise NotLeaderError("this replica no longer holds the leader lease")

    services = handlers.Services(OperatorConfig(), Fence(), CrdCache(kube))  # type: ignore[arg-type]
    with pytest.raises(NotLeaderError, match="no longer holds"):
        handlers.run(MODEL_VERSION, _reconciler({"approval": "rejected"}), _stored(kube), services)


def test_every_status_write_waits_for_its_watch_echo(kube: FakeKube) -> None:
    services = _services(kube)
    services.echoes.stall_after = -1  # any pending write counts
    handlers.run(MODEL_VERSION, _reconciler({"approval": "rejected"}), _stored(kube), services)
    assert services.echoes.problems()
    services.echoes.seen("ModelVersion", "u1", _stored(kube)["metadata"]["resourceVersion"])
    assert services.echoes.problems() == []


def test_leader_election_is_configured_by_environment_and_flags() -> None:
    env = {"DRIFTLOOP_LEADER_ELECTION": "true", "POD_NAMESPACE": "ops", "POD_NAME": "op-1"}
    config = parse_config([], env)
    assert (config.leader_election, config.lease_namespace, config.lease_name) == (
        True,
        "ops",
        "driftloop-operator",
    )
    assert config.identity.startswith("op-1_")
    assert parse_config([], env).identity != config.identity  # unique per process
    assert not parse_config(["--no-leader-elect"], env).leader_election
    assert not parse_config([], {}).leader_election  # `python -m driftloop`: one process


def test_the_finalizer_older_releases_put_on_objects_is_lifted() -> None:
    """Without a deletion handler nothing else would lift kopf's finalizer, and objects
    made before the event-driven engine could never be deleted."""
    released: list[tuple[str, str]] = []
    kube = FakeKube()
    services = handlers.Services(
        OperatorConfig(),
        kube,
        CrdCache(kube),
        release_finalizer=lambda obj, name: released.append((obj["metadata"]["name"], name)),
    )
    memo = kopf.Memo(services=services)
    old = {**BODY, "metadata": {**BODY["metadata"], "finalizers": ["driftloop.dev/finalizer"]}}
    asyncio.run(handlers.on_resource_event(body=kopf.Body(old), type="MODIFIED", memo=memo))  # type: ignore[arg-type]
    assert released == [("m-v1", "driftloop.dev/finalizer")]
    released.clear()
    asyncio.run(handlers.on_resource_event(body=kopf.Body(BODY), type="MODIFIED", memo=memo))  # type: ignore[arg-type]
    assert released == []
