"""Overload: driftloop's server with backpressure vs the same server without, at 2x saturation.

    python bench/backpressure.py [--rows 256] [--max-queue 16] [--seconds 10]

One worker each, the breast-cancer LogisticRegression of bench/serving.py, requests of
``--rows`` rows (heavy enough that a Python open-loop generator can offer twice what the
server can take on this machine).  Steps, for the bounded server (DRIFTLOOP_MAX_QUEUE)
and then the unbounded one (DRIFTLOOP_MAX_QUEUE=0), the same way:

1. unloaded latency: one request at a time (p50/p99);
2. the saturation rate: a closed loop of 8 connections for ``--seconds`` (req/s);
3. an open loop at 2x that rate for ``--seconds``: every request is sent at its scheduled
   time on its own connection, whatever the earlier ones did, and its latency is counted
   from that time (no coordinated omission).  Every request must get an answer within 60 s
   (a missing answer is reported as hung).

Prints admitted (200) p50/p99/max, the share shed (503 + Retry-After) and the ratio of
the admitted p99 to the unloaded p99, for both servers side by side.  No assertion: a
measurement (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import serving as sb  # bench/serving.py: the model and the server helpers

from driftloop_contract import ENV_LOG_LEVEL, ENV_MAX_QUEUE, ServerConfig


def start(work: Path, model: Path, sha: str, max_queue: int, tag: str) -> sb.Running:
    port = sb.free_port()
    scratch = work / f"scratch-{tag}"
    scratch.mkdir(exist_ok=True)
    config = ServerConfig(
        model_name=sb.MODEL,
        model_version="v1",
        artifact_uri="file://" + str(model),
        artifact_sha256=sha,
        deployment="bench",
        workers=1,
        port=port,
        host="127.0.0.1",
        scratch_dir=str(scratch),
    )
    env = {
        **os.environ,
        **config.to_env(),
        ENV_LOG_LEVEL: "WARNING",
        ENV_MAX_QUEUE: str(max_queue),
    }
    logf = work / f"{tag}.log"
    with open(logf, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "driftloop_runtime", "serve"],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    run = sb.Running(tag, proc, f"http://127.0.0.1:{port}", logf)
    sb.wait_ready(run, "/v2/health/ready")
    return run


class Pool:
    """Kept-alive connections, as a real client (or a proxy) keeps them: a request takes
    an idle one, or opens a new one when none is idle (an open loop never waits for one)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.opened = 0

    async def request(self, request: bytes, timeout: float = 60) -> int:
        """One request; its HTTP status (0 = no answer in time)."""
        if self.idle:
            conn = self.idle.pop()
        else:
            conn = await asyncio.open_connection("127.0.0.1", self.port)
            self.opened += 1
        reader, writer = conn

        async def go() -> int:
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            fields = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:] if b":" in line)
            await reader.readexactly(int(fields.get(b"content-length", b"0")))
            return int(head.split(b" ", 2)[1])

        try:
            status = await asyncio.wait_for(go(), timeout)
        except (TimeoutError, OSError, asyncio.IncompleteReadError):
            writer.close()
            return 0
        self.idle.append(conn)
        return status

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


def payload(work: Path, rows: int) -> bytes:
    """An OIP request of ``rows`` rows of the training data (repeated past its 569)."""
    import json

    import numpy as np
    import pandas as pd

    x = pd.read_csv(work / "data.csv").drop(columns=["target"]).to_numpy()
    x = np.resize(x, (rows, x.shape[1]))
    tensor = {
        "name": "input-0",
        "shape": [rows, x.shape[1]],
        "datatype": "FP64",
        "data": np.round(x, 6).ravel().tolist(),
    }
    return json.dumps({"inputs": [tensor]}, separators=(",", ":")).encode()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


@dataclass
class Overload:
    offered: float
    sent: int
    ok: list[float]
    shed: int
    hung: int
    other: int
    send_lag: list[float]  # generator behind its schedule (must stay small to be valid)


async def unloaded(port: int, request: bytes, n: int) -> list[float]:
    pool = Pool(port)
    out = []
    for _ in range(n):
        t = time.perf_counter()
        assert await pool.request(request) == 200
        out.append(time.perf_counter() - t)
    pool.close()
    return out


async def closed_loop(port: int, request: bytes, seconds: float, conns: int = 8) -> float:
    done = 0
    stop = time.perf_counter() + seconds

    pool = Pool(port)

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            if await pool.request(request) == 200:
                done += 1

    t = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(conns)))
    pool.close()
    return done / (time.perf_counter() - t)


async def open_loop(port: int, request: bytes, rate: float, seconds: float) -> Overload:
    n = int(rate * seconds)
    results: list[tuple[int, float]] = []
    lags: list[float] = []
    pool = Pool(port)
    t0 = time.perf_counter()

    async def timed(at: float) -> None:
        lags.append(time.perf_counter() - at)
        status = await pool.request(request)
        results.append((status, time.perf_counter() - at))

    tasks = []
    for i in range(n):
        at = t0 + i / rate
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(timed(at)))
    await asyncio.gather(*tasks)
    pool.close()
    ok = [lat for status, lat in results if status == 200]
    shed = sum(1 for status, _ in results if status == 503)
    hung = sum(1 for status, _ in results if status == 0)
    other = len(results) - len(ok) - shed - hung
    return Overload(rate, n, ok, shed, hung, other, lags)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=512)
    ap.add_argument("--max-queue", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--unloaded", type=int, default=300, help="unloaded requests")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="driftloop-bp-") as tmp:
        work = Path(tmp)
        sb.REPO_WORK = work
        model, sha = sb.train_model(work)
        body = payload(work, args.rows)
        request = (
            "POST /v2/models/bench/infer HTTP/1.1\r\nHost: bench\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        rows = []
        for tag, max_queue in (("bounded", args.max_queue), ("unbounded", 0)):
            run = start(work, model, sha, max_queue, tag)
            port = int(run.url.rsplit(":", 1)[1])
            try:
                base = asyncio.run(unloaded(port, request, args.unloaded))
                sat = asyncio.run(closed_loop(port, request, args.seconds))
                over = asyncio.run(open_loop(port, request, 2 * sat, args.seconds))
            finally:
                run.stop()
            rows.append((tag, max_queue, base, sat, over))
            sb.log(
                f"{tag}: unloaded p99 {1e3 * pct(base, 0.99):.1f} ms, saturation {sat:.0f} req/s"
            )
    print(
        f"\nOverload at 2x the saturation rate, 1 worker, {args.rows} rows/request, "
        f"{args.seconds:.0f} s open loop; load average {os.getloadavg()[0]:.1f}\n"
    )
    print(
        "| server | max queue | unloaded p99 ms | saturation req/s | offered req/s | "
        "admitted | shed (503) | hung | admitted p50 ms | admitted p99 ms | max ms | "
        "p99 / unloaded p99 | generator lag p99 ms |"
    )
    print("| --- |" + " ---: |" * 12)
    for tag, max_queue, base, sat, over in rows:
        b99 = pct(base, 0.99)
        a99 = pct(over.ok, 0.99)
        print(
            f"| driftloop {tag} | {max_queue or 'none'} | {1e3 * b99:.1f} | {sat:.0f} | "
            f"{over.offered:.0f} | {len(over.ok)} | {over.shed} | {over.hung} | "
            f"{1e3 * pct(over.ok, 0.5):.1f} | {1e3 * a99:.1f} | "
            f"{1e3 * max(over.ok, default=float('nan')):.1f} | {a99 / b99:.1f}x | "
            f"{1e3 * pct(over.send_lag, 0.99):.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
