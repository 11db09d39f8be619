"""Pure builders: the desired child objects of a custom resource.

Plain functions from (parent, spec, config) to Kubernetes manifests as dicts.
No I/O: unit-tested with golden YAML.
"""

from .common import Owner
from .registry import model_version, retraining_run
from .serving import predictor_deployment, predictor_service, service_monitor
from .training import profile_job, profile_jobs_selector, training_job

__all__ = [
    "Owner",
    "model_version",
    "predictor_deployment",
    "predictor_service",
    "profile_job",
    "profile_jobs_selector",
    "retraining_run",
    "service_monitor",
    "training_job",
]
