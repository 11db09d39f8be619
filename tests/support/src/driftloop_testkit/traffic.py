"""Inference traffic for e2e tests and the demo (loopback / pod IPs on this machine only)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import requests

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
