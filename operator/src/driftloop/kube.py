"""The one thin layer that talks to the Kubernetes API.

Everything above it passes and receives plain dicts (the JSON the API server
speaks).  Creates are idempotent: 409 AlreadyExists returns the existing object.
"""

from __future__ import annotations

import base64
import builtins
import logging
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from driftloop.api import API_VERSION, GROUP, VERSION, KindInfo
from driftloop.client import ConflictError, CrdCache, KubeClient, Obj

__all__ = ["ConflictError", "CrdCache", "Kube", "KubeClient", "Obj", "load_config"]

FIELD_MANAGER = "driftloop"
log = logging.getLogger(__name__)


def load_config() -> None:
    """In-cluster credentials when running in a pod, else the kubeconfig."""
    # unused-ignore: kubernetes < 37 ships no type information, so these calls are
    # untyped only with 37+.
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call,unused-ignore]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call,unused-ignore]


class Kube:
    """:class:`~driftloop.client.KubeClient` against a real API server (the official client)."""

    def __init__(self, api_client: client.ApiClient | None = None) -> None:
        self.api = api_client or client.ApiClient()
        self.custom = client.CustomObjectsApi(self.api)
        self.core = client.CoreV1Api(self.api)
        self.batch = client.BatchV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.extensions = client.ApiextensionsV1Api(self.api)

    # ---------------------------------------------------------------- generic

    def _plain(self, obj: Any) -> Obj:
        if isinstance(obj, dict):
            return obj
        return self.api.sanitize_for_serialization(obj)  # type: ignore[no-any-return,no-untyped-call,unused-ignore]

    def _read(self, call: Callable[..., Any], *args: str) -> Obj | None:
        """``call(*args)`` as a plain dict, or None when the object does not exist."""
        try:
            return self._plain(call(*args))
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def _ops(self, manifest: Mapping[str, Any]) -> tuple[Callable[..., Any], Callable[..., Any]]:
        """(create, read) callables for a manifest's kind."""
        api_version, kind = manifest["apiVersion"], manifest["kind"]
        if api_version == API_VERSION or api_version.startswith("monitoring.coreos.com/"):
            group, version = api_version.split("/")
            plural = kind.lower() + "s"

            def create(namespace: str, body: Obj) -> Any:
                return self.custom.create_namespaced_custom_object(
                    group, version, namespace, plural, body, field_manager=FIELD_MANAGER
                )

            def read(name: str, namespace: str) -> Any:
                return self.custom.get_namespaced_custom_object(
                    group, version, namespace, plural, name
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
        }
        return table[(api_version, kind)]

    def create(self, manifest: Obj) -> tuple[Obj, bool]:
        """Create ``manifest``; (object, created). AlreadyExists is success."""
        create, read = self._ops(manifest)
        meta = manifest["metadata"]
        try:
            return self._plain(create(namespace=meta["namespace"], body=manifest)), True
        except ApiException as error:
            if error.status != 409:
                raise
        return self._plain(read(name=meta["name"], namespace=meta["namespace"])), False

    def apply_deployment(self, manifest: Obj) -> Obj:
        """Server-side apply of an apps/v1 Deployment: touches only the fields we own.

        Apply rather than create, so that a new model version or a changed spec rolls
        the predictor in place, while fields the manifest does not set (annotations
        and labels added by other tools) survive.
        """
        meta = manifest["metadata"]
        return self._plain(
            self.apps.patch_namespaced_deployment(
                name=meta["name"],
                namespace=meta["namespace"],
                body=manifest,
                field_manager=FIELD_MANAGER,
                force=True,
                _content_type="application/apply-patch+yaml",
            )
        )

    # ----------------------------------------------------------- custom kinds

    def get(self, kind: KindInfo, namespace: str, name: str) -> Obj | None:
        return self._read(
            self.custom.get_namespaced_custom_object, GROUP, VERSION, namespace, kind.plural, name
        )

    def list(self, kind: KindInfo, namespace: str, selector: str = "") -> builtins.list[Obj]:
        result = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, namespace, kind.plural, label_selector=selector
        )
        return list(self._plain(result).get("items", []))

    def patch_status(
        self,
        kind: KindInfo,
        namespace: str,
        name: str,
        patch: Obj,
        resource_version: str | None = None,
    ) -> None:
        """Merge-patch the status subresource.

        With ``resource_version`` the patch applies only to that exact object
        version (optimistic concurrency): a status computed from a stale read
        fails with :class:`ConflictError` instead of overwriting a newer write.
        """
        body: dict[str, Any] = {"status": patch}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        try:
            self.custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, kind.plural, name, body, field_manager=FIELD_MANAGER
            )
        except ApiException as error:
            if error.status == 409:
                message = f"{kind.kind} {namespace}/{name} changed since it was read"
                raise ConflictError(message) from error
            raise

    # --------------------------------------------------------------- builtins

    def get_job(self, namespace: str, name: str) -> Obj | None:
        return self._read(self.batch.read_namespaced_job, name, namespace)

    def list_jobs(self, namespace: str, selector: str) -> builtins.list[Obj]:
        jobs = self.batch.list_namespaced_job(namespace, label_selector=selector)
        return list(self._plain(jobs).get("items", []))

    def delete_job(self, namespace: str, name: str) -> None:
        """Delete a Job and, in the background, its pods; a missing Job is fine."""
        try:
            self.batch.delete_namespaced_job(name, namespace, propagation_policy="Background")
        except ApiException as error:
            if error.status != 404:
                raise

    def list_pods(self, namespace: str, selector: str) -> builtins.list[Obj]:
        pods = self.core.list_namespaced_pod(namespace, label_selector=selector)
        return list(self._plain(pods).get("items", []))

    def list_events(self, namespace: str, kind: str, name: str, uid: str) -> builtins.list[Obj]:
        # The uid keeps out the events of a deleted namesake (events live an hour).
        selector = f"involvedObject.kind={kind},involvedObject.name={name},involvedObject.uid={uid}"
        events = self.core.list_namespaced_event(namespace, field_selector=selector)
        return list(self._plain(events).get("items", []))

    def get_deployment(self, namespace: str, name: str) -> Obj | None:
        return self._read(self.apps.read_namespaced_deployment, name, namespace)

    def pvc_exists(self, namespace: str, name: str) -> bool:
        return (
            self._read(self.core.read_namespaced_persistent_volume_claim, name, namespace)
            is not None
        )

    def secret_exists(self, namespace: str, name: str) -> bool:
        return self._read(self.core.read_namespaced_secret, name, namespace) is not None

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

    def _crd(self, name: str) -> Obj | None:
        try:
            return self._plain(self.extensions.read_custom_resource_definition(name))
        except ApiException as error:
            if error.status in (403, 404):
                return None
            raise
