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

    def get(self, kind: KindInfo, namespace: str, name: str) -> Obj | None: ...

    def list(self, kind: KindInfo, namespace: str, selector: str = "") -> builtins.list[Obj]: ...

    def patch_status(
        self,
        kind: KindInfo,
        namespace: str,
        name: str,
        patch: Obj,
        resource_version: str | None = None,
    ) -> None:
        """Merge-patch the status subresource; ConflictError when the version moved on."""
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
