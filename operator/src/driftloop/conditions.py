"""Pure helpers for status: conditions (metav1.Condition semantics) and status diffs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

READY = "Ready"


def now_rfc3339() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def set_condition(
    conditions: Sequence[Mapping[str, Any]],
    type_: str,
    status: bool | str,
    reason: str,
    message: str = "",
    *,
    generation: int | None,
    now: str,
) -> list[dict[str, Any]]:
    """Return ``conditions`` with one condition set.

    As in apimachinery's ``meta.SetStatusCondition``: ``lastTransitionTime``
    changes only when the status does, so repeated reconciles are no-ops.
    """
    value = status if isinstance(status, str) else ("True" if status else "False")
    result = [dict(c) for c in conditions if c.get("type") != type_]
    previous = next((c for c in conditions if c.get("type") == type_), None)
    changed = previous is None or previous.get("status") != value
    condition: dict[str, Any] = {
        "type": type_,
        "status": value,
        "reason": reason,
        "message": message[:32768],
        "lastTransitionTime": now if changed else previous["lastTransitionTime"],  # type: ignore[index]
    }
    if generation is not None:
        condition["observedGeneration"] = generation
    result.append(condition)
    return sorted(result, key=lambda c: (c["type"] != READY, c["type"]))


def get_condition(status: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == type_), None)


def is_true(status: Mapping[str, Any], type_: str = READY) -> bool:
    condition = get_condition(status, type_)
    return condition is not None and condition.get("status") == "True"


def compact(value: Any) -> Any:
    """``value`` without None inside objects: the API server prunes a null of a field
    that is not nullable, so a None kept in a status record would differ from what is
    stored, and be written again at every reconcile."""
    if isinstance(value, Mapping):
        return {k: compact(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [compact(v) for v in value]
    return value


def status_patch(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch turning ``current`` status into ``desired`` (``{}``: no change).

    Keys absent from ``desired`` are left alone: other writers (kopf) may own them.
    A ``None`` value in ``desired`` removes the key.
    """
    patch: dict[str, Any] = {}
    for key, value in desired.items():
        if value is None:
            if key in current:
                patch[key] = None
            continue
        if isinstance(value, Mapping) and isinstance(current.get(key), Mapping):
            # A merge patch merges objects: keys the new value lacks (or sets to None)
            # must be removed explicitly.
            kept = compact(value)
            if dict(current[key]) != kept:
                gone = {k: None for k in current[key] if k not in kept}
                patch[key] = {**gone, **kept}
        elif current.get(key) != value:
            patch[key] = value
    return patch
