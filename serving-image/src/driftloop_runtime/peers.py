"""The other pods of the Deployment, found by gossip through the Service.

Ground-truth feedback may reach any replica, but only the pod that made a prediction
remembers it.  So every server learns its peers' addresses and forwards a feedback call
it cannot answer to them (once: a forwarded call is never forwarded again).

Discovery needs no Kubernetes API and no DNS: the operator gives each pod the address of
its own Service (``DRIFTLOOP_PEERS_SEED``, the ClusterIP) and the pod's IP (the downward
API).  Every ``interval`` each worker POSTs what it knows (address -> seconds since that
peer was last heard from itself) to the seed; kube-proxy delivers it to some pod, which
merges it and answers with its own table.  Tables converge in a few rounds; a peer not
heard of for ``ttl`` is dropped (a deleted pod).  Any process with the seed address can
take part, e.g. tests point all servers at one of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import orjson

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 2.0
DEFAULT_TTL_S = 30.0


class PeerTable:
    """address -> monotonic time it was last heard of (pure; tested directly)."""

    def __init__(self, own: str | None, ttl: float = DEFAULT_TTL_S) -> None:
        self.own = own
        self.ttl = ttl
        self._seen: dict[str, float] = {}

    def merge(self, ages: Any, now: float | None = None) -> None:
        """Take in a peer's table (address -> age in seconds); ignores malformed entries."""
        if not isinstance(ages, dict):
            return
        now = time.monotonic() if now is None else now
        for addr, age in ages.items():
            if (
                not isinstance(addr, str)
                or addr == self.own
                or not isinstance(age, int | float)
                or not 0 <= age < self.ttl
                or not valid_address(addr)
            ):
                continue
            heard = now - float(age)
            if heard > self._seen.get(addr, float("-inf")):
                self._seen[addr] = heard

    def ages(self, now: float | None = None) -> dict[str, float]:
        """This table as sent to others: itself at age 0, live peers with their ages."""
        now = time.monotonic() if now is None else now
        self._seen = {a: t for a, t in self._seen.items() if now - t < self.ttl}
        out = {a: round(now - t, 3) for a, t in self._seen.items()}
        if self.own:
            out[self.own] = 0.0
        return out

    def peers(self, now: float | None = None) -> list[str]:
        """Live peers, not counting this pod."""
        return [a for a in self.ages(now) if a != self.own]


def valid_address(addr: str) -> bool:
    host, sep, port = addr.rpartition(":")
    return bool(sep and host and port.isdigit() and 0 < int(port) < 65536 and len(addr) < 100)


async def http_post(
    addr: str, path: str, body: bytes, headers: dict[str, str], timeout: float
) -> tuple[int, bytes]:
    """One HTTP/1.1 POST on a new connection; (status, body).  Raises OSError/TimeoutError."""
    host, _, port = addr.rpartition(":")
    host = host.strip("[]")

    async def go() -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            head = [
                f"POST {path} HTTP/1.1",
                f"Host: {addr}",
                "Content-Type: application/json",
                f"Content-Length: {len(body)}",
                "Connection: close",
                *(f"{k}: {v}" for k, v in headers.items()),
            ]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
            await writer.drain()
            raw = await reader.read(-1)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        status_line, _, rest = raw.partition(b"\r\n")
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise OSError(f"bad HTTP response from {addr}")
        _, _, payload = rest.partition(b"\r\n\r\n")
        return int(parts[1]), payload

    return await asyncio.wait_for(go(), timeout)


class Gossip:
    """A worker's peer table, refreshed through the seed every ``interval``."""

    def __init__(
        self,
        own: str | None,
        seed: str | None,
        path: str,
        interval: float = DEFAULT_INTERVAL_S,
        ttl: float = DEFAULT_TTL_S,
    ) -> None:
        self.table = PeerTable(own, ttl)
        self.seed = seed
        self.path = path
        self.interval = interval

    def receive(self, body: bytes) -> bytes:
        """Answer a peer's announcement with this table (after merging theirs)."""
        with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
            self.table.merge(orjson.loads(body).get("peers"))
        return orjson.dumps({"peers": self.table.ages()})

    async def round(self) -> None:
        if not self.seed:
            return
        body = orjson.dumps({"peers": self.table.ages()})
        try:
            status, payload = await http_post(self.seed, self.path, body, {}, timeout=1.0)
        except (OSError, TimeoutError) as exc:
            log.debug("gossip via %s failed: %s", self.seed, exc)
            return
        if status == 200:
            with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
                self.table.merge(orjson.loads(payload).get("peers"))

    async def run(self) -> None:
        while True:
            await self.round()
            await asyncio.sleep(self.interval)
