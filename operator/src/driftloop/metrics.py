"""The operator's own Prometheus metrics (served on --metrics-port)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter(
    "driftloop_operator_reconciles_total",
    "Reconciles by kind and result (ok, conflict, error).",
    ["kind", "result"],
)
RECONCILE_DURATION = Histogram(
    "driftloop_operator_reconcile_duration_seconds",
    "Time spent in one reconcile.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
OBJECTS = Gauge(
    "driftloop_operator_objects",
    "Objects by kind and phase, as last reconciled.",
    ["kind", "phase"],
)
STATUS_PATCHES = Counter(
    "driftloop_operator_status_patches_total",
    "Status patches sent (reconciles that changed nothing send none).",
    ["kind"],
)
QUEUE_DEPTH = Gauge(
    "driftloop_operator_workqueue_depth",
    "Objects waiting for a reconcile worker.",
)
QUEUE_RETRIES = Counter(
    "driftloop_operator_workqueue_retries_total",
    "Reconciles queued again after a failure or a conflict.",
    ["kind"],
)
API_REQUESTS = Counter(
    "driftloop_operator_api_requests_total",
    "Requests the reconcilers sent to the API server (watches excluded), by verb and resource.",
    ["verb", "resource"],
)
API_THROTTLED_SECONDS = Counter(
    "driftloop_operator_api_throttled_seconds_total",
    "Time reconcilers waited for the client-side rate limiter.",
)


class PhaseTracker:
    """Keeps OBJECTS consistent: each object counts once, under its latest phase."""

    def __init__(self) -> None:
        self._phases: dict[tuple[str, str], str] = {}

    def set(self, kind: str, uid: str, phase: str | None) -> None:
        old = self._phases.get((kind, uid))
        if old == phase:
            return
        if old is not None:
            OBJECTS.labels(kind, old).dec()
        if phase is None:
            self._phases.pop((kind, uid), None)
            return
        self._phases[(kind, uid)] = phase
        OBJECTS.labels(kind, phase).inc()


PHASES = PhaseTracker()
