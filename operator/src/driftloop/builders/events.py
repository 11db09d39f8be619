"""core/v1 Events about our objects (what ``kubectl describe`` shows)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from driftloop import naming

from .common import Manifest

#: The Event's source and reporting controller.
COMPONENT = "driftloop"
REPORTING_CONTROLLER = "driftloop.dev/operator"
MAX_MESSAGE = 1024


def event(obj: Mapping[str, Any], type_: str, reason: str, message: str, now: datetime) -> Manifest:
    """An Event about ``obj``, named ``<obj>.<hash>`` as client-go names its own."""
    meta = obj["metadata"]
    stamp = now.replace(microsecond=0).isoformat().replace("+00:00", "Z")
    suffix = naming.short_hash(meta.get("uid", ""), reason, message, now.isoformat(), length=16)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{meta['name']}.{suffix}", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": obj["apiVersion"],
            "kind": obj["kind"],
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid", ""),
            "resourceVersion": meta.get("resourceVersion", ""),
        },
        "type": type_,
        "reason": reason,
        "message": message[:MAX_MESSAGE],
        "count": 1,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "source": {"component": COMPONENT},
        "reportingComponent": REPORTING_CONTROLLER,
        "reportingInstance": COMPONENT,
    }
