"""Which objects to reconcile when something changes: the watch-to-queue rules.

controller-runtime calls these "watches" (``Owns``, ``Watches`` with a mapping
function).  Each rule reads only the changed object and the cache, so the rules are
pure and table-tested; :mod:`driftloop.handlers` feeds them watch events and puts the
keys they return on the work queue.

Children (Jobs, predictor Deployments, their pods) name their owner in labels, set
by the builders: the ``app.kubernetes.io/component`` says which kind, and a
``driftloop.dev/<kind>`` label its name.  A Job's ``FailedCreate`` Event (a quota that
refuses its pods: nothing else reports that) names the Job it is about.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from driftloop import naming
from driftloop.api import (
    API_VERSION,
    DATASET,
    DEPLOYMENT,
    MANAGED_BY,
    MODEL_VERSION,
    TRAINING_RUN,
)
from driftloop.builders.training import PROFILING
from driftloop.cache import ObjectCache


class Key(NamedTuple):
    """One object to reconcile: its kind (``TrainingRun``), namespace and name."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


#: component label -> (owner kind, label naming the owner)
_OWNER_LABELS = {
    "training": (TRAINING_RUN.kind, naming.LABEL_TRAINING_RUN),
    PROFILING: (DATASET.kind, naming.LABEL_DATASET),
    "predictor": (DEPLOYMENT.kind, naming.LABEL_DEPLOYMENT),
}


def owner_of_child(obj: Mapping[str, Any]) -> Key | None:
    """The driftloop object a Job, predictor Deployment or pod belongs to."""
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    found = _OWNER_LABELS.get(labels.get(naming.LABEL_COMPONENT, ""))
    if found is None or labels.get(naming.LABEL_MANAGED_BY) != MANAGED_BY:
        return None
    kind, label = found
    name = labels.get(label)
    return Key(kind, meta.get("namespace") or "", name) if name else None


def for_child(obj: Mapping[str, Any], cache: ObjectCache) -> list[Key]:
    """A child changed: its owner.  A core Event: the owner of the Job it is about."""
    if obj.get("kind") == "Event":
        about = obj.get("involvedObject") or {}
        if about.get("kind") != "Job":
            return []
        job = cache.get("batch/v1", "Job", about.get("namespace") or "", about.get("name") or "")
        obj = job or {}
    owner = owner_of_child(obj)
    return [owner] if owner is not None else []


def for_resource(obj: Mapping[str, Any], cache: ObjectCache) -> list[Key]:
    """One of our objects changed: itself, and the objects whose status reads it."""
    meta = obj["metadata"]
    namespace, name, kind = meta["namespace"], meta["name"], obj["kind"]
    keys = [Key(kind, namespace, name)]
    spec = obj.get("spec") or {}
    if kind == DATASET.kind:
        # TrainingRuns waiting for it (they are users' objects: no label to select on).
        keys += [
            Key(TRAINING_RUN.kind, namespace, run["metadata"]["name"])
            for run in cache.list(API_VERSION, TRAINING_RUN.kind, namespace)
            if ((run.get("spec") or {}).get("datasetRef") or {}).get("name") == name
        ]
    elif kind == TRAINING_RUN.kind:
        # A retraining run reports back to the Deployment that started it.
        deployment = (meta.get("labels") or {}).get(naming.LABEL_DEPLOYMENT)
        if deployment:
            keys.append(Key(DEPLOYMENT.kind, namespace, deployment))
    elif kind == MODEL_VERSION.kind:
        # A new or newly approved version may be promoted by the Deployments serving its model.
        model = spec.get("model")
        keys += [
            Key(DEPLOYMENT.kind, namespace, d["metadata"]["name"])
            for d in cache.list(API_VERSION, DEPLOYMENT.kind, namespace)
            if ((d.get("spec") or {}).get("model") or {}).get("name") == model
        ]
        # Runs waiting to reproduce it.
        keys += [
            Key(TRAINING_RUN.kind, namespace, run["metadata"]["name"])
            for run in cache.list(API_VERSION, TRAINING_RUN.kind, namespace)
            if ((run.get("spec") or {}).get("reproduce") or {}).get("modelVersion") == name
        ]
    elif kind == DEPLOYMENT.kind:
        # Versions read what their Deployments serve and refuse.
        model = (spec.get("model") or {}).get("name")
        if model:
            keys += [
                Key(MODEL_VERSION.kind, namespace, mv["metadata"]["name"])
                for mv in cache.list(
                    API_VERSION, MODEL_VERSION.kind, namespace, f"{naming.LABEL_MODEL}={model}"
                )
            ]
    return keys
