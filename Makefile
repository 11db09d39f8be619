# Thin entry points; the logic lives in hack/, bench/ and the Python packages.
# `make demo` runs the whole loop; `make test` runs every test suite.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST := $(PY) -m pytest

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

# The venv is rebuilt when pyproject.toml changes; pip caches wheels across runs.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

.PHONY: venv
venv: $(VENV)/.installed ## create the dev virtualenv (.venv)

.PHONY: test
test: venv lint verify test-unit test-s3 test-docker test-cluster test-e2e test-faults-quick ## run every test suite (unit, S3, docker, cluster, e2e, bounded faults)

.PHONY: test-unit
test-unit: venv tools ## fast tests, no cluster
	$(PYTEST) tests/unit -q -n 2

# The S3 suites start the server themselves (tests/support/s3.py runs hack/s3.sh up);
# the target does it first so a cold MinIO build shows its progress here.
# Branch coverage of the reconcilers from the unit tests alone (no cluster): the
# figure the README's development section reports.
.PHONY: coverage
coverage: venv ## reconcilers' branch coverage from the fake-client unit tests
	$(PYTEST) tests/unit/operator -q --cov --cov-report=term-missing

.PHONY: test-s3
test-s3: venv s3-up ## the runtime against a real S3-compatible server (MinIO, hack/s3.sh)
	$(PYTEST) tests/s3 -q

.PHONY: s3-up
s3-up: ## start the local S3-compatible server (builds MinIO once, cached); prints the endpoint
	hack/s3.sh up

.PHONY: s3-down
s3-down: ## stop the local S3-compatible server (its data stays)
	hack/s3.sh down

.PHONY: test-docker
test-docker: venv images s3-up ## the runtime image trains and serves under docker run
	$(PYTEST) tests/docker -m docker -q

# promtool checks the metrics exposition in unit tests; wrk drives the serving benchmark.
.PHONY: tools
tools:
	@command -v promtool >/dev/null && command -v wrk >/dev/null || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends prometheus wrk >/dev/null; }

# The cluster and e2e tests spend most of their time waiting for pods and clocks, and
# each has its own namespace and operator: they run on CLUSTER_WORKERS pytest-xdist
# workers at once (1: one after the other). The services the workers share are started
# before pytest, so no two workers start one.
CLUSTER_WORKERS ?= 3
CLUSTER_PYTEST = $(PYTEST) -q -n $(CLUSTER_WORKERS) --durations=15

.PHONY: test-cluster
test-cluster: venv cluster-images s3-up ## tests against the embedded cluster (or $KUBECONFIG)
	$(CLUSTER_PYTEST) tests/cluster

# The Argo CD health fixtures are objects the operator produced: the cluster and e2e tests
# that reach each state write them (driftloop_testkit.argocd). Review the diff, then commit.
.PHONY: argocd-fixtures
argocd-fixtures: venv cluster-images ## recapture docs/gitops/argocd-health fixtures from a cluster run
	rm -rf docs/gitops/argocd-health/driftloop.dev/*/testdata docs/gitops/argocd-health/driftloop.dev/*/health_test.yaml
	DRIFTLOOP_CAPTURE_ARGOCD_FIXTURES=1 $(PYTEST) -q \
	  tests/cluster/test_operator.py::test_happy_path_data_to_prediction \
	  tests/cluster/test_operator.py::test_failures_are_conditions_with_reasons \
	  tests/e2e/test_drift_loop.py::test_promotion_policy_rejects_a_worse_model \
	  tests/e2e/test_drift_loop.py::test_unready_version_rolls_back

.PHONY: test-e2e
test-e2e: venv cluster-images s3-up prometheus-up ## the full loop with a real Prometheus
	$(CLUSTER_PYTEST) tests/e2e --ignore=tests/e2e/test_helm.py
	# Alone: its releases' operators watch every namespace, other tests' too.
	$(PYTEST) -q --durations=5 tests/e2e/test_helm.py

.PHONY: prometheus-up
prometheus-up: ## start the real Prometheus the e2e tests and the demo scrape with
	hack/prometheus.sh up >/dev/null

# Fault injection on the embedded cluster (tests/faults): the operator SIGKILLed, the API
# server restarted, Prometheus and MinIO stopped, the PVC missing, predictor pods killed.
# DRIFTLOOP_FAULT_SEED=<n> replays a run (the seed is printed at start and in failures).
# The quick variant runs in `make test`; both print the faults injected and recovery times.
.PHONY: test-faults
test-faults: venv cluster-images s3-up ## the long fault-injection suite (dozens of operator kills)
	DRIFTLOOP_FAULT_SCALE=long $(PYTEST) tests/faults -q -m faults

.PHONY: test-faults-quick
test-faults-quick: venv cluster-images s3-up ## the bounded fault-injection suite (make test runs it)
	DRIFTLOOP_FAULT_SCALE=quick $(PYTEST) tests/faults -q -m 'faults and not faults_long'

.PHONY: lint
lint: venv ## ruff + mypy + shellcheck
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	@command -v shellcheck >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq --no-install-recommends shellcheck >/dev/null; }
	shellcheck -x hack/*.sh

.PHONY: fmt
fmt: venv ## format the code
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Every generated file (driftloop.codegen): crds/, docs/reference/api.md, the chart's CRD
# templates, the Argo CD health scripts and argocd-cm snippet.
.PHONY: generate
generate: venv ## write every generated file
	$(PY) -m driftloop.codegen

.PHONY: verify
verify: venv ## fail when a generated file is stale (lists them)
	$(PY) -m driftloop.codegen --check

.PHONY: crds crds-check chart-check
crds: generate
crds-check chart-check: verify

.PHONY: helm
helm: ## build helm once (cached in ~/.cache/driftloop) and print its path
	hack/helm.sh ensure

.PHONY: test-chart
test-chart: venv ## Helm chart + GitOps tests (builds helm on first use)
	$(PYTEST) tests/unit/chart tests/unit/gitops -q

.PHONY: cluster-up
cluster-up: ## start the embedded cluster (builds Kubernetes once, cached)
	hack/cluster.sh up

.PHONY: cluster-down
cluster-down: ## stop the embedded cluster
	hack/cluster.sh down

.PHONY: cluster-smoke
cluster-smoke: venv cluster-up ## smoke-test the embedded cluster
	$(PYTEST) tests/cluster/test_smoke.py -q

.PHONY: cluster-images
# Separate from `images`: make runs a target once per invocation, and images built
# before the cluster was up (test-docker) still have to be loaded into its node.
cluster-images: cluster-up ## build (cached) and load the images into the running cluster
	hack/images.sh build-all

.PHONY: images
images: ## build the runtime and operator images (and load them into the cluster)
	hack/images.sh build-all

.PHONY: bench-serving
bench-serving: venv tools ## our model server vs MLServer and KServe, REST and gRPC, side by side
	@command -v h2load >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq --no-install-recommends nghttp2-client >/dev/null; }
	$(PY) bench/serving.py --grpc

.PHONY: bench-drift
bench-drift: venv ## drift detection: false alarms and delay, driftloop (fixed, calibrated) vs Evidently and NannyML
	$(PY) bench/drift.py $(BENCH_DRIFT_ARGS)

.PHONY: bench-data
bench-data: venv ## profile and train on 10^5..10^7 rows (CSV, multi-file Parquet): time, peak RSS, rows/s
	$(PY) bench/data.py $(BENCH_DATA_ARGS)

.PHONY: bench-reconcile
bench-reconcile: venv cluster-images ## reconcile latency vs the built-in Job controller
	$(PY) bench/reconcile_latency.py

.PHONY: bench-scale
bench-scale: venv cluster-images ## 1,000 and 5,000 TrainingRuns + 200 Deployments: drain, RSS, API load, vs an earlier driftloop
	hack/prometheus.sh up >/dev/null
	$(PY) bench/scale.py

.PHONY: demo
demo: venv cluster-images ## the whole loop on the embedded cluster: data, train, serve, drift, retrain, promote
	hack/prometheus.sh up >/dev/null
	$(PY) hack/demo.py
