"""``driftloop-operator``: run the operator (kopf, standalone; with ``--leader-elect``
only while holding the Lease, see :mod:`driftloop.leadership`)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import re
import signal
import threading
import tracemalloc
from collections.abc import Sequence

import kopf
from prometheus_client import start_http_server

from driftloop import handlers
from driftloop.cache import CachedKube, ObjectCache
from driftloop.config import OperatorConfig
from driftloop.events import EventPoster
from driftloop.health import Health, HealthServer, LoopHeartbeat, WatchEchoes
from driftloop.kube import CrdCache, Kube, load_config
from driftloop.leadership import (
    FencedKube,
    LeaderElector,
    Leadership,
    NoElection,
    campaign,
    keep_leading,
)
from driftloop.ratelimit import TokenBucket
from driftloop.wakeups import Key
from driftloop.workqueue import WorkQueue, run_workers

log = logging.getLogger("driftloop")

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
        "--liveness",
        default=config.liveness_endpoint or "",
        help="the /healthz endpoint (empty: none)",
    )
    parser.add_argument(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=config.leader_election,
        help="act only while holding the Lease (run several replicas); "
        "default: DRIFTLOOP_LEADER_ELECTION or off",
    )
    parser.add_argument("--lease-namespace", default=config.lease_namespace)
    parser.add_argument("--lease-name", default=config.lease_name)
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
        leader_election=args.leader_elect,
        lease_namespace=args.lease_namespace,
        lease_name=args.lease_name,
        verbose=args.verbose,
    )


#: The Events' own rate limit (client-go's recorder allows a burst of 25 per object).
EVENT_QPS, EVENT_BURST = 10.0, 100

#: The exit code of a leader that lost its Lease (the kubelet restarts it as a standby).
EXIT_LEADERSHIP_LOST = 3


def _exit_lost_leadership() -> None:
    # os._exit, not sys.exit: handler threads still in flight must not write another
    # byte, and kopf's graceful shutdown would let them finish.
    logging.shutdown()
    os._exit(EXIT_LEADERSHIP_LOST)


def _dump_memory_on_sigusr1() -> None:
    """With Python's own ``PYTHONTRACEMALLOC=1`` set, ``kill -USR1`` logs where the
    operator's memory was allocated (by file): how docs/benchmarks.md breaks down RSS."""
    if not tracemalloc.is_tracing():
        return

    def dump(signum: int, frame: object) -> None:
        snapshot = tracemalloc.take_snapshot()
        stats = snapshot.statistics("filename")
        total = sum(stat.size for stat in stats)
        log.warning("tracemalloc: %.1f MB traced in %d files", total / 2**20, len(stats))
        for stat in stats[:25]:
            log.warning("tracemalloc: %8.1f MB %s", stat.size / 2**20, stat.traceback[0].filename)

    signal.signal(signal.SIGUSR1, dump)


def main(argv: Sequence[str] | None = None) -> None:
    config = parse_config(argv)
    _dump_memory_on_sigusr1()
    kopf.configure(verbose=config.verbose, log_format=kopf.LogFormat[config.log_format.upper()])
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    if not config.verbose:
        # kopf logs every watch handler's success per object: thousands of lines a minute
        # at scale, and no news (our own log says what each reconcile wrote).
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    if config.metrics_port:
        start_http_server(config.metrics_port)
    load_config()
    kube = Kube(limiter=TokenBucket(config.api_qps, config.api_burst))
    health = Health()
    if config.liveness_endpoint:
        HealthServer(config.liveness_endpoint, health).start()

    leadership: Leadership = NoElection()
    elector: LeaderElector | None = None
    stopped = threading.Event()
    if config.leader_election:
        elector = LeaderElector(kube, config.lease_namespace, config.lease_name, config.identity)
        if not campaign(elector, stopped):
            return
        keep_leading(elector, on_lost=_exit_lost_leadership, stop=stopped)
        health.add(lambda: [] if elector.held() else ["the leader lease is not held"])
        leadership = elector
    try:
        asyncio.run(operate(config, kube, leadership, health))
    finally:
        stopped.set()
        if elector is not None:
            elector.release()


async def operate(
    config: OperatorConfig, kube: Kube, leadership: Leadership, health: Health
) -> None:
    """kopf feeding the cache and the work queue, the reconcile workers, the resync,
    and the loop heartbeat and watch-echo check on /healthz."""
    heartbeat = LoopHeartbeat()
    echoes = WatchEchoes()
    health.add(heartbeat.problems)
    health.add(echoes.problems)
    cache = ObjectCache()
    queue: WorkQueue[Key] = WorkQueue()
    services = handlers.Services(
        config,
        CachedKube(FencedKube(kube, leadership), cache),
        CrdCache(kube),
        leadership,
        echoes,
        cache,
        queue,
        # Events get their own client and budget: never on the reconcilers' path.
        EventPoster(FencedKube(Kube(kube.api, TokenBucket(EVENT_QPS, EVENT_BURST)), leadership)),
        kube.release_finalizer,
    )
    registry = kopf.OperatorRegistry()
    handlers.register(registry, config)
    namespaces = list(config.watch_namespaces)
    background = [
        asyncio.create_task(heartbeat.run()),
        asyncio.create_task(
            run_workers(queue, config.workers, lambda key: handlers.process(services, key))
        ),
        asyncio.create_task(handlers.resync(services, config.resync_interval)),
    ]
    try:
        await kopf.operator(
            registry=registry,
            memo=kopf.Memo(services=services),
            settings=operator_settings(namespaces),
            standalone=True,
            clusterwide=not namespaces,
            namespaces=namespaces,
        )
    finally:
        for task in background:
            task.cancel()


if __name__ == "__main__":
    main()
