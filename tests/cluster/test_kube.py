"""The operator's Kubernetes I/O layer against a real API server."""

from __future__ import annotations

from typing import Any

import pytest

from driftloop.api import MODEL_VERSION
from driftloop.kube import ConflictError, Kube
from driftloop_testkit.data import model_version_manifest
from driftloop_testkit.driftloop import create_cr, get_cr

pytestmark = pytest.mark.cluster


def test_a_status_computed_from_a_stale_read_does_not_overwrite(
    kube_api: Any, custom: Any, namespace: str, crds: None
) -> None:
    kube = Kube(kube_api)
    create_cr(custom, namespace, model_version_manifest("m-v1"))
    stale = get_cr(custom, namespace, "ModelVersion", "m-v1")
    assert stale is not None
    stale_version = stale["metadata"]["resourceVersion"]

    # Another writer (the Deployment reconciler rejecting the version) goes first...
    rejected = {"approval": "rejected", "approvalReason": "RolloutFailed"}
    kube.patch_status(MODEL_VERSION, namespace, "m-v1", rejected)
    # ...so a write conditioned on the earlier read is refused, not merged over it.
    with pytest.raises(ConflictError, match="changed since it was read"):
        kube.patch_status(
            MODEL_VERSION,
            namespace,
            "m-v1",
            {"approval": "approved", "approvalReason": "GatesPassed"},
            resource_version=stale_version,
        )
    fresh = get_cr(custom, namespace, "ModelVersion", "m-v1")
    assert fresh is not None
    assert fresh["status"]["approval"] == "rejected"

    # Conditioned on the current version, it goes through.
    kube.patch_status(
        MODEL_VERSION,
        namespace,
        "m-v1",
        {"approvalReason": "SetByUser"},
        resource_version=fresh["metadata"]["resourceVersion"],
    )
    final = get_cr(custom, namespace, "ModelVersion", "m-v1")
    assert final is not None
    assert final["status"]["approvalReason"] == "SetByUser"
