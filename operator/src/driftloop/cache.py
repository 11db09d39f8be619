"""The operator's view of the cluster: objects kept up to date by watch events.

controller-runtime reads through an informer cache; so does driftloop.  kopf's watch
streams (one per kind, children selected server-side by the ``managed-by`` label) put
every object here, and kopf holds back every handler until each stream's initial
listing is complete, so a reconcile never reads a cold cache.  Reads cost no API
request: an idle operator with thousands of pending objects reads nothing from the API
server, and the reconcilers see the same :class:`~driftloop.client.KubeClient` calls.

Objects are stored without ``metadata.managedFields`` (often half of an object's size,
and nothing here reads them), Jobs and pods without their spec.  The cache is shared by
kopf's event loop (writes) and the reconcile worker threads (reads): one lock guards it,
and readers get deep copies.
"""

from __future__ import annotations

import builtins
import copy
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from driftloop.api import API_VERSION, KindInfo
from driftloop.client import ForwardingKube, KubeClient, Obj, events_about

#: (apiVersion, kind, namespace)
Scope = tuple[str, str, str]


#: Kinds whose spec nothing reads: a Job's or pod's outcome is in its status (and a
#: Job's pod template is most of its size, thousands of times over at scale).
STATUS_ONLY = frozenset({("batch/v1", "Job"), ("v1", "Pod")})


def slim(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A copy without the parts the operator never reads."""
    out = {
        key: copy.deepcopy(value)
        for key, value in obj.items()
        if not (key == "spec" and (obj.get("apiVersion"), obj.get("kind")) in STATUS_ONLY)
    }
    out.get("metadata", {}).pop("managedFields", None)
    return out


def selector_terms(selector: str) -> list[tuple[str, str]]:
    """``a=b,c=d`` (equality-based selectors: all the operator uses)."""
    terms = []
    for term in filter(None, (t.strip() for t in selector.split(","))):
        key, _, value = term.partition("=")
        terms.append((key.strip(), value.strip()))
    return terms


def _subject(obj: Mapping[str, Any]) -> str | None:
    """The uid of the object an Event is about (None for other kinds)."""
    if obj.get("kind") != "Event":
        return None
    return (obj.get("involvedObject") or {}).get("uid") or None


class ObjectCache:
    """Objects by scope and name, with a label index so selector lists do not scan, and
    an index of Events by the uid of the object they are about: a run waiting behind a
    quota reads its Job's Events on every wake, and a namespace of thousands of such
    runs holds thousands of Events."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[Scope, dict[str, dict[str, Any]]] = {}
        self._by_label: dict[tuple[Scope, str, str], set[str]] = {}
        self._by_subject: dict[tuple[Scope, str], set[str]] = {}

    def __len__(self) -> int:
        with self._lock:
            return sum(len(names) for names in self._objects.values())

    # ------------------------------------------------------------------ writes

    def put(self, obj: Mapping[str, Any]) -> None:
        """Store ``obj`` unless the cache holds a newer version of it."""
        stored = slim(obj)
        meta = stored["metadata"]
        scope = (stored["apiVersion"], stored["kind"], meta.get("namespace") or "")
        with self._lock:
            names = self._objects.setdefault(scope, {})
            old = names.get(meta["name"])
            if old is not None and _older(stored, old):
                return
            if old is not None:
                self._unindex(scope, old)
            names[meta["name"]] = stored
            for key, value in (meta.get("labels") or {}).items():
                self._by_label.setdefault((scope, key, value), set()).add(meta["name"])
            subject = _subject(stored)
            if subject is not None:
                self._by_subject.setdefault((scope, subject), set()).add(meta["name"])

    def remove(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        scope = (api_version, kind, namespace)
        with self._lock:
            old = self._objects.get(scope, {}).pop(name, None)
            if old is not None:
                self._unindex(scope, old)

    def _unindex(self, scope: Scope, obj: Mapping[str, Any]) -> None:
        name = obj["metadata"]["name"]
        for key, value in (obj["metadata"].get("labels") or {}).items():
            _discard(self._by_label, (scope, key, value), name)
        subject = _subject(obj)
        if subject is not None:
            _discard(self._by_subject, (scope, subject), name)

    # ------------------------------------------------------------------ reads

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> Obj | None:
        with self._lock:
            found = self._objects.get((api_version, kind, namespace), {}).get(name)
            return copy.deepcopy(found) if found is not None else None

    def list(
        self, api_version: str, kind: str, namespace: str, selector: str = ""
    ) -> builtins.list[Obj]:
        scope = (api_version, kind, namespace)
        terms = selector_terms(selector)
        with self._lock:
            objects = self._objects.get(scope, {})
            if terms:
                key, value = terms[0]
                names: Iterable[str] = sorted(self._by_label.get((scope, key, value), ()))
            else:
                names = sorted(objects)
            found = []
            for name in names:
                obj = objects[name]
                labels = obj["metadata"].get("labels") or {}
                if all(labels.get(k) == v for k, v in terms):
                    found.append(copy.deepcopy(obj))
            return found

    def events_about(self, namespace: str, uid: str) -> builtins.list[Obj]:
        """The cached Events of ``namespace`` about the object with ``uid``."""
        scope = ("v1", "Event", namespace)
        with self._lock:
            objects = self._objects.get(scope, {})
            names = sorted(self._by_subject.get((scope, uid), ()))
            return [copy.deepcopy(objects[name]) for name in names]

    def names(self, api_version: str, kind: str) -> builtins.list[tuple[str, str]]:
        """(namespace, name) of every cached object of a kind."""
        with self._lock:
            return [
                (scope[2], name)
                for scope, objects in self._objects.items()
                if scope[:2] == (api_version, kind)
                for name in objects
            ]


def _discard(index: dict[Any, set[str]], key: Any, name: str) -> None:
    names = index.get(key)
    if names is not None:
        names.discard(name)
        if not names:
            del index[key]


def _older(new: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    """Whether ``new`` is an older version of the same object than ``old``.

    resourceVersions are opaque, but within one object they come from etcd's
    revision counter: integers in practice.  Anything unparsable is taken as newer,
    and a new uid (deleted and created again) always replaces.
    """
    if new["metadata"].get("uid") != old["metadata"].get("uid"):
        return False
    try:
        return int(new["metadata"]["resourceVersion"]) < int(old["metadata"]["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return False


class CachedKube(ForwardingKube):
    """A :class:`~driftloop.client.KubeClient` reading from the cache, writing to the API.

    Writes go to the API server; what they return goes into the cache, so a reconcile
    right after a create or a status write reads its own write (the watch event that
    follows carries the same version).  Claims, Secrets and CRDs are not cached: they
    are read rarely (a Dataset's artifact-store check, a Prometheus token).
    """

    def __init__(self, kube: KubeClient, cache: ObjectCache) -> None:
        super().__init__(kube)
        self.cache = cache

    # --------------------------------------------------------------- writes

    def create(self, manifest: Obj) -> tuple[Obj, bool]:
        obj, created = super().create(manifest)
        if obj.get("kind") != "Event":  # our own Events are not watched: keep them out
            self.cache.put(obj)
        return obj, created

    def apply_deployment(self, manifest: Obj) -> Obj:
        obj = super().apply_deployment(manifest)
        self.cache.put(obj)
        return obj

    def patch_status(
        self,
        kind: KindInfo,
        namespace: str,
        name: str,
        patch: Obj,
        resource_version: str | None = None,
    ) -> Obj | None:
        obj = super().patch_status(kind, namespace, name, patch, resource_version)
        if obj is not None:
            self.cache.put(obj)
        return obj

    def delete_job(self, namespace: str, name: str) -> None:
        super().delete_job(namespace, name)
        self.cache.remove("batch/v1", "Job", namespace, name)

    def delete_deployment(self, namespace: str, name: str) -> None:
        super().delete_deployment(namespace, name)
        self.cache.remove("apps/v1", "Deployment", namespace, name)

    # --------------------------------------------------------------- cached reads

    def get(self, kind: KindInfo, namespace: str, name: str) -> Obj | None:
        return self.cache.get(API_VERSION, kind.kind, namespace, name)

    def list(self, kind: KindInfo, namespace: str, selector: str = "") -> builtins.list[Obj]:
        return self.cache.list(API_VERSION, kind.kind, namespace, selector)

    def get_job(self, namespace: str, name: str) -> Obj | None:
        return self.cache.get("batch/v1", "Job", namespace, name)

    def list_jobs(self, namespace: str, selector: str) -> builtins.list[Obj]:
        return self.cache.list("batch/v1", "Job", namespace, selector)

    def list_pods(self, namespace: str, selector: str) -> builtins.list[Obj]:
        return self.cache.list("v1", "Pod", namespace, selector)

    def list_events(self, namespace: str, kind: str, name: str, uid: str) -> builtins.list[Obj]:
        return events_about(self.cache.events_about(namespace, uid), kind, name, uid)

    def get_deployment(self, namespace: str, name: str) -> Obj | None:
        return self.cache.get("apps/v1", "Deployment", namespace, name)
