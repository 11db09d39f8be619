"""Shadow traffic's cost to the caller: a server mirroring to a shadow vs the same without.

    python bench/shadow.py [--rows 16] [--seconds 8] [--requests 400]

One worker each, the breast-cancer LogisticRegression of bench/serving.py.  The shadow
is a third server (the same model as version 2).  For the mirroring server and then
its peer without a shadow, the same way:

1. unloaded latency: one request at a time (p50/p99), kept-alive connection;
2. throughput: a closed loop of 8 connections for ``--seconds`` (req/s).

Prints both side by side with the ratios (mirroring / plain), and the mirroring
server's own counters (copies mirrored, dropped, failed; rows compared and agreeing).
No assertion: a measurement (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import backpressure as bp  # the server start-up and the load loops
import requests
import serving as sb

from driftloop_contract import (
    ENV_LOG_LEVEL,
    ENV_SHADOW_TARGET,
    METRIC_SHADOW_AGREED_ROWS,
    METRIC_SHADOW_COMPARED_ROWS,
    METRIC_SHADOW_REQUESTS,
    ServerConfig,
)


def start(work: Path, model: Path, sha: str, tag: str, version: str, **env: str) -> sb.Running:
    port = sb.free_port()
    scratch = work / f"scratch-{tag}"
    scratch.mkdir(exist_ok=True)
    config = ServerConfig(
        model_name=sb.MODEL,
        model_version=version,
        artifact_uri="file://" + str(model),
        artifact_sha256=sha,
        deployment="bench",
        workers=1,
        port=port,
        host="127.0.0.1",
        scratch_dir=str(scratch),
    )
    full = {**os.environ, **config.to_env(), ENV_LOG_LEVEL: "WARNING", **env}
    logf = work / f"{tag}.log"
    with open(logf, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "driftloop_runtime", "serve"],
            env=full,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    run = sb.Running(tag, proc, f"http://127.0.0.1:{port}", logf)
    sb.wait_ready(run, "/v2/health/ready")
    return run


def counters(url: str) -> dict[str, float]:
    text = requests.get(url + "/metrics", timeout=10).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        for name in (
            METRIC_SHADOW_REQUESTS,
            METRIC_SHADOW_COMPARED_ROWS,
            METRIC_SHADOW_AGREED_ROWS,
        ):
            if line.startswith(name + "{"):
                key = name
                if 'outcome="' in line:
                    key += ":" + line.split('outcome="')[1].split('"')[0]
                out[key] = out.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


class Sink:
    """A shadow that costs nothing: answers each copy at once with a ``predict`` output of
    the right length (parsing the request's shape only), in a thread of its own.  With it
    the serving server's own cost of mirroring is measured apart from a real shadow's
    prediction competing for this machine's cores."""

    def __init__(self) -> None:
        import socket
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._serve(), self.loop)

    async def _serve(self) -> None:
        server = await asyncio.start_server(self._answer, sock=self.sock)
        async with server:
            await server.serve_forever()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        import json

        while True:  # kept alive, as uvicorn keeps the real shadow's connections
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                writer.close()
                return
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = json.loads(await reader.readexactly(length))
            rows = body["inputs"][0]["shape"][0]
            answer = json.dumps(
                {"model_version": "sink", "outputs": [{"name": "predict", "data": [0] * rows}]}
            ).encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(answer)}\r\n\r\n".encode()
                + answer
            )
            await writer.drain()


def measure(run: sb.Running, request: bytes, n: int, seconds: float) -> tuple[float, float, float]:
    port = int(run.url.rsplit(":", 1)[1])
    lat = asyncio.run(bp.unloaded(port, request, n))
    rate = asyncio.run(bp.closed_loop(port, request, seconds))
    return bp.pct(lat, 0.5) * 1e3, bp.pct(lat, 0.99) * 1e3, rate


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model, sha = sb.train_model(work)
        request_body = bp.payload(work, args.rows)
        request = (
            f"POST /v2/models/{sb.MODEL}/infer HTTP/1.1\r\nHost: bench\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(request_body)}\r\n\r\n"
        ).encode() + request_body
        shadow = start(work, model, sha, "shadow", "2")
        results = {}
        try:
            target = shadow.url.removeprefix("http://")
            mirroring = start(work, model, sha, "mirroring", "1", **{ENV_SHADOW_TARGET: target})
            try:
                results["mirroring to a shadow"] = measure(
                    mirroring, request, args.requests, args.seconds
                )
                seen = counters(mirroring.url)
            finally:
                mirroring.stop()
            sink = Sink()
            to_sink = start(work, model, sha, "sink", "1", **{ENV_SHADOW_TARGET: sink.address})
            try:
                results["mirroring to a no-op sink"] = measure(
                    to_sink, request, args.requests, args.seconds
                )
                seen_sink = counters(to_sink.url)
            finally:
                to_sink.stop()
            plain = start(work, model, sha, "plain", "1")
            try:
                results["no shadow (peer)"] = measure(plain, request, args.requests, args.seconds)
            finally:
                plain.stop()
        finally:
            shadow.stop()
    base = results["no shadow (peer)"]
    print("| server | unloaded p50 ms | unloaded p99 ms | closed-loop req/s |")
    print("| --- | ---: | ---: | ---: |")
    for name, (p50, p99, rate) in results.items():
        print(f"| {name} | {p50:.2f} | {p99:.2f} | {rate:.0f} |")
    print()
    for name in ("mirroring to a shadow", "mirroring to a no-op sink"):
        mine = results[name]
        print(
            f"{name} / peer: p50 {mine[0] / base[0]:.2f}x, p99 {mine[1] / base[1]:.2f}x, "
            f"throughput {mine[2] / base[2]:.2f}x"
        )
    print("counters, mirroring to the shadow:", seen)
    print("counters, mirroring to the sink:", seen_sink)
    return 0


if __name__ == "__main__":
    sys.exit(main())
