"""Minimal Prometheus HTTP API client (instant queries), standard library only."""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable

#: The signature of :func:`query_scalar` (tests pass their own).
PrometheusQuery = Callable[[str, str, str | None], float]


class PrometheusError(Exception):
    """A query that produced no usable value; ``reason`` is a condition reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def query_scalar(
    base_url: str, promql: str, token: str | None = None, timeout: float = 5.0
) -> float:
    """Run an instant query that must return exactly one finite number."""
    url = base_url.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = json.loads(response.read())
    except urllib.error.HTTPError as error:
        detail = _error_text(error)
        reason = "QueryError" if error.code in (400, 422) else "PrometheusUnreachable"
        raise PrometheusError(reason, f"HTTP {error.code}: {detail}") from error
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        raise PrometheusError("PrometheusUnreachable", f"{base_url}: {error}") from error
    except ValueError as error:
        raise PrometheusError("QueryError", f"invalid JSON from Prometheus: {error}") from error
    if payload.get("status") != "success":
        raise PrometheusError("QueryError", str(payload.get("error", payload)))
    data = payload.get("data") or {}
    result = data.get("result")
    if data.get("resultType") == "scalar":
        values = [result]
    elif data.get("resultType") == "vector":
        values = [sample.get("value") for sample in result or []]
    else:
        raise PrometheusError("QueryError", f"unsupported result type {data.get('resultType')}")
    if not values:
        raise PrometheusError("EmptyResult", f"query returned no samples: {promql}")
    if len(values) > 1:
        raise PrometheusError("QueryError", f"query returned {len(values)} series; aggregate it")
    sample = values[0]
    if not isinstance(sample, list) or len(sample) != 2:
        raise PrometheusError("QueryError", f"malformed sample {sample!r}")
    value = float(sample[1])
    if math.isnan(value) or math.isinf(value):
        raise PrometheusError("EmptyResult", f"query returned {value}")
    return value


def _error_text(error: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(error.read()).get("error", ""))
    except (ValueError, OSError):
        return error.reason or ""
