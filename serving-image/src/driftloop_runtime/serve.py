"""``driftloop-runtime serve``: verify, load, pre-fork workers, serve.

Process model: the master verifies the artifact (sha256 of every file against
the manifest and of the model against $DRIFTLOOP_ARTIFACT_SHA256), loads it
with an explicit skops trusted-type list, reserves the port and creates the
shared drift window, then forks DRIFTLOOP_WORKERS uvicorn workers (uvloop +
httptools), each listening on its own SO_REUSEPORT socket on that port.
Nothing listens before the model is loaded, so readiness implies a loaded model.
SIGTERM/SIGINT: the master forwards SIGTERM, each worker stops accepting,
finishes in-flight requests and exits; the master exits 0 when all are gone.
A worker that dies is replaced.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

import driftloop_contract as contract
from driftloop_contract import ServerConfig

log = logging.getLogger("driftloop_runtime.serve")

EXIT_REFUSED = contract.EXIT_ERROR


def _limit_threads() -> None:
    # One BLAS/OpenMP thread per worker: workers are the parallelism, and
    # thread pools must not exist before fork.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")


REUSEPORT = hasattr(socket, "SO_REUSEPORT")


def _bind(host: str, port: int, *, reuseport: bool, listen: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuseport:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    if listen:
        sock.listen(2048)
    return sock


def _worker_socket(master: socket.socket, cfg: ServerConfig) -> socket.socket:
    """The socket a worker accepts on.

    With SO_REUSEPORT every worker listens on its own socket bound to the master's
    port and the kernel spreads new connections evenly over them (a shared socket
    lets whichever worker wakes first take most keep-alive connections, which
    leaves the other cores idle).  Without it, the master's shared socket.
    """
    if not REUSEPORT or cfg.workers == 1:
        return master
    return _bind(cfg.host, master.getsockname()[1], reuseport=True, listen=True)


def _run_worker(app_factory: Any, sock: socket.socket, cfg: ServerConfig) -> None:
    import uvicorn

    app = app_factory()
    config = uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level=os.environ.get(contract.ENV_LOG_LEVEL, "warning").lower(),
        timeout_graceful_shutdown=25,
        timeout_keep_alive=30,
        server_header=False,
        date_header=False,
        h11_max_incomplete_event_size=cfg.max_request_bytes,
    )
    server = uvicorn.Server(config)
    if hasattr(app, "queue_depth"):
        # Every request is one task from the moment its headers are parsed until its
        # response is sent: the worker's queue, waiting or running (backpressure).
        tasks = server.server_state.tasks
        app.queue_depth = tasks.__len__

    def request_exit(*_: Any) -> None:
        server.should_exit = True

    # Until uvicorn installs its own handlers a stop must still stop it (a no-op here
    # lost a SIGTERM that came while the worker started); after its graceful shutdown
    # uvicorn re-raises the signal it caught, which this makes harmless.
    signal.signal(signal.SIGTERM, request_exit)
    signal.signal(signal.SIGINT, request_exit)
    server.run(sockets=[sock])


def main() -> int:
    _limit_threads()
    try:
        cfg = ServerConfig.from_env(os.environ)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in exc.errors()
        )
        log.error("refusing to serve: bad configuration: %s", problems)
        return EXIT_REFUSED
    try:
        os.makedirs(cfg.scratch_dir, exist_ok=True)
        state_dir = tempfile.mkdtemp(prefix="driftloop-serve-", dir=cfg.scratch_dir)
    except OSError as exc:
        log.error("refusing to serve: scratch dir %s not writable: %s", cfg.scratch_dir, exc)
        return EXIT_REFUSED
    prom_dir = os.path.join(state_dir, "prometheus")
    os.makedirs(prom_dir)
    # Must be set before prometheus_client is imported (it picks its value class then).
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = prom_dir
    try:
        return _serve(cfg, state_dir, prom_dir)
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)


def local_artifact_dir(cfg: ServerConfig, state_dir: str) -> str:
    """The directory to load: the artifact's own (a volume), or a download of an s3:// set.

    The download is only a copy: LoadedModel then verifies every sha256 and loads the
    model with the trusted types exactly as from a volume.  A missing manifest (a
    version never committed) or an unreachable store refuses to serve.
    """
    from driftloop_runtime import store
    from driftloop_runtime.data import local_path

    if not store.is_remote(cfg.artifact_uri):
        path = local_path(cfg.artifact_uri)
        if path is None:  # ServerConfig accepts only paths, file:// and s3://
            raise ValueError(f"not a local artifact: {cfg.artifact_uri}")
        return path
    local = store.download_set(cfg.artifact_uri, Path(state_dir) / "artifact")
    log.info("downloaded %s to %s", cfg.artifact_uri, local)
    return str(local)


def _serve(cfg: ServerConfig, state_dir: str, prom_dir: str) -> int:
    from driftloop_runtime.artifacts import ArtifactError
    from driftloop_runtime.model import LoadedModel

    t0 = time.monotonic()
    try:
        model = LoadedModel(cfg, local_artifact_dir(cfg, state_dir))
    except ArtifactError as exc:
        log.error("refusing to serve %s: %s", cfg.artifact_uri, exc)
        return EXIT_REFUSED
    except (OSError, ValueError, KeyError) as exc:
        log.error("refusing to serve %s: cannot load: %s", cfg.artifact_uri, exc)
        return EXIT_REFUSED

    from driftloop_runtime.app import App
    from driftloop_runtime.shared import SharedState

    shared = None
    if cfg.drift_enabled:
        shared = SharedState(
            os.path.join(state_dir, "window.bin"),
            model.n_features + 1,
            cfg.drift_window,
            bins=model.bins.total,
        )
    model.attach(shared)
    try:
        # With several workers the master only reserves the port (bound, not listening);
        # each worker listens on its own SO_REUSEPORT socket (see _worker_socket).
        multi = REUSEPORT and cfg.workers > 1
        sock = _bind(cfg.host, cfg.port, reuseport=multi, listen=not multi)
    except OSError as exc:
        log.error("refusing to serve: cannot listen on %s:%s: %s", cfg.host, cfg.port, exc)
        return EXIT_REFUSED
    log.info(
        "serving model %s version %s (%s, %d features) on %s:%d with %d worker(s), drift %s "
        "(%s, window %d); loaded in %.2fs",
        cfg.model_name,
        cfg.model_version,
        model.task.value,
        model.n_features,
        cfg.host,
        sock.getsockname()[1],
        cfg.workers,
        "on" if shared else "off",
        cfg.drift_method.value,
        cfg.drift_window,
        time.monotonic() - t0,
    )

    from driftloop_runtime.peers import Gossip

    port = sock.getsockname()[1]
    grpc_port: int | None = None
    if cfg.grpc_enabled:
        try:
            # Reserved (bound with SO_REUSEPORT, never listening) so every worker's gRPC
            # server binds the same port, a free one when DRIFTLOOP_GRPC_PORT is 0.
            grpc_sock = _bind(cfg.host, cfg.grpc_port, reuseport=True, listen=False)
        except OSError as exc:
            log.error(
                "refusing to serve: cannot listen on %s:%s (gRPC): %s", cfg.host, cfg.grpc_port, exc
            )
            return EXIT_REFUSED
        grpc_port = grpc_sock.getsockname()[1]
        log.info("gRPC (Open Inference Protocol) on %s:%d", cfg.host, grpc_port)
    own = f"{cfg.pod_ip}:{port}" if cfg.pod_ip else None
    if ":" in (cfg.pod_ip or ""):
        own = f"[{cfg.pod_ip}]:{port}"

    def factory() -> App:
        # Metrics objects are created in the worker (multiprocess files are per pid),
        # and so is each worker's peer table (its gossip runs on the worker's loop).
        app = App(model, gossip=Gossip(own, cfg.peers_seed, contract.PATH_PEERS))
        app.grpc_port = grpc_port
        return app

    if cfg.workers == 1:
        _run_worker(factory, sock, cfg)
        log.info("stopped")
        return contract.EXIT_OK
    return _supervise(factory, sock, cfg, prom_dir)


def _supervise(factory: Any, sock: socket.socket, cfg: ServerConfig, prom_dir: str) -> int:
    from prometheus_client import multiprocess

    children: dict[int, int] = {}  # pid -> slot
    stopping = False

    stop_signals = {signal.SIGTERM, signal.SIGINT}

    def spawn(slot: int) -> None:
        # A child must never run the master's handler: a SIGTERM landing between fork
        # and the worker's own handlers would be swallowed and the worker serve on
        # while the master waits for it.  So the signals stay blocked across fork: the
        # child restores the default action (terminate; nothing to drain yet) before
        # unblocking, the parent unblocks once the child is in ``children``.
        signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
        if stopping:  # a stop came while the first workers started: fork no more
            signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
            return
        pid = os.fork()
        if pid == 0:  # child
            code = 0
            try:
                for signum in (*stop_signals, signal.SIGCHLD):
                    signal.signal(signum, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
                _run_worker(factory, _worker_socket(sock, cfg), cfg)
            except BaseException:
                log.exception("worker crashed")
                code = 1
            finally:
                logging.shutdown()
                os._exit(code)
        children[pid] = slot
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)

    def on_signal(signum: int, _frame: Any) -> None:
        nonlocal stopping
        if not stopping:
            log.info("signal %d: stopping %d worker(s)", signum, len(children))
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for slot in range(cfg.workers):
        spawn(slot)
    recent_crashes: list[float] = []
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:  # pragma: no cover - PEP 475 retries
            continue
        if pid not in children:
            continue
        slot = children.pop(pid)
        with contextlib.suppress(Exception):
            multiprocess.mark_process_dead(pid, prom_dir)  # type: ignore[no-untyped-call]
        if stopping:
            continue
        log.error("worker %d exited unexpectedly (status %d); restarting", pid, status)
        now = time.monotonic()
        recent_crashes = [t for t in recent_crashes if now - t < 60] + [now]
        if len(recent_crashes) > 5 * cfg.workers:
            log.error("workers keep dying; giving up")
            on_signal(signal.SIGTERM, None)
            continue
        time.sleep(0.2)
        spawn(slot)
    sock.close()
    log.info("all workers stopped")
    return contract.EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
