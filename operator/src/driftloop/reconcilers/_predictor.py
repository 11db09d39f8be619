"""The predictor a Deployment serves from, and the refusals it records."""

from __future__ import annotations

from typing import Any

import driftloop_contract as contract
from driftloop import builders, naming
from driftloop.api import DeploymentSpec, PromotionStrategy
from driftloop.builders import Owner
from driftloop.builders.common import spec_hash
from driftloop.builders.serving import SHADOW, ServedVersion

from ._outcome import Context, Obj, StatusWriter

SERVICE_MONITOR_CRD = "servicemonitors.monitoring.coreos.com"


REJECTIONS_LIMIT = 20


def reject(
    status: StatusWriter, mv: Obj, reason: str, message: str, since: str | None = None
) -> bool:
    """Record in this Deployment's own status that it will not serve ``mv`` again.

    The ModelVersion reconciler reads these records into the version's approval:
    each object's status has one writer.  Returns False, recording nothing, when
    the same refusal is already recorded (at or after ``since``): the next
    reconcile must not repeat it, nor its event.
    """
    version = int(mv["spec"]["version"])
    earlier = status.fields.get("rejectedVersions", status.current.get("rejectedVersions")) or []
    if any(
        int(r["version"]) == version
        and (r.get("reason"), r.get("message")) == (reason, message[:1024])
        and str(r.get("time", "")) >= (since or "")
        for r in earlier
    ):
        return False
    kept = [r for r in earlier if int(r["version"]) != version]
    record = {
        "version": version,
        "modelVersion": mv["metadata"]["name"],
        "reason": reason,
        "message": message[:1024],
        "time": status.now,
    }
    status.fields["rejectedVersions"] = [record, *kept][:REJECTIONS_LIMIT]
    return True


def needs_apply(existing: Obj | None, digest: str) -> bool:
    """Whether ``existing`` is missing or was applied from another spec (its hash
    annotation differs from ``digest``): the input-hash skip of every predictor."""
    annotations = ((existing or {}).get("metadata") or {}).get("annotations") or {}
    return existing is None or annotations.get(naming.ANNOTATION_SPEC_HASH) != digest


def ensure_predictor(
    ctx: Context,
    owner: Owner,
    spec: DeploymentSpec,
    served: ServedVersion,
    replicas: int | None = None,
) -> dict[str, Any] | None:
    shadowed = spec.promotion.strategy == PromotionStrategy.shadow
    # The shadow Service's address is not spec: a stand-in keeps the hash stable.
    manifest = builders.predictor_deployment(
        owner,
        spec,
        served,
        ctx.config,
        replicas=replicas,
        shadow_target="shadow:0" if shadowed else None,
    )
    hpa = builders.predictor_hpa(owner, spec)
    # The hash leaves out the Service's address (not part of the spec) and covers the HPA.
    digest = spec_hash(manifest if hpa is None else {"predictor": manifest, "hpa": hpa})
    existing = ctx.kube.get_deployment(owner.namespace, manifest["metadata"]["name"])
    if needs_apply(existing, digest):
        # The Service first: its ClusterIP is how the replicas find each other.
        service, _ = ctx.kube.create(builders.predictor_service(owner))
        target = None
        if shadowed:  # the serving pods mirror live requests to the shadow's Service
            shadow_service, _ = ctx.kube.create(builders.predictor_service(owner, SHADOW))
            target = builders.peers_seed(shadow_service)
        elif _mirrors(existing):  # the strategy changed: the shadow's Service goes
            ctx.kube.delete_service(owner.namespace, naming.shadow(owner.name))
        manifest = builders.predictor_deployment(
            owner,
            spec,
            served,
            ctx.config,
            peers_seed=builders.peers_seed(service),
            replicas=replicas,
            shadow_target=target,
        )
        manifest["metadata"]["annotations"] = {naming.ANNOTATION_SPEC_HASH: digest}
        existing = ctx.kube.apply_deployment(manifest)
        if hpa is not None:
            ctx.kube.apply_hpa(hpa)
        else:  # autoscaling removed (or never set): spec.replicas rules again
            ctx.kube.delete_hpa(owner.namespace, naming.predictor(owner.name))
        if ctx.config.model_service_monitors and ctx.crds.exists(SERVICE_MONITOR_CRD):
            ctx.kube.create(builders.service_monitor(owner))
    return existing


def _mirrors(predictor: Obj | None) -> bool:
    """Whether the predictor's pods mirror requests to a shadow."""
    template = ((predictor or {}).get("spec") or {}).get("template") or {}
    containers = (template.get("spec") or {}).get("containers") or []
    return any(
        e.get("name") == contract.ENV_SHADOW_TARGET for c in containers for e in c.get("env") or []
    )


def desired_replicas(spec: DeploymentSpec, predictor: dict[str, Any] | None) -> int:
    """spec.replicas; with autoscaling, the count the HPA set on the predictor (at least
    minReplicas until it has set one)."""
    if spec.autoscaling is None:
        return spec.replicas
    current = ((predictor or {}).get("spec") or {}).get("replicas")
    return int(current) if current is not None else spec.autoscaling.min_replicas
