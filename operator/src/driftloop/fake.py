"""An in-memory :class:`~driftloop.client.KubeClient` for fast reconciler tests.

Like controller-runtime's fake client: objects live in a dict, every write bumps
one resourceVersion counter, creates of an existing name return the existing
object (the operator's idempotent create), conditioned status writes with a stale
resourceVersion raise :class:`~driftloop.client.ConflictError`, and every write is
recorded so a test can assert exactly what a reconcile did.  No controller runs:
a test moves Jobs, pods and Deployments along by editing their status itself.
"""

from __future__ import annotations

import builtins
import copy
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from driftloop.api import API_VERSION, KindInfo
from driftloop.client import ConflictError, Obj, events_about
from driftloop.conditions import now_rfc3339

LEASE = "coordination.k8s.io/v1"
Key = tuple[str, str, str, str]  # (apiVersion, kind, namespace, name)


@dataclass(frozen=True)
class Write:
    """One write: ``verb`` is create, apply, patch_status, delete or update (a Lease)."""

    verb: str
    kind: str
    name: str
    body: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __repr__(self) -> str:
        return f"{self.verb} {self.kind}/{self.name}"


def _matches(labels: Mapping[str, str], selector: str) -> bool:
    """Equality-based label selectors (``a=b,c=d``): all the operator uses."""
    for term in filter(None, (t.strip() for t in selector.split(","))):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


class FakeKube:
    """Keeps objects, answers reads, records writes."""

    def __init__(self, objects: Iterable[Obj] = (), now: str | None = None) -> None:
        self.objects: dict[Key, dict[str, Any]] = {}
        self.writes: list[Write] = []
        self.crds: set[str] = set()
        self.now = now or now_rfc3339()
        self._versions = itertools.count(1000)
        self._uids = itertools.count(1)
        for obj in objects:
            self.add(obj)

    # ------------------------------------------------------------------ seeding

    def add(self, obj: Obj) -> dict[str, Any]:
        """Store ``obj`` as if a user or a controller had created it (not recorded)."""
        stored = copy.deepcopy(dict(obj))
        meta = stored.setdefault("metadata", {})
        meta.setdefault("namespace", "default")
        meta.setdefault("uid", f"uid-{next(self._uids)}")
        meta.setdefault("generation", 1)
        meta.setdefault("creationTimestamp", self.now)
        meta["resourceVersion"] = str(next(self._versions))
        if stored.get("kind") == "Service":  # the API server allocates a ClusterIP
            stored.setdefault("spec", {}).setdefault(
                "clusterIP", f"10.96.0.{len(self.objects) % 250 + 2}"
            )
        self.objects[self._key(stored)] = stored
        return stored

    def update_status(self, obj: Obj, **status: Any) -> dict[str, Any]:
        """Merge ``status`` into a stored object, as a controller would (not recorded)."""
        stored = self.objects[self._key(obj)]
        stored.setdefault("status", {}).update(status)
        stored["metadata"]["resourceVersion"] = str(next(self._versions))
        return stored

    def stored(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any]:
        return self.objects[(api_version, kind, namespace, name)]

    def of_kind(self, kind: str) -> builtins.list[dict[str, Any]]:
        return [obj for (_, k, _, _), obj in sorted(self.objects.items()) if k == kind]

    # ------------------------------------------------------------- KubeClient

    def create(self, manifest: Obj) -> tuple[Obj, bool]:
        key = self._key(manifest)
        if key in self.objects:
            return copy.deepcopy(self.objects[key]), False
        stored = self.add(manifest)
        self.writes.append(Write("create", key[1], key[3], copy.deepcopy(stored)))
        return copy.deepcopy(stored), True

    def apply_deployment(self, manifest: Obj) -> Obj:
        key = self._key(manifest)
        existing = self.objects.get(key)
        self.writes.append(Write("apply", key[1], key[3], copy.deepcopy(dict(manifest))))
        if existing is None:
            return copy.deepcopy(self.add(manifest))
        meta = existing["metadata"]
        if existing.get("spec") != manifest.get("spec"):
            meta["generation"] = int(meta.get("generation") or 1) + 1
        existing["spec"] = copy.deepcopy(manifest.get("spec"))
        for part in ("labels", "annotations"):
            meta.setdefault(part, {}).update(manifest["metadata"].get(part) or {})
        meta["resourceVersion"] = str(next(self._versions))
        return copy.deepcopy(existing)

    def get(self, kind: KindInfo, namespace: str, name: str) -> Obj | None:
        return self._get(API_VERSION, kind.kind, namespace, name)

    def list(self, kind: KindInfo, namespace: str, selector: str = "") -> builtins.list[Obj]:
        return self._list(API_VERSION, kind.kind, namespace, selector)

    def patch_status(
        self,
        kind: KindInfo,
        namespace: str,
        name: str,
        patch: Obj,
        resource_version: str | None = None,
    ) -> Obj | None:
        stored = self.objects[(API_VERSION, kind.kind, namespace, name)]
        if resource_version and stored["metadata"]["resourceVersion"] != resource_version:
            raise ConflictError(f"{kind.kind} {namespace}/{name} changed since it was read")
        self.writes.append(Write("patch_status", kind.kind, name, copy.deepcopy(dict(patch))))
        status = stored.setdefault("status", {})
        for key, value in patch.items():
            if value is None:
                status.pop(key, None)
            else:
                status[key] = copy.deepcopy(value)
        stored["metadata"]["resourceVersion"] = str(next(self._versions))
        return copy.deepcopy(stored)

    def get_job(self, namespace: str, name: str) -> Obj | None:
        return self._get("batch/v1", "Job", namespace, name)

    def list_jobs(self, namespace: str, selector: str) -> builtins.list[Obj]:
        return self._list("batch/v1", "Job", namespace, selector)

    def apply_hpa(self, manifest: Obj) -> Obj:
        key = self._key(manifest)
        self.writes.append(Write("apply", key[1], key[3], copy.deepcopy(dict(manifest))))
        existing = self.objects.get(key)
        if existing is None:
            return copy.deepcopy(self.add(manifest))
        existing["spec"] = copy.deepcopy(manifest.get("spec"))
        existing["metadata"]["resourceVersion"] = str(next(self._versions))
        return copy.deepcopy(existing)

    def delete_hpa(self, namespace: str, name: str) -> None:
        key = ("autoscaling/v2", "HorizontalPodAutoscaler", namespace, name)
        if self.objects.pop(key, None) is not None:
            self.writes.append(Write("delete", "HorizontalPodAutoscaler", name))

    def delete_deployment(self, namespace: str, name: str) -> None:
        if self.objects.pop(("apps/v1", "Deployment", namespace, name), None) is not None:
            self.writes.append(Write("delete", "Deployment", name))

    def delete_service(self, namespace: str, name: str) -> None:
        if self.objects.pop(("v1", "Service", namespace, name), None) is not None:
            self.writes.append(Write("delete", "Service", name))

    def delete_job(self, namespace: str, name: str) -> None:
        if self.objects.pop(("batch/v1", "Job", namespace, name), None) is not None:
            self.writes.append(Write("delete", "Job", name))

    def list_pods(self, namespace: str, selector: str) -> builtins.list[Obj]:
        return self._list("v1", "Pod", namespace, selector)

    def list_events(self, namespace: str, kind: str, name: str, uid: str) -> builtins.list[Obj]:
        return events_about(self._list("v1", "Event", namespace, ""), kind, name, uid)

    def get_deployment(self, namespace: str, name: str) -> Obj | None:
        return self._get("apps/v1", "Deployment", namespace, name)

    def pvc_exists(self, namespace: str, name: str) -> bool:
        return self._get("v1", "PersistentVolumeClaim", namespace, name) is not None

    def secret_exists(self, namespace: str, name: str) -> bool:
        return self._get("v1", "Secret", namespace, name) is not None

    def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        secret = self._get("v1", "Secret", namespace, name) or {}
        value = (secret.get("stringData") or {}).get(key)
        return str(value) if value is not None else None

    def crd_exists(self, name: str) -> bool:
        return name in self.crds

    def crd_established(self, name: str) -> bool:
        return name in self.crds

    # ------------------------------------------------------------------ leases

    def get_lease(self, namespace: str, name: str) -> Obj | None:
        return self._get(LEASE, "Lease", namespace, name)

    def create_lease(self, lease: Obj) -> Obj:
        if self._key(lease) in self.objects:
            raise ConflictError(f"lease {lease['metadata']['name']} exists")
        stored = self.add(lease)
        self.writes.append(Write("create", "Lease", stored["metadata"]["name"], lease))
        return copy.deepcopy(stored)

    def update_lease(self, lease: Obj) -> Obj:
        key = self._key(lease)
        stored = self.objects.get(key)
        version = lease["metadata"].get("resourceVersion")
        if stored is None or stored["metadata"]["resourceVersion"] != version:
            raise ConflictError(f"lease {key[3]} changed since it was read")
        stored["spec"] = copy.deepcopy(lease["spec"])
        stored["metadata"]["resourceVersion"] = str(next(self._versions))
        self.writes.append(Write("update", "Lease", key[3], copy.deepcopy(lease["spec"])))
        return copy.deepcopy(stored)

    # ---------------------------------------------------------------- helpers

    @staticmethod
    def _key(obj: Obj) -> Key:
        meta = obj["metadata"]
        return (obj["apiVersion"], obj["kind"], meta.get("namespace", "default"), meta["name"])

    def _get(self, api_version: str, kind: str, namespace: str, name: str) -> Obj | None:
        found = self.objects.get((api_version, kind, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def _list(
        self, api_version: str, kind: str, namespace: str, selector: str
    ) -> builtins.list[Obj]:
        return [
            copy.deepcopy(obj)
            for (version, k, ns, _), obj in sorted(self.objects.items())
            if (version, k, ns) == (api_version, kind, namespace)
            and _matches(obj["metadata"].get("labels") or {}, selector)
        ]
