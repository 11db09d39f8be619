"""Inference traffic for e2e tests and the demo (loopback / pod IPs on this machine only)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import requests

from tests.support.data import infer_request

#: Iris feature means and spreads, for synthetic live traffic.
_MEANS = np.array([5.84, 3.06, 3.76, 1.20])
_STDS = np.array([0.83, 0.43, 1.76, 0.76])


def rows(n: int, shift: float = 0.0, seed: int | None = None) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    sample = rng.normal(_MEANS, _STDS, size=(n, 4)) + shift
    return [[round(float(v), 3) for v in row] for row in np.clip(sample, 0.1, None)]


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
