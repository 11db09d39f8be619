"""Pure builders: the desired child objects of a custom resource.

Plain functions from (parent, spec, config) to Kubernetes manifests as dicts.
No I/O: unit-tested with golden YAML.
"""

from .common import Owner
from .events import event
from .registry import model_version, retraining_run
from .serving import (
    peers_seed,
    predictor_deployment,
    predictor_hpa,
    predictor_service,
    service_monitor,
)
from .training import profile_job, profile_jobs_selector, training_job

__all__ = [
    "Owner",
    "event",
    "model_version",
    "peers_seed",
    "predictor_deployment",
    "predictor_hpa",
    "predictor_service",
    "profile_job",
    "profile_jobs_selector",
    "retraining_run",
    "service_monitor",
    "training_job",
]
