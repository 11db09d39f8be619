"""Every generated file of the repository, from one entry point.

    python -m driftloop.codegen            # write them (``make generate``)
    python -m driftloop.codegen --check    # list the stale ones and exit 1 (``make verify``)

* :mod:`.crds` - ``crds/*.yaml`` and ``docs/reference/api.md`` from the models in
  :mod:`driftloop.api`;
* :mod:`.chart` - ``charts/driftloop/templates/crds/*.yaml``: the same CRDs behind the
  chart's ``crds.enabled`` / ``crds.keep`` values;
* :mod:`.argocd` - the Argo CD health checks: ``docs/gitops/argocd-health/driftloop.dev/
  <Kind>/health.lua`` and ``docs/gitops/argocd-cm.yaml``, from the one hand-written
  ``docs/gitops/argocd-health/health.lua``. Their ``health_test.yaml`` and ``testdata/``
  are test data and are never generated.

Development tooling: the operator never imports this package at run time.
"""
