"""Inference traffic for e2e tests and the demo (loopback / pod IPs on this machine only)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import requests

import driftloop_contract as contract
from driftloop_testkit.cluster import wait_for
from driftloop_testkit.data import infer_request

_IRIS: np.ndarray | None = None


def _iris() -> np.ndarray:
    global _IRIS
    if _IRIS is None:
        from sklearn.datasets import load_iris

        _IRIS = np.asarray(load_iris().data, dtype=float)
    return _IRIS


def rows(n: int, shift: float = 0.0, seed: int | None = None) -> list[list[float]]:
    """Live inputs drawn like the training data (iris rows plus a little noise), shifted."""
    rng = np.random.default_rng(seed)
    data = _iris()
    sample = data[rng.integers(0, len(data), size=n)] + rng.normal(0, 0.05, size=(n, 4)) + shift
    return [[round(float(v), 3) for v in row] for row in sample]


def infer(url: str, rows: list[list[float]], timeout: float = 10) -> requests.Response:
    """POST one OIP v2 request of ``rows`` to a model's infer ``url``."""
    return requests.post(url, json=infer_request(rows), timeout=timeout)


def send(
    url: str,
    batches: int,
    batch_size: int = 16,
    shift: float = 0.0,
    pause: float = 0.05,
    deadline: float = 120.0,
) -> list[dict[str, Any]]:
    """POST ``batches`` OIP v2 requests; bounded in count and time. Returns the responses."""
    session = requests.Session()
    responses = []
    stop = time.monotonic() + deadline
    for i in range(batches):
        if time.monotonic() > stop:
            break
        response = session.post(
            url, json=infer_request(rows(batch_size, shift, seed=i)), timeout=10
        )
        response.raise_for_status()
        responses.append(response.json())
        time.sleep(pause)
    return responses


def predictor_service_url(kubectl: Any, namespace: str, name: str, model: str = "iris") -> str:
    """OIP infer URL of Deployment ``name``'s Service (its ClusterIP: kube-proxy spreads
    the connections over the ready pods, as for any client in the cluster).

    Returns once the Service answers: a pod counted ready in the Deployment's status
    reaches kube-proxy's rules a moment later, and until then the ClusterIP refuses."""
    svc = kubectl.json("get", "service", "-n", namespace, f"{name}-predictor")
    base = f"http://{svc['spec']['clusterIP']}:8080"
    wait_for(
        lambda: (
            requests.get(base + contract.PATH_READY, timeout=5, headers={"Connection": "close"}).ok
        ),
        timeout=120,
        what=f"Service {name}-predictor answering",
    )
    return f"{base}/v2/models/{model}/infer"


def send_spread(
    url: str,
    batches: int,
    batch_size: int = 16,
    shift: float = 0.0,
    seed: int = 0,
    timeout: float = 10,
) -> list[dict[str, Any]]:
    """POST ``batches`` requests, each on a NEW connection, so a Service spreads them over
    its pods (a kept-alive session would pin all of them to one pod)."""
    responses = []
    for i in range(batches):
        response = requests.post(
            url,
            json=infer_request(rows(batch_size, shift, seed=seed + i)),
            timeout=timeout,
            headers={"Connection": "close"},
        )
        response.raise_for_status()
        responses.append(response.json())
    return responses


def prometheus_query(address: str, query: str) -> list[dict[str, Any]]:
    """The result vector of an instant PromQL query."""
    r = requests.get(f"{address}/api/v1/query", params={"query": query}, timeout=10)
    r.raise_for_status()
    body = r.json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def scraped(prometheus: str, namespace: str, deployment: str, pods: int = 1) -> None:
    """Wait until Prometheus has every pod's (zero) row counter of version 1: rows served
    before a pod's first scrape are not in increase(), as for any counter, so drift
    traffic sent earlier would go uncounted."""
    selector = f'namespace="{namespace}",deployment="{deployment}",version="1"'
    wait_for(
        lambda: (
            len(prometheus_query(prometheus, f"driftloop_drift_rows_total{{{selector}}}")) == pods
        ),
        timeout=120,
        what=f"Prometheus scraping the {pods} pod(s) of {deployment}",
    )
