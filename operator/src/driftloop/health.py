"""The operator's /healthz: a live process is not enough, its watches must be live too.

kopf's watch streams can stall without an error (kopf issues #585, #787, #1276): the
connection stays open, nothing arrives, and the operator silently stops seeing
changes.  Two defences:

* kopf's ``settings.watching.inactivity_timeout`` (its default, 70 s: the API server
  sends a bookmark every minute) reopens a stream that has been silent for that long,
  so an idle stall heals itself (and :data:`driftloop.kube.CALL_TIMEOUT` ends the
  operator's own calls on such a connection);
* :class:`WatchEchoes` notices a stall while the operator works: every status write
  the operator makes must come back to it as a watch event.  A write whose echo has
  not arrived after ``stall_after`` seconds means the stream is dead, and /healthz
  fails so the kubelet restarts the container.

:class:`HealthServer` answers /healthz from a thread of its own, so a wedged event
loop cannot answer for itself; :class:`LoopHeartbeat` catches that case.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

log = logging.getLogger("driftloop.health")

#: A named check: a list of problems (empty when healthy).
Check = Callable[[], list[str]]


class WatchEchoes:
    """Status writes waiting for their watch event, per object."""

    def __init__(self, stall_after: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.stall_after = stall_after
        self._clock = clock
        self._lock = threading.Lock()
        #: (kind, uid) -> (resourceVersion the write was based on, when it was written)
        self._pending: dict[tuple[str, str], tuple[str, float]] = {}

    def wrote(self, kind: str, uid: str, based_on: str) -> None:
        """A status write based on ``based_on`` (the version read) went through."""
        with self._lock:
            self._pending.setdefault((kind, uid), (based_on, self._clock()))

    def seen(self, kind: str, uid: str, resource_version: str, deleted: bool = False) -> None:
        """The watch delivered an event for the object."""
        with self._lock:
            pending = self._pending.get((kind, uid))
            if pending is not None and (deleted or resource_version != pending[0]):
                del self._pending[(kind, uid)]

    def problems(self) -> list[str]:
        now = self._clock()
        with self._lock:
            late: dict[str, float] = {}
            for (kind, _), (_, written) in self._pending.items():
                if now - written > self.stall_after:
                    late[kind] = max(late.get(kind, 0.0), now - written)
        return [
            f"the {kind} watch is stalled: a status write {age:.0f}s ago never came back"
            for kind, age in sorted(late.items())
        ]


class LoopHeartbeat:
    """Proof that the asyncio loop (kopf's) still runs tasks."""

    def __init__(
        self,
        period: float = 1.0,
        stale_after: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.period = period
        self.stale_after = stale_after
        self._clock = clock
        self._beat: float | None = None

    async def run(self) -> None:
        while True:
            self._beat = self._clock()
            await asyncio.sleep(self.period)

    def problems(self) -> list[str]:
        if self._beat is None:
            return []  # not started yet: the startup probe covers that
        silent = self._clock() - self._beat
        if silent > self.stale_after:
            return [f"the event loop has not run for {silent:.0f}s"]
        return []


class Health:
    """The checks /healthz runs."""

    def __init__(self, checks: Iterable[Check] = ()) -> None:
        self._checks = list(checks)

    def add(self, check: Check) -> None:
        self._checks.append(check)

    def problems(self) -> list[str]:
        found: list[str] = []
        for check in self._checks:
            try:
                found.extend(check())
            except Exception as error:  # a check that breaks is a problem, not a crash
                found.append(f"health check failed: {error}")
        return found


class HealthServer:
    """/healthz on ``endpoint`` (``http://host:port/path``), served by a daemon thread."""

    def __init__(self, endpoint: str, health: Health) -> None:
        parts = urlsplit(endpoint)
        self.path = parts.path or "/healthz"
        health_ = health
        path = self.path

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != path:
                    self.send_error(404)
                    return
                problems = health_.problems()
                body = ("\n".join(problems) if problems else "ok").encode() + b"\n"
                if problems:
                    log.warning("unhealthy: %s", "; ".join(problems))
                self.send_response(500 if problems else 200)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # one line per probe is noise

        self._server = ThreadingHTTPServer(
            (parts.hostname or "0.0.0.0", parts.port or 8080), Handler
        )
        self.port = int(self._server.server_address[1])

    def start(self) -> None:
        threading.Thread(target=self._server.serve_forever, name="healthz", daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
