"""The one thin layer that talks to the Kubernetes API.

Everything above it passes and receives plain dicts (the JSON the API server
speaks).  Creates are idempotent: 409 AlreadyExists returns the existing object.
"""

from __future__ import annotations

import base64
import builtins
import functools
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from driftloop import metrics
from driftloop.api import API_VERSION, GROUP, VERSION, KindInfo
from driftloop.client import ConflictError, CrdCache, KubeClient, Obj
from driftloop.ratelimit import RETRYABLE, TokenBucket, retry_delay

__all__ = ["ConflictError", "CrdCache", "Kube", "KubeClient", "Obj", "load_config"]

FIELD_MANAGER = "driftloop"
#: Attempts of one request refused with 429 or failing with a 5xx.
ATTEMPTS = 4

F = TypeVar("F", bound=Callable[..., Any])


def _api(verb: str, resource: str, *, limited: bool = True) -> Callable[[F], F]:
    """Count, rate-limit and (on 429/5xx) retry one :class:`Kube` call.

    ``resource="manifest"``: the kind of the manifest passed first.  Lease calls are
    not ``limited``: a burst of reconciles must never delay a renewal."""

    def wrap(method: F) -> F:
        @functools.wraps(method)
        def call(self: Kube, *args: Any, **kwargs: Any) -> Any:
            what = resource
            if resource == "manifest":
                what = str(args[0].get("kind", "")).lower() + "s"
            for attempt in range(1, ATTEMPTS + 1):
                if limited and self.limiter is not None:
                    waited = self.limiter.acquire()
                    if waited:
                        metrics.API_THROTTLED_SECONDS.inc(waited)
                metrics.API_REQUESTS.labels(verb, what).inc()
                try:
                    return method(self, *args, **kwargs)
                except ApiException as error:
                    if error.status not in RETRYABLE or attempt == ATTEMPTS:
                        raise
                    headers = error.headers or {}
                    delay = retry_delay(attempt, headers.get("Retry-After"))
                    log.info("%s %s: %s; retrying in %.1fs", verb, what, error.status, delay)
                    time.sleep(delay)
            raise AssertionError("unreachable")

        return cast(F, call)

    return wrap


#: (connect, read) seconds for Lease calls: well under the renew deadline.
LEASE_CALL_TIMEOUT = (2.0, 4.0)
#: (connect, read) seconds for every other call.  A connection dropped on the way
#: without a close (a NAT or load balancer forgetting the flow) otherwise hangs its
#: call, and the reconcile waiting on it, forever: urllib3 has no timeout by default
#: and reuses such a connection as healthy.  client-go finds these with HTTP/2 pings
#: after 30 s without a read; a read timeout of 30 s is our equivalent.
CALL_TIMEOUT = (10.0, 30.0)
log = logging.getLogger(__name__)


def load_config() -> None:
    """In-cluster credentials when running in a pod, else the kubeconfig."""
    # unused-ignore: kubernetes < 37 ships no type information, so these calls are
    # untyped only with 37+.
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call,unused-ignore]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call,unused-ignore]


def _default_timeout(api: client.ApiClient, timeout: tuple[float, float]) -> None:
    """Give every request of ``api`` that names no timeout of its own ``timeout``."""
    rest: Any = api.rest_client  # RESTClientObject: its request is replaced
    if getattr(rest, "driftloop_timeout", None) is not None:
        return  # shared with another Kube: already wrapped
    request = rest.request

    def timed(*args: Any, _request_timeout: Any = None, **kwargs: Any) -> Any:
        return request(*args, _request_timeout=_request_timeout or timeout, **kwargs)

    rest.request = timed
    rest.driftloop_timeout = timeout


def _body(response: Any) -> Obj:
    """The JSON the API server sent, from a call made with ``_preload_content=False``.

    The client's models would render its timestamps again (``+00:00`` for ``Z``): an
    object a create returned would then differ from the same object as the watch
    delivers it, and a status echoing one of its times would be written twice.  The
    models are dropped anyway, so building them would only cost time and memory.
    """
    return cast(Obj, json.loads(response.data))


class Kube:
    """:class:`~driftloop.client.KubeClient` against a real API server (the official client)."""

    def __init__(
        self,
        api_client: client.ApiClient | None = None,
        limiter: TokenBucket | None = None,
        timeout: tuple[float, float] = CALL_TIMEOUT,
    ) -> None:
        self.limiter = limiter
        self.api = api_client or client.ApiClient()
        _default_timeout(self.api, timeout)
        self.custom = client.CustomObjectsApi(self.api)
        self.core = client.CoreV1Api(self.api)
        self.batch = client.BatchV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.autoscaling = client.AutoscalingV2Api(self.api)
        self.extensions = client.ApiextensionsV1Api(self.api)
        self.coordination: Any = client.CoordinationV1Api(self.api)  # takes plain dict bodies

    # ---------------------------------------------------------------- generic

    def _read(self, call: Callable[..., Any], *args: str) -> Obj | None:
        """``call(*args)`` as a plain dict, or None when the object does not exist."""
        try:
            return _body(call(*args, _preload_content=False))
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def _apply(self, patch: Callable[..., Any], manifest: Obj) -> Obj:
        """Server-side apply ``manifest`` with ``patch`` (a ``patch_namespaced_*`` call)."""
        meta = manifest["metadata"]
        return _body(
            patch(
                name=meta["name"],
                namespace=meta["namespace"],
                body=manifest,
                field_manager=FIELD_MANAGER,
                force=True,
                _content_type="application/apply-patch+yaml",
                _preload_content=False,
            )
        )

    def _ops(self, manifest: Mapping[str, Any]) -> tuple[Callable[..., Any], Callable[..., Any]]:
        """(create, read) callables for a manifest's kind."""
        api_version, kind = manifest["apiVersion"], manifest["kind"]
        if api_version == API_VERSION or api_version.startswith("monitoring.coreos.com/"):
            group, version = api_version.split("/")
            plural = kind.lower() + "s"

            def create(namespace: str, body: Obj, **options: Any) -> Any:
                return self.custom.create_namespaced_custom_object(
                    group, version, namespace, plural, body, field_manager=FIELD_MANAGER, **options
                )

            def read(name: str, namespace: str, **options: Any) -> Any:
                return self.custom.get_namespaced_custom_object(
                    group, version, namespace, plural, name, **options
                )

            return create, read
        table: dict[tuple[str, str], tuple[Callable[..., Any], Callable[..., Any]]] = {
            ("batch/v1", "Job"): (self.batch.create_namespaced_job, self.batch.read_namespaced_job),
            ("apps/v1", "Deployment"): (
                self.apps.create_namespaced_deployment,
                self.apps.read_namespaced_deployment,
            ),
            ("v1", "Service"): (
                self.core.create_namespaced_service,
                self.core.read_namespaced_service,
            ),
            ("v1", "Event"): (
                self.core.create_namespaced_event,
                self.core.read_namespaced_event,
            ),
        }
        return table[(api_version, kind)]

    @_api("create", "manifest")
    def create(self, manifest: Obj) -> tuple[Obj, bool]:
        """Create ``manifest``; (object, created). AlreadyExists is success."""
        create, read = self._ops(manifest)
        meta = manifest["metadata"]
        try:
            created = create(namespace=meta["namespace"], body=manifest, _preload_content=False)
            return _body(created), True
        except ApiException as error:
            if error.status != 409:
                raise
        existing = read(name=meta["name"], namespace=meta["namespace"], _preload_content=False)
        return _body(existing), False

    @_api("apply", "deployments")
    def apply_deployment(self, manifest: Obj) -> Obj:
        """Server-side apply of an apps/v1 Deployment: touches only the fields we own.

        Apply rather than create, so that a new model version or a changed spec rolls
        the predictor in place, while fields the manifest does not set (annotations
        and labels added by other tools) survive.
        """
        return self._apply(self.apps.patch_namespaced_deployment, manifest)

    # ----------------------------------------------------------- custom kinds

    @_api("get", "driftloop")
    def get(self, kind: KindInfo, namespace: str, name: str) -> Obj | None:
        return self._read(
            self.custom.get_namespaced_custom_object, GROUP, VERSION, namespace, kind.plural, name
        )

    @_api("list", "driftloop")
    def list(self, kind: KindInfo, namespace: str, selector: str = "") -> builtins.list[Obj]:
        result = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, namespace, kind.plural, label_selector=selector, _preload_content=False
        )
        return list(_body(result).get("items", []))

    @_api("patch", "driftloop/status")
    def patch_status(
        self,
        kind: KindInfo,
        namespace: str,
        name: str,
        patch: Obj,
        resource_version: str | None = None,
    ) -> Obj | None:
        """Merge-patch the status subresource; returns the object written.

        With ``resource_version`` the patch applies only to that exact object
        version (optimistic concurrency): a status computed from a stale read
        fails with :class:`ConflictError` instead of overwriting a newer write.
        """
        body: dict[str, Any] = {"status": patch}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        try:
            return _body(
                self.custom.patch_namespaced_custom_object_status(
                    GROUP,
                    VERSION,
                    namespace,
                    kind.plural,
                    name,
                    body,
                    field_manager=FIELD_MANAGER,
                    _preload_content=False,
                )
            )
        except ApiException as error:
            if error.status == 409:
                message = f"{kind.kind} {namespace}/{name} changed since it was read"
                raise ConflictError(message) from error
            raise

    @_api("patch", "driftloop")
    def release_finalizer(self, obj: Mapping[str, Any], finalizer: str) -> None:
        """Remove ``finalizer`` from one of our objects (conditioned on its version)."""
        meta = obj["metadata"]
        kind = obj["kind"]
        rest = [f for f in meta.get("finalizers") or [] if f != finalizer]
        body = {"metadata": {"finalizers": rest, "resourceVersion": meta["resourceVersion"]}}
        try:
            self.custom.patch_namespaced_custom_object(
                GROUP, VERSION, meta["namespace"], kind.lower() + "s", meta["name"], body
            )
        except ApiException as error:
            if error.status not in (404, 409):  # gone, or changed: the next event retries
                raise

    # --------------------------------------------------------------- builtins

    @_api("get", "jobs")
    def get_job(self, namespace: str, name: str) -> Obj | None:
        return self._read(self.batch.read_namespaced_job, name, namespace)

    @_api("list", "jobs")
    def list_jobs(self, namespace: str, selector: str) -> builtins.list[Obj]:
        jobs = self.batch.list_namespaced_job(
            namespace, label_selector=selector, _preload_content=False
        )
        return list(_body(jobs).get("items", []))

    @_api("apply", "horizontalpodautoscalers")
    def apply_hpa(self, manifest: Obj) -> Obj:
        """Server-side apply of the predictor's HorizontalPodAutoscaler (autoscaling/v2)."""
        return self._apply(self.autoscaling.patch_namespaced_horizontal_pod_autoscaler, manifest)

    @_api("delete", "horizontalpodautoscalers")
    def delete_hpa(self, namespace: str, name: str) -> None:
        try:
            self.autoscaling.delete_namespaced_horizontal_pod_autoscaler(name, namespace)
        except ApiException as error:
            if error.status != 404:
                raise

    @_api("delete", "deployments")
    def delete_deployment(self, namespace: str, name: str) -> None:
        try:
            self.apps.delete_namespaced_deployment(name, namespace, propagation_policy="Background")
        except ApiException as error:
            if error.status != 404:
                raise

    @_api("delete", "services")
    def delete_service(self, namespace: str, name: str) -> None:
        try:
            self.core.delete_namespaced_service(name, namespace)
        except ApiException as error:
            if error.status != 404:
                raise

    @_api("delete", "jobs")
    def delete_job(self, namespace: str, name: str) -> None:
        """Delete a Job and, in the background, its pods; a missing Job is fine."""
        try:
            self.batch.delete_namespaced_job(name, namespace, propagation_policy="Background")
        except ApiException as error:
            if error.status != 404:
                raise

    @_api("list", "pods")
    def list_pods(self, namespace: str, selector: str) -> builtins.list[Obj]:
        pods = self.core.list_namespaced_pod(
            namespace, label_selector=selector, _preload_content=False
        )
        return list(_body(pods).get("items", []))

    @_api("list", "events")
    def list_events(self, namespace: str, kind: str, name: str, uid: str) -> builtins.list[Obj]:
        # The uid keeps out the events of a deleted namesake (events live an hour).
        selector = f"involvedObject.kind={kind},involvedObject.name={name},involvedObject.uid={uid}"
        events = self.core.list_namespaced_event(
            namespace, field_selector=selector, _preload_content=False
        )
        return list(_body(events).get("items", []))

    @_api("get", "deployments")
    def get_deployment(self, namespace: str, name: str) -> Obj | None:
        return self._read(self.apps.read_namespaced_deployment, name, namespace)

    @_api("get", "persistentvolumeclaims")
    def pvc_exists(self, namespace: str, name: str) -> bool:
        return (
            self._read(self.core.read_namespaced_persistent_volume_claim, name, namespace)
            is not None
        )

    @_api("get", "secrets")
    def secret_exists(self, namespace: str, name: str) -> bool:
        return self._read(self.core.read_namespaced_secret, name, namespace) is not None

    @_api("get", "secrets")
    def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        secret = self._read(self.core.read_namespaced_secret, name, namespace)
        data = ((secret or {}).get("data") or {}).get(key)
        return base64.b64decode(data).decode() if data else None

    def crd_exists(self, name: str) -> bool:
        return self._crd(name) is not None

    def crd_established(self, name: str) -> bool:
        """The CRD exists and the API server serves its kind."""
        conditions = ((self._crd(name) or {}).get("status") or {}).get("conditions") or []
        return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)

    # ----------------------------------------------------------------- leases
    # (driftloop.leadership.LeaseStore.)  Bounded: a renew that hangs must not outlive
    # the renew deadline; the elector's watchdog does not rely on it, but a thread
    # stuck forever would never renew again.

    @_api("get", "leases", limited=False)
    def get_lease(self, namespace: str, name: str) -> Obj | None:
        try:
            return _body(
                self.coordination.read_namespaced_lease(
                    name, namespace, _request_timeout=LEASE_CALL_TIMEOUT, _preload_content=False
                )
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    @_api("create", "leases", limited=False)
    def create_lease(self, lease: Obj) -> Obj:
        try:
            return _body(
                self.coordination.create_namespaced_lease(
                    lease["metadata"]["namespace"],
                    lease,
                    field_manager=FIELD_MANAGER,
                    _request_timeout=LEASE_CALL_TIMEOUT,
                    _preload_content=False,
                )
            )
        except ApiException as error:
            if error.status == 409:
                raise ConflictError(f"lease {lease['metadata']['name']} exists") from error
            raise

    @_api("update", "leases", limited=False)
    def update_lease(self, lease: Obj) -> Obj:
        meta = lease["metadata"]
        try:
            return _body(
                self.coordination.replace_namespaced_lease(
                    meta["name"],
                    meta["namespace"],
                    lease,
                    field_manager=FIELD_MANAGER,
                    _request_timeout=LEASE_CALL_TIMEOUT,
                    _preload_content=False,
                )
            )
        except ApiException as error:
            if error.status == 409:
                raise ConflictError(f"lease {meta['name']} changed since it was read") from error
            raise

    @_api("get", "customresourcedefinitions")
    def _crd(self, name: str) -> Obj | None:
        try:
            return _body(
                self.extensions.read_custom_resource_definition(name, _preload_content=False)
            )
        except ApiException as error:
            if error.status in (403, 404):
                return None
            raise
