"""What the reconcilers know of the Kubernetes API: a Protocol, and no client library.

:class:`KubeClient` lists every call a reconciler makes.  :class:`driftloop.kube.Kube`
implements it with the official client; :class:`driftloop.fake.FakeKube` in memory.
Nothing here imports kopf or the Kubernetes client, so the reconcilers do not either.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable
from typing import Any, Protocol

from driftloop.api import KindInfo

Obj = dict[str, Any]


class ConflictError(Exception):
    """A write conditioned on a resourceVersion found a newer object."""


class KubeClient(Protocol):
    """Every call the reconcilers make; :class:`Kube` speaks to an API server.

    :class:`driftloop.fake.FakeKube` implements the same calls in memory for
    table-driven reconciler tests.
    """

    def create(self, manifest: Obj) -> tuple[Obj, bool]:
        """Create ``manifest``; (object, created). AlreadyExists returns the existing one."""
        ...

    def apply_deployment(self, manifest: Obj) -> Obj:
        """Server-side apply of an apps/v1 Deployment."""
        ...

    def apply_hpa(self, manifest: Obj) -> Obj:
        """Server-side apply of an autoscaling/v2 HorizontalPodAutoscaler."""
        ...

    def delete_hpa(self, namespace: str, name: str) -> None:
        """Delete a HorizontalPodAutoscaler; a missing one is fine."""
        ...

    def delete_deployment(self, namespace: str, name: str) -> None:
        """Delete an apps/v1 Deployment (its pods in the background); a missing one is fine."""
        ...

    def delete_service(self, namespace: str, name: str) -> None:
        """Delete a Service; a missing one is fine."""
        ...

    def get(self, kind: KindInfo, namespace: str, name: str) -> Obj | None: ...

    def list(self, kind: KindInfo, namespace: str, selector: str = "") -> builtins.list[Obj]: ...

    def patch_status(
        self,
        kind: KindInfo,
        namespace: str,
        name: str,
        patch: Obj,
        resource_version: str | None = None,
    ) -> Obj | None:
        """Merge-patch the status subresource; the object written (None if unknown).

        ConflictError when ``resource_version`` is given and the object moved on."""
        ...

    def get_job(self, namespace: str, name: str) -> Obj | None: ...

    def list_jobs(self, namespace: str, selector: str) -> builtins.list[Obj]: ...

    def delete_job(self, namespace: str, name: str) -> None: ...

    def list_pods(self, namespace: str, selector: str) -> builtins.list[Obj]: ...

    def list_events(self, namespace: str, kind: str, name: str, uid: str) -> builtins.list[Obj]:
        """The core/v1 Events about one object (``involvedObject``): a Job's FailedCreate."""
        ...

    def get_deployment(self, namespace: str, name: str) -> Obj | None: ...

    def pvc_exists(self, namespace: str, name: str) -> bool: ...

    def secret_exists(self, namespace: str, name: str) -> bool: ...

    def secret_value(self, namespace: str, name: str, key: str) -> str | None: ...

    def crd_exists(self, name: str) -> bool: ...

    def crd_established(self, name: str) -> bool: ...


def events_about(events: builtins.list[Obj], kind: str, name: str, uid: str) -> builtins.list[Obj]:
    """The Events whose ``involvedObject`` is that object (the uid keeps out a deleted
    namesake's: Events live an hour)."""
    about = {"kind": kind, "name": name, "uid": uid}
    return [
        event
        for event in events
        if {k: (event.get("involvedObject") or {}).get(k) for k in about} == about
    ]


class ForwardingKube:
    """A :class:`KubeClient` passing every call to another one: the base of the
    clients that change a few calls (:class:`driftloop.cache.CachedKube` reads from the
    cache, :class:`driftloop.leadership.FencedKube` fences writes)."""

    def __init__(self, kube: KubeClient) -> None:
        self._kube = kube

    def create(self, manifest: Obj) -> tuple[Obj, bool]:
        return self._kube.create(manifest)

    def apply_deployment(self, manifest: Obj) -> Obj:
        return self._kube.apply_deployment(manifest)

    def apply_hpa(self, manifest: Obj) -> Obj:
        return self._kube.apply_hpa(manifest)

    def delete_hpa(self, namespace: str, name: str) -> None:
        self._kube.delete_hpa(namespace, name)

    def delete_deployment(self, namespace: str, name: str) -> None:
        self._kube.delete_deployment(namespace, name)

    def delete_service(self, namespace: str, name: str) -> None:
        self._kube.delete_service(namespace, name)

    def get(self, kind: KindInfo, namespace: str, name: str) -> Obj | None:
        return self._kube.get(kind, namespace, name)

    def list(self, kind: KindInfo, namespace: str, selector: str = "") -> builtins.list[Obj]:
        return self._kube.list(kind, namespace, selector)

    def patch_status(
        self,
        kind: KindInfo,
        namespace: str,
        name: str,
        patch: Obj,
        resource_version: str | None = None,
    ) -> Obj | None:
        return self._kube.patch_status(kind, namespace, name, patch, resource_version)

    def get_job(self, namespace: str, name: str) -> Obj | None:
        return self._kube.get_job(namespace, name)

    def list_jobs(self, namespace: str, selector: str) -> builtins.list[Obj]:
        return self._kube.list_jobs(namespace, selector)

    def delete_job(self, namespace: str, name: str) -> None:
        self._kube.delete_job(namespace, name)

    def list_pods(self, namespace: str, selector: str) -> builtins.list[Obj]:
        return self._kube.list_pods(namespace, selector)

    def list_events(self, namespace: str, kind: str, name: str, uid: str) -> builtins.list[Obj]:
        return self._kube.list_events(namespace, kind, name, uid)

    def get_deployment(self, namespace: str, name: str) -> Obj | None:
        return self._kube.get_deployment(namespace, name)

    def pvc_exists(self, namespace: str, name: str) -> bool:
        return self._kube.pvc_exists(namespace, name)

    def secret_exists(self, namespace: str, name: str) -> bool:
        return self._kube.secret_exists(namespace, name)

    def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        return self._kube.secret_value(namespace, name, key)

    def crd_exists(self, name: str) -> bool:
        return self._kube.crd_exists(name)

    def crd_established(self, name: str) -> bool:
        return self._kube.crd_established(name)


class CrdCache:
    """Whether optional CRDs (the Prometheus Operator's) exist, re-asked every ``ttl`` s.

    Installing the Prometheus Operator after driftloop is picked up within ``ttl``
    without a restart, and steady state costs no API call per reconcile.
    """

    def __init__(
        self,
        kube: KubeClient,
        ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube = kube
        self._ttl = ttl
        self._clock = clock
        self._seen: dict[str, tuple[float, bool]] = {}

    def exists(self, name: str) -> bool:
        cached = self._seen.get(name)
        now = self._clock()
        if cached is None or now - cached[0] > self._ttl:
            cached = (now, self._kube.crd_exists(name))
            self._seen[name] = cached
        return cached[1]
