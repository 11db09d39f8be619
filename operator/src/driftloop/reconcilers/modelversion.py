"""ModelVersion: an immutable registry entry; the operator keeps its approval in status."""

from __future__ import annotations

from driftloop import policies

from ._outcome import Context, Obj, Outcome, StatusWriter


def reconcile_model_version(ctx: Context, body: Obj) -> Outcome:
    status = StatusWriter(body, ctx.now_text)
    approval, reason, message = policies.approval(body)
    status.fields.update(approval=approval, approvalReason=reason)
    # The operator has no storage access: the digest comes from the Job that wrote
    # the artifact, and every server verifies it before loading.  The Deployment
    # reconciler sets artifactVerified once a server has loaded this version.
    status.fields["artifactVerified"] = bool(status.current.get("artifactVerified", False))
    status.condition("Approved", approval == "approved", reason, message)
    status.ready(True, "Registered", f"{approval}: {message}")
    return status.outcome(phase=approval)
