"""``driftloop-operator``: run the operator (kopf, standalone)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import re
from collections.abc import Sequence

import kopf
from prometheus_client import start_http_server

from driftloop import handlers
from driftloop.config import OperatorConfig
from driftloop.kube import CrdCache, Kube, load_config

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


def parse_config(argv: Sequence[str] | None, env: dict[str, str] | None = None) -> OperatorConfig:
    """The one configuration: the environment (Helm values), overridden by flags."""
    config = OperatorConfig.from_env(env)
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
    parser.add_argument("--metrics-port", type=int, default=config.metrics_port)
    parser.add_argument(
        "--log-format", choices=["plain", "json", "full"], default=config.log_format
    )
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    return dataclasses.replace(
        config,
        watch_namespaces=tuple(args.namespace) or config.watch_namespaces,
        metrics_port=args.metrics_port,
        log_format=args.log_format,
        liveness_endpoint=args.liveness or None,
        verbose=args.verbose,
    )


def main(argv: Sequence[str] | None = None) -> None:
    config = parse_config(argv)
    kopf.configure(verbose=config.verbose, log_format=kopf.LogFormat[config.log_format.upper()])
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # every liveness probe
    if config.metrics_port:
        start_http_server(config.metrics_port)
    load_config()
    kube = Kube()
    registry = kopf.OperatorRegistry()
    handlers.register(registry, config)
    namespaces = list(config.watch_namespaces)
    asyncio.run(
        kopf.operator(
            registry=registry,
            memo=kopf.Memo(services=handlers.Services(config, kube, CrdCache(kube))),
            settings=operator_settings(namespaces),
            standalone=True,
            clusterwide=not namespaces,
            namespaces=namespaces,
            liveness_endpoint=config.liveness_endpoint,
        )
    )


if __name__ == "__main__":
    main()
