"""``driftloop-operator``: run the operator (kopf, standalone)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
from collections.abc import Sequence

import kopf
from prometheus_client import start_http_server

_NAMESPACE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def operator_settings(namespaces: Sequence[str]) -> kopf.OperatorSettings:
    """kopf settings for the namespaces the operator serves (empty: cluster-wide).

    Given exact namespace names (not kopf's glob patterns), kopf needs no cluster-wide
    discovery. Left on, it would list and watch all namespaces, which the chart's
    namespaced mode does not grant, retrying for about a minute before it falls back.
    """
    settings = kopf.OperatorSettings()
    if namespaces and all(_NAMESPACE_NAME.fullmatch(ns) for ns in namespaces):
        settings.scanning.disabled = True
    return settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="driftloop-operator", description=__doc__)
    parser.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="watch this namespace (repeatable); default: DRIFTLOOP_WATCH_NAMESPACES or all",
    )
    parser.add_argument(
        "--liveness", default="http://0.0.0.0:8080/healthz", help="kopf liveness endpoint"
    )
    parser.add_argument(
        "--metrics-port", type=int, default=int(os.environ.get("DRIFTLOOP_METRICS_PORT", "9090"))
    )
    parser.add_argument(
        "--log-format",
        choices=["plain", "json", "full"],
        default=os.environ.get("DRIFTLOOP_LOG_FORMAT", "plain"),
    )
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)

    namespaces = args.namespace or [
        ns.strip()
        for ns in os.environ.get("DRIFTLOOP_WATCH_NAMESPACES", "").split(",")
        if ns.strip()
    ]
    kopf.configure(verbose=args.verbose, log_format=kopf.LogFormat[args.log_format.upper()])
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # every liveness probe
    if args.metrics_port:
        start_http_server(args.metrics_port)
    import driftloop.handlers  # noqa: F401  - registers the handlers

    asyncio.run(
        kopf.operator(
            settings=operator_settings(namespaces),
            standalone=True,
            clusterwide=not namespaces,
            namespaces=namespaces,
            liveness_endpoint=args.liveness or None,
        )
    )


if __name__ == "__main__":
    main()
