"""driftloop: a Kubernetes operator for the whole machine-learning loop.

Layers (each imports only the ones before it):

* :mod:`driftloop.api` - pydantic models of the four kinds; the CRDs are generated
  from them (:mod:`driftloop.codegen`, development tooling the operator never imports).
* :mod:`driftloop.builders` / :mod:`driftloop.policies` - pure functions: desired
  child objects and decisions.
* :mod:`driftloop.client` - the KubeClient protocol the reconcilers see.
* :mod:`driftloop.kube` - the one thin layer that talks to the Kubernetes API.
* :mod:`driftloop.handlers` - kopf handlers wiring the above together.
"""

__version__ = "0.1.0"
