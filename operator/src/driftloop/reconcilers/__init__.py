"""Reconcilers: one level-based function per kind.

Each reads the object and the world through :class:`driftloop.client.KubeClient`, asks
the pure builders and policies what should be, creates what is missing, and
returns an :class:`Outcome` - the status it wants and the events to post.  The
kopf handlers apply the outcome, so these functions never touch kopf.
"""

from ._outcome import Context, Event, Outcome, Reconciler
from .dataset import reconcile_dataset
from .deployment import reconcile_deployment
from .modelversion import reconcile_model_version
from .trainingrun import reconcile_training_run

__all__ = [
    "Context",
    "Event",
    "Outcome",
    "Reconciler",
    "reconcile_dataset",
    "reconcile_deployment",
    "reconcile_model_version",
    "reconcile_training_run",
]
