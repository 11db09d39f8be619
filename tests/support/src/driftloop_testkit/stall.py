"""A TCP proxy that can freeze its connections: the stalled-watch fault.

A watch stream stalls when something between the operator and the API server drops a
connection without closing it (a NAT or load balancer forgetting the flow, a peer gone
without a FIN): the socket stays open and nothing more arrives, in either direction.
:meth:`FreezingProxy.freeze` does exactly that to every connection open at the time:
bytes are no longer passed on, sockets stay open; connections made later pass as usual.
TLS passes through untouched (the proxy sees bytes only), so the operator talks to the
real API server with its real credentials through ``127.0.0.1:<port>``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml


class _Pair:
    """A client connection and its upstream twin."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.frozen = threading.Event()

    def close(self) -> None:
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.close()


class FreezingProxy:
    """Forward ``127.0.0.1:<port>`` to ``upstream`` (``host:port``) until frozen."""

    def __init__(self, upstream: str) -> None:
        host, _, port = upstream.rpartition(":")
        self.upstream = (host.strip("[]"), int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._pairs: list[_Pair] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self.frozen_connections = 0

    def __enter__(self) -> FreezingProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed.set()
        self._listener.close()
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            pair.close()

    def freeze(self) -> int:
        """Stall every connection open now; returns how many."""
        with self._lock:
            live = [p for p in self._pairs if not p.frozen.is_set()]
            for pair in live:
                pair.frozen.set()
        self.frozen_connections += len(live)
        return len(live)

    def kubeconfig(self, original: str, path: Path) -> str:
        """A copy of the kubeconfig ``original`` whose clusters are reached through here
        (the API server's certificate names 127.0.0.1)."""
        config: dict[str, Any] = yaml.safe_load(Path(original).read_text())
        for cluster in config.get("clusters") or []:
            cluster["cluster"]["server"] = f"https://127.0.0.1:{self.port}"
        path.write_text(yaml.safe_dump(config))
        return str(path)

    @staticmethod
    def upstream_of(kubeconfig: str) -> str:
        """``host:port`` of the current context's API server."""
        config: dict[str, Any] = yaml.safe_load(Path(kubeconfig).read_text())
        context = next(
            c["context"] for c in config["contexts"] if c["name"] == config["current-context"]
        )
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
        url = urlsplit(cluster["server"])
        return f"{url.hostname}:{url.port or 443}"

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            pair = _Pair(client, upstream)
            with self._lock:
                self._pairs.append(pair)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(pair, source, sink), daemon=True).start()

    def _pump(self, pair: _Pair, source: socket.socket, sink: socket.socket) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            if pair.frozen.is_set():
                # Stalled: nothing more is passed on and nothing is closed; whatever was
                # in flight is lost, as on a dropped flow.  Held until the proxy closes.
                self._closed.wait()
                return
            if not data:
                pair.close()
                return
            try:
                sink.sendall(data)
            except OSError:
                pair.close()
                return
