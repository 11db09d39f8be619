"""ModelVersion: an immutable registry entry; the operator keeps its approval in status."""

from __future__ import annotations

from driftloop import policies
from driftloop.api import DEPLOYMENT
from driftloop.conditions import compact

from ._outcome import Context, Event, Obj, Outcome, StatusWriter

APPROVAL_HISTORY_LIMIT = 10


def reconcile_model_version(ctx: Context, body: Obj) -> Outcome:
    """Approval from the user's annotation, the gates and the Deployments' refusals.

    Deployments record what they refused or rolled back in their own status; this
    reconciler is the only writer of a ModelVersion's status and reads them in.
    """
    meta = body["metadata"]
    status = StatusWriter(body, ctx.now_text)
    deployments = [
        d
        for d in ctx.kube.list(DEPLOYMENT, meta["namespace"])
        if ((d.get("spec") or {}).get("model") or {}).get("name") == body["spec"]["model"]
    ]
    approval, reason, message = policies.approval(body, policies.rejections_of(body, deployments))
    status.fields.update(approval=approval, approvalReason=reason)
    events: list[Event] = []
    before = status.current.get("approval")
    if (before, status.current.get("approvalReason")) != (approval, reason):
        # An audit trail of the approval: who (reason) set which state, when.
        record = {
            "approval": approval,
            "previous": before,
            "reason": reason,
            "message": message[:1024],
            "time": status.now,
        }
        earlier = status.current.get("approvalHistory") or []
        status.fields["approvalHistory"] = [compact(record), *earlier][:APPROVAL_HISTORY_LIMIT]
        if reason == "SetByUser":
            text = f"approval {before or 'unset'} -> {approval}: {message}"
            events.append(Event("Normal", "ApprovalChanged", text))
    # The operator has no storage access: the digest comes from the Job that wrote
    # the artifact, and every server verifies it before loading.  A Deployment that
    # reached full readiness on this version proves a server accepted it; once
    # verified, it stays verified.
    served = any(
        (d.get("status") or {}).get("servingModelVersion") == meta["name"] for d in deployments
    )
    status.fields["artifactVerified"] = served or bool(status.current.get("artifactVerified"))
    status.condition("Approved", approval == "approved", reason, message)
    status.ready(True, "Registered", f"{approval}: {message}")
    return status.outcome(events, phase=approval)
