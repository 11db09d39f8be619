"""Shadow traffic: a copy of each live request to a candidate server, off the caller's path.

The serving pod answers its caller first; :meth:`Mirror.offer` only puts the request
and the serving predictions in a bounded queue (no I/O, never waits: a full queue
drops the copy and counts it).  A few sender tasks of the worker's event loop post the
copies to the shadow (``DRIFTLOOP_SHADOW_TARGET``, the candidate's Service; each sender
on a kept-alive connection of its own), compare its ``predict`` output with the
serving one row by row, and count compared and agreeing rows by the shadow's version;
the shadow's answer is then dropped.  The operator reads the agreement from
Prometheus: sum(increase(agreed)) / sum(increase(compared)).

While the shadow is unreachable (no candidate right now: its Service stays, with no
ready pod behind it) the senders back off and copies are counted as failed.  A slow
answer (past ``TIMEOUT_S``) fails that copy only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson

import driftloop_contract as contract
from driftloop_runtime.model import OUTPUT_PREDICT

log = logging.getLogger(__name__)

Post = Callable[[str, str, bytes, dict[str, str], float], Awaitable[tuple[int, bytes]]]

#: Concurrent copies in flight per worker.
SENDERS = 4
#: Seconds one copy may take; a slower shadow is a failed copy.
TIMEOUT_S = 2.0
#: After the shadow could not be reached (not a slow answer), copies are not sent for this long.
BACKOFF_S = 2.0

MIRRORED, DROPPED, FAILED = "mirrored", "dropped", "failed"


def agreeing_rows(serving: Sequence[Any], shadow: Sequence[Any], tolerance: float | None) -> int:
    """Rows whose predictions agree: the same class (``tolerance`` None), or numbers within
    ``tolerance`` relative to the serving one (at least absolute, below 1)."""
    if tolerance is None:
        return sum(1 for a, b in zip(serving, shadow, strict=True) if str(a) == str(b))
    return sum(
        1
        for a, b in zip(serving, shadow, strict=True)
        if abs(float(a) - float(b)) <= tolerance * max(1.0, abs(float(a)))
    )


def shadow_predictions(payload: bytes) -> tuple[str, list[Any]] | None:
    """(model_version, predict output's data) of a shadow's OIP answer, or None."""
    try:
        answer = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(answer, dict):
        return None
    for output in answer.get("outputs") or []:
        if isinstance(output, dict) and output.get("name") == OUTPUT_PREDICT:
            data = output.get("data")
            if isinstance(data, list):
                return str(answer.get("model_version", "")), data
    return None


class StaleConnectionError(OSError):
    """The connection was closed before any byte of the answer came back."""


class KeptAlive:
    """One HTTP/1.1 connection to the shadow, kept open between copies (a sender's own):
    a copy costs a write and a read, not a TCP handshake and teardown on this worker's
    event loop, which the callers' requests share."""

    def __init__(self) -> None:
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(
        self, addr: str, path: str, body: bytes, headers: dict[str, str], timeout: float
    ) -> tuple[int, bytes]:
        try:
            return await asyncio.wait_for(self._post(addr, path, body, headers), timeout)
        except BaseException:
            self.close()  # a half-read answer must not be taken for the next one's
            raise

    async def _post(
        self, addr: str, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        if self._conn is not None:
            try:
                return await self._exchange(addr, path, body, headers)
            except StaleConnectionError:
                # The shadow closed the idle connection (its keep-alive timeout) before
                # this copy reached it: send it once more on a new one, as HTTP clients do.
                self.close()
        return await self._exchange(addr, path, body, headers)

    async def _exchange(
        self, addr: str, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        if self._conn is None:
            host, _, port = addr.rpartition(":")
            self._conn = await asyncio.open_connection(host.strip("[]"), int(port))
        reader, writer = self._conn
        head = [
            f"POST {path} HTTP/1.1",
            f"Host: {addr}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            *(f"{k}: {v}" for k, v in headers.items()),
        ]
        try:
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
            await writer.drain()
            raw = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError) as error:
            # No byte of an answer: the shadow never took this request.
            raise StaleConnectionError(f"shadow {addr} closed the connection") from error
        status_line, _, fields = raw.partition(b"\r\n")
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise OSError(f"bad HTTP response from {addr}")
        length, close = 0, False
        for line in fields.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
            elif name.strip().lower() == b"connection" and value.strip().lower() == b"close":
                close = True
        payload = await reader.readexactly(length)
        if close:
            self.close()
        return int(parts[1]), payload

    def close(self) -> None:
        if self._conn is not None:
            self._conn[1].close()
            self._conn = None


class MirrorCounters:
    """The mirror's counters (prometheus_client; one child per label set)."""

    def __init__(self, base_values: Sequence[str]) -> None:
        from prometheus_client import Counter

        base = ("deployment", "model", "version")
        self.base_values = tuple(base_values)
        requests = Counter(
            contract.METRIC_SHADOW_REQUESTS,
            "Requests mirrored to the shadow, by outcome (mirrored, dropped, failed).",
            [*base, "outcome"],
            registry=None,
        )
        self.outcomes = {o: requests.labels(*base_values, o) for o in (MIRRORED, DROPPED, FAILED)}
        self._compared = Counter(
            contract.METRIC_SHADOW_COMPARED_ROWS,
            "Rows both the serving and the shadow version predicted.",
            [*base, "shadow_version"],
            registry=None,
        )
        self._agreed = Counter(
            contract.METRIC_SHADOW_AGREED_ROWS,
            "Compared rows whose predictions agree.",
            [*base, "shadow_version"],
            registry=None,
        )

    def outcome(self, outcome: str) -> None:
        self.outcomes[outcome].inc()

    def compared(self, shadow_version: str, rows: int, agreed: int) -> None:
        self._compared.labels(*self.base_values, shadow_version).inc(rows)
        self._agreed.labels(*self.base_values, shadow_version).inc(agreed)


class Mirror:
    """A worker's copies of live requests on their way to the shadow."""

    def __init__(
        self,
        target: str,
        model_name: str,
        counters: MirrorCounters,
        *,
        queue_size: int = contract.DEFAULT_SHADOW_QUEUE,
        tolerance: float | None = None,
        encode: Callable[[Any], list[Any]] = list,
        post: Post | None = None,
        senders: int = SENDERS,
        timeout: float = TIMEOUT_S,
        backoff: float = BACKOFF_S,
    ) -> None:
        self.target = target
        self.path = f"/v2/models/{model_name}/infer"
        self.counters = counters
        self.tolerance = tolerance
        #: The serving predictions as the shadow's JSON has them (called by a sender).
        self.encode = encode
        #: None: each sender keeps its own connection (:class:`KeptAlive`).
        self.post: Post | None = post
        self.senders = senders
        self.timeout = timeout
        self.backoff = backoff
        self.queue: asyncio.Queue[tuple[dict[str, Any], Any]] = asyncio.Queue(queue_size)
        self._unreachable_until = 0.0
        self._tasks: list[asyncio.Task[None]] = []

    def offer(self, request: dict[str, Any], predictions: Any) -> bool:
        """Queue a copy of an answered request; on the caller's path, so it never waits."""
        try:
            self.queue.put_nowait((request, predictions))
        except asyncio.QueueFull:
            self.counters.outcome(DROPPED)
            return False
        return True

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._sender()) for _ in range(self.senders)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _sender(self) -> None:
        connection = KeptAlive()
        post = self.post or connection.post
        try:
            while True:
                request, predictions = await self.queue.get()
                try:
                    await self.send(request, predictions, post)
                except Exception:  # a sender must outlive any one copy
                    log.exception("shadow copy to %s failed", self.target)
                    self.counters.outcome(FAILED)
                finally:
                    self.queue.task_done()
        finally:
            connection.close()

    async def send(self, request: dict[str, Any], predictions: Any, post: Post) -> None:
        """Post one copy, compare the answer, count; the answer is then dropped."""
        if time.monotonic() < self._unreachable_until:
            self.counters.outcome(FAILED)
            return
        # Only the predicted classes or values are compared, whatever the caller asked.
        body = orjson.dumps({**request, "outputs": [{"name": OUTPUT_PREDICT}]})
        try:
            status, payload = await post(
                self.target, self.path, body, {contract.HEADER_SHADOW: "1"}, self.timeout
            )
        except TimeoutError:
            # A slow answer fails this copy only: at most `senders` copies wait on the
            # shadow at a time, so a slow one is not pushed harder.
            log.debug("shadow %s did not answer within %ss", self.target, self.timeout)
            self.counters.outcome(FAILED)
            return
        except OSError as error:
            log.debug("shadow %s unreachable: %s", self.target, error)
            self._unreachable_until = time.monotonic() + self.backoff
            self.counters.outcome(FAILED)
            return
        found = shadow_predictions(payload) if status == 200 else None
        serving = self.encode(predictions)
        if found is None or len(found[1]) != len(serving):
            self.counters.outcome(FAILED)
            return
        version, shadow = found
        self.counters.outcome(MIRRORED)
        self.counters.compared(
            version, len(serving), agreeing_rows(serving, shadow, self.tolerance)
        )
