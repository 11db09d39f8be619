"""driftloop's test kit: what the tests, `make demo` (hack/demo.py) and the benchmarks share.

Installed with the repository (``pip install -e '.[dev]'``: hatch's ``dev-mode-dirs`` put
tests/support/src on sys.path), so nothing imports it through ``sys.path`` edits.

* :mod:`driftloop_testkit.cluster`   a real cluster: kubeconfig, kubectl, namespaces,
                                     Prometheus; running hack/*.sh scripts (plugin)
* :mod:`driftloop_testkit.driftloop` driftloop on it: CRDs, artifact store, operator (plugin)
* :mod:`driftloop_testkit.s3`        the S3-compatible server of hack/s3.sh (plugin)
* :mod:`driftloop_testkit.data`      data sets and the manifests of our kinds
* :mod:`driftloop_testkit.scenarios` the flows tests and the demo repeat (train, then serve)
* :mod:`driftloop_testkit.traffic`   inference traffic
* :mod:`driftloop_testkit.helm`      the helm binary and the chart
* :mod:`driftloop_testkit.runtime`   the runtime in-process and as a local server
* :mod:`driftloop_testkit.imports`   what importing a module loads (layering checks)

Nothing heavy is imported at import time: the plugins load for every test run.
"""
