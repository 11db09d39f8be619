#!/usr/bin/env python3
"""Serving benchmark: driftloop's model server vs MLServer 1.7.1 and KServe on the same model.

    python bench/serving.py [--duration 10] [--workers 2] [--rounds 2] [--write-docs]

What it does, all on this machine over loopback:
  1. creates (once, cached) a separate venv for the peer in ~/.cache/driftloop/mlserver-venv
     with mlserver==1.7.1, mlserver-sklearn==1.7.1, uvloop<0.22 and the same scikit-learn;
  2. trains one model with `driftloop-runtime train` (LogisticRegression on scikit-learn's
     bundled breast-cancer data: 30 numeric features, 569 rows);
  3. gives MLServer a joblib copy of that exact fitted model (the peer only: driftloop
     itself never uses pickle/joblib);
  4. runs, alternately and one server at a time: driftloop (drift ON), MLServer, KServe,
     driftloop (drift OFF), each with the same number of worker processes
     (DRIFTLOOP_WORKERS == MLServer parallel_workers), under `wrk` with a Lua POST script,
     the same threads/connections, and the same OIP v2 JSON payloads of 1 and 32 rows
     (64 different ones in turn, rows of the dataset);
  5. prints req/s, p50, p99, the throughput ratio and the drift on/off cost (medians over
     rounds), and the drift on/off cost again from paired runs that load two servers at
     once: drift on (its default row budget) vs off, and every row counted vs off; then
     drift tracking's share of each drift server's busy CPU, from py-spy sampling its
     workers' stacks under the same load.
     --write-docs adds the run to the end of docs/benchmarks.md's "## Serving" section.
KServe (kserve==0.21.0, its own venv) runs beside them unless --no-kserve; --grpc adds
ModelInfer under h2load for every server and, after the rounds, an empty ServerLive
call (the gRPC stack's own cost).  The ceiling is the in-process predict of one row on one
core: scikit-learn's ``model.predict`` and the server's own (compiled) predict.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from driftloop_contract import DEFAULT_DRIFT_MAX_ROWS_PER_SECOND, ENV_LOG_LEVEL, ServerConfig

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("DRIFTLOOP_CACHE", Path.home() / ".cache" / "driftloop"))
PEER_VENV = CACHE / "mlserver-venv"
PEER_PINS = ["mlserver==1.7.1", "mlserver-sklearn==1.7.1", "uvloop<0.22"]
#: KServe's Python model server, in a venv of its own (its own FastAPI/uvicorn pins).
KSERVE_VENV = CACHE / "kserve-venv"
KSERVE_PINS = ["kserve==0.21.0", "joblib"]
#: The peer as KServe's sklearn runtime (kserve/python/sklearnserver) serves a model:
#: joblib.load, then get_predict_input -> predict -> get_predict_response.  Latency
#: logging off (a log line per request would handicap it).
KSERVE_SERVER = """
import sys
import joblib
from kserve import Model, ModelServer
from kserve.utils.utils import get_predict_input, get_predict_response


class SKLearnModel(Model):
    def __init__(self, name, path):
        super().__init__(name)
        self.path = path
        self.load()

    def load(self):
        self._model = joblib.load(self.path)
        self.ready = True
        return self.ready

    def predict(self, payload, headers=None):
        instances = get_predict_input(payload)
        return get_predict_response(payload, self._model.predict(instances), self.name)


if __name__ == "__main__":
    name, path, http, grpc, workers = sys.argv[1:6]
    ModelServer(
        http_port=int(http), grpc_port=int(grpc), workers=int(workers),
        enable_latency_logging=False,
    ).start([SKLearnModel(name, path)])
"""
MODEL = "bench"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- setup


def ensure_peer_venv(venv: Path = PEER_VENV, peer_pins: list[str] = PEER_PINS) -> Path:
    import sklearn

    pins = [*peer_pins, f"scikit-learn=={sklearn.__version__}"]
    marker = venv / ".driftloop-pins"
    if marker.exists() and marker.read_text() == "\n".join(pins):
        return venv / "bin"
    log(f"creating {venv} with {' '.join(pins)} (once)")
    tmp = venv.with_name(venv.name + ".partial")
    shutil.rmtree(venv, ignore_errors=True)
    shutil.rmtree(tmp, ignore_errors=True)
    # Build in place under the final name (venv scripts embed their path); the marker
    # file, written last, says the venv is complete.
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", *pins],
        check=True,
    )
    marker.write_text("\n".join(pins))
    return venv / "bin"


def train_model(work: Path) -> tuple[Path, str]:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [re.sub(r"[^A-Za-z0-9_]", "_", c) for c in frame.columns]
    features = [c for c in frame.columns if c != "target"]
    frame.to_csv(work / "data.csv", index=False)
    out = work / "models" / MODEL / "v1"
    request = {
        "modelName": MODEL,
        "estimator": "LogisticRegression",
        "hyperparameters": {"max_iter": 5000},
        "dataset": {
            "source": str(work / "data.csv"),
            "features": [{"name": f} for f in features],
            "target": "target",
        },
        "outputDir": str(out),
    }
    env = dict(
        os.environ,
        DRIFTLOOP_REQUEST=json.dumps(request),
        DRIFTLOOP_TERMINATION_LOG=str(work / "termination-log"),
    )
    proc = subprocess.run(
        [sys.executable, "-m", "driftloop_runtime", "train"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"training failed:\n{proc.stderr}")
    result = json.loads((work / "termination-log").read_text())
    log(f"trained {MODEL}: {len(features)} features, metrics {result['metrics']}")
    return out, str(result["sha256"])


def peer_model_dir(work: Path, model_dir: Path) -> Path:
    """A joblib copy of the fitted pipeline for MLServer (peer only)."""
    import joblib  # type: ignore[import-untyped]

    from driftloop_runtime import artifacts

    model = artifacts.load_model(model_dir / "model.skops")
    d = work / "mlserver" / MODEL
    d.mkdir(parents=True)
    joblib.dump(model, d / "model.joblib")
    (d / "model-settings.json").write_text(
        json.dumps(
            {
                "name": MODEL,
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib", "version": "v1"},
            }
        )
    )
    return d.parent


#: Different payloads the REST load cycles through: live traffic is not one row
#: repeated, and a server's per-row work (drift binning above all) costs more on rows a
#: CPU cannot learn to predict.
PAYLOADS = 64


def payloads(n_rows: int, n_features: int, count: int = PAYLOADS) -> list[str]:
    """``count`` OIP v2 JSON bodies of ``n_rows`` consecutive dataset rows each, from
    different starts; the first holds the dataset's first rows."""
    import numpy as np
    import pandas as pd

    x = pd.read_csv(REPO_WORK / "data.csv").drop(columns=["target"]).to_numpy()
    assert x.shape[1] == n_features
    span = len(x) - n_rows + 1
    bodies = []
    for k in range(count):
        start = (k * n_rows) % span
        body = {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [n_rows, n_features],
                    "datatype": "FP64",
                    "data": np.round(x[start : start + n_rows], 6).ravel().tolist(),
                }
            ]
        }
        bodies.append(json.dumps(body, separators=(",", ":")))
    return bodies


REPO_WORK = Path()


# --------------------------------------------------------------------------- servers


@dataclass
class Running:
    name: str
    proc: subprocess.Popen[bytes]
    url: str
    log: Path
    grpc: str | None = None  # host:port of its OIP gRPC service

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def wait_ready(run: Running, path: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run.proc.poll() is not None:
            raise SystemExit(f"{run.name} exited:\n{run.log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(run.url + path, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    run.stop()
    raise SystemExit(f"{run.name} not ready:\n{run.log.read_text()[-3000:]}")


#: A drift row budget no load here reaches: every request counted (the "exact" server).
EVERY_ROW = 10**9
EXACT = "driftloop drift exact"


def start_driftloop(
    work: Path,
    model_dir: Path,
    sha: str,
    workers: int,
    drift: bool,
    tag: str,
    max_rows_per_second: int = DEFAULT_DRIFT_MAX_ROWS_PER_SECOND,
) -> Running:
    port, grpc_port = free_ports(2)
    scratch = work / f"scratch-{tag}"
    scratch.mkdir(exist_ok=True)
    config = ServerConfig(
        model_name=MODEL,
        model_version="v1",
        artifact_uri="file://" + str(model_dir),
        artifact_sha256=sha,
        deployment="bench",
        workers=workers,
        port=port,
        grpc_port=grpc_port,
        host="127.0.0.1",
        scratch_dir=str(scratch),
        drift_enabled=drift,
        drift_max_rows_per_second=max_rows_per_second,
    )
    env = {**os.environ, **config.to_env(), ENV_LOG_LEVEL: "WARNING"}
    logf = work / f"driftloop-{tag}.log"
    with open(logf, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "driftloop_runtime", "serve"],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    run = Running(
        f"driftloop ({tag})", proc, f"http://127.0.0.1:{port}", logf, f"127.0.0.1:{grpc_port}"
    )
    wait_ready(run, "/v2/health/ready")
    return run


def free_ports(n: int) -> list[int]:
    """``n`` distinct free ports (all held open while picked: closing one before picking
    the next can hand the same port out twice)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def start_mlserver(
    work: Path, models: Path, bin_dir: Path, workers: int, attempts: int = 3
) -> Running:
    """MLServer on fresh ports; started again on new ones when a port was taken between
    picking and binding (its metrics server once failed so: "address already in use")."""
    for attempt in range(1, attempts + 1):
        port, grpc, metrics = free_ports(3)
        (models / "settings.json").write_text(
            json.dumps(
                {
                    "debug": False,
                    "parallel_workers": workers,
                    "http_port": port,
                    "grpc_port": grpc,
                    "metrics_port": metrics,
                    "host": "127.0.0.1",
                }
            )
        )
        logf = work / "mlserver.log"
        with open(logf, "wb") as fh:
            proc = subprocess.Popen(
                [str(bin_dir / "mlserver"), "start", str(models)],
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=dict(os.environ, PATH=f"{bin_dir}:{os.environ.get('PATH', '')}"),
            )
        run = Running("mlserver", proc, f"http://127.0.0.1:{port}", logf, f"127.0.0.1:{grpc}")
        try:
            wait_ready(run, f"/v2/models/{MODEL}/ready")
            return run
        except SystemExit:
            run.stop()
            text = logf.read_text(errors="replace").lower()
            if attempt == attempts or "in use" not in text:
                raise
            log(f"mlserver: a port was taken (attempt {attempt}); starting on new ports")
    raise AssertionError("unreachable")


def start_kserve(work: Path, joblib_path: Path, bin_dir: Path, workers: int) -> Running:
    port, grpc = free_ports(2)
    script = work / "kserve_sklearn.py"
    script.write_text(KSERVE_SERVER)
    logf = work / "kserve.log"
    with open(logf, "wb") as fh:
        proc = subprocess.Popen(
            [
                str(bin_dir / "python"),
                str(script),
                MODEL,
                str(joblib_path),
                str(port),
                str(grpc),
                str(workers),
            ],
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    run = Running("kserve", proc, f"http://127.0.0.1:{port}", logf, f"127.0.0.1:{grpc}")
    wait_ready(run, f"/v2/models/{MODEL}/ready")
    return run


# --------------------------------------------------------------------------- load


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int = 0
    #: CPU time the server's processes spent per answered request during the run (µs)
    cpu_us: float = float("nan")


@dataclass
class Series:
    results: list[Result] = field(default_factory=list)

    def median(self) -> Result:
        r = self.results
        return Result(
            statistics.median(x.rps for x in r),
            statistics.median(x.p50_ms for x in r),
            statistics.median(x.p99_ms for x in r),
            sum(x.errors for x in r),
            sum(x.requests for x in r),
            statistics.median(x.cpu_us for x in r),
        )


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def session_cpu_seconds(session: int) -> float:
    """User + system CPU time of every live process in ``session`` (a server started
    with start_new_session: its master and workers), from /proc."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # the fields after the command name, which may itself hold spaces or ")"
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[3]) == session:  # field 6, session id
            total += int(fields[11]) + int(fields[12])  # fields 14-15, utime + stime
    return total / CLOCK_TICKS


def measured(run: Running, load: Callable[[], Result]) -> Result:
    """``load``'s result with the server's CPU time per answered request: the cost of a
    request to throughput when the server is CPU-bound, which background load on the
    machine moves far less than req/s."""
    before = session_cpu_seconds(run.proc.pid)
    result = load()
    used = session_cpu_seconds(run.proc.pid) - before
    answered = result.requests - result.errors
    if answered > 0:
        result.cpu_us = used / answered * 1e6
    return result


def lua_script(work: Path, bodies: list[str], rows: int) -> Path:
    """A wrk script POSTing ``bodies`` in turn, one per request, on each connection."""
    path = work / f"post-{rows}.lua"
    items = ",\n".join(f"  [==[{b}]==]" for b in bodies)
    path.write_text(
        f"local bodies = {{\n{items}\n}}\n"
        'local headers = { ["Content-Type"] = "application/json" }\n'
        "local i = 0\n"
        "request = function()\n"
        "  i = i % #bodies + 1\n"
        '  return wrk.format("POST", nil, headers, bodies[i])\n'
        "end\n"
    )
    return path


def to_ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not m:
        raise ValueError(text)
    v = float(m.group(1))
    return {"us": v / 1000, "ms": v, "s": v * 1000}[m.group(2)]


def wrk(url: str, script: Path, args: argparse.Namespace, duration: float) -> Result:
    cmd = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{duration:.0f}s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=duration + 60)
    text = out.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", text).group(1))  # type: ignore[union-attr]
    p50 = to_ms(re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1))  # type: ignore[union-attr]
    p99 = to_ms(re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1))  # type: ignore[union-attr]
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        errors += sum(int(g) for g in m.groups())
    return Result(rps, p50, p99, errors, total)


def grpc_request(body: str) -> bytes:
    """The REST request as a gRPC ModelInferRequest message, framed as on the wire (a
    byte for compression, 0, and the message length, big-endian)."""
    from driftloop_runtime.oip import open_inference_pb2 as pb

    rest = json.loads(body)
    request = pb.ModelInferRequest(model_name=MODEL)
    for t in rest["inputs"]:
        tensor = request.inputs.add(name=t["name"], datatype=t["datatype"], shape=t["shape"])
        tensor.contents.fp64_contents.extend(t["data"])
    return grpc_frame(request.SerializeToString())


def grpc_frame(message: bytes) -> bytes:
    return b"\0" + len(message).to_bytes(4, "big") + message


def h2load(
    address: str,
    data_file: Path,
    args: argparse.Namespace,
    duration: float,
    call: str = "ModelInfer",
) -> Result:
    """gRPC load from h2load (nghttp2's HTTP/2 load generator, in C): one framed
    message POSTed as a unary call on each of wrk's -c connections, one call in flight
    each.  Not ghz: on these 2 cores ghz (Go, one CPU) tops out near 3,900 empty calls/s
    against a Go server that does nothing, and the CPU it burns is taken from the server
    under test; h2load drives ~12,500/s there.  h2load reads HTTP statuses, not the
    grpc-status trailer: every server was checked to answer these exact bytes with OK
    before the runs (check_grpc)."""
    log_file = data_file.with_suffix(".log")
    proc = subprocess.run(
        [
            "h2load",
            f"--duration={duration:g}",
            f"--clients={args.connections}",
            "--max-concurrent-streams=1",
            f"--threads={args.threads}",
            f"--data={data_file}",
            "--header=content-type: application/grpc",
            "--header=te: trailers",
            f"--log-file={log_file}",
            f"http://{address}/inference.GRPCInferenceService/{call}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    m = re.search(r"finished in [^,]+, ([\d.]+) req/s", proc.stdout)
    if m is None:
        raise SystemExit(f"h2load failed: {proc.stdout[-1000:]} {proc.stderr[-1000:]}")
    # One line per response: start (µs since the epoch), HTTP status, duration (µs).
    lines = [ln.split("\t") for ln in log_file.read_text().splitlines() if ln.strip()]
    log_file.unlink()
    ok = sorted(int(d) / 1000 for _, status, d in lines if status == "200")
    errors = len(lines) - len(ok)
    if errors:
        log(f"h2load {address}: {errors} responses not 200")
    p50 = ok[len(ok) // 2] if ok else float("nan")
    p99 = ok[min(len(ok) - 1, int(len(ok) * 0.99))] if ok else float("nan")
    return Result(float(m.group(1)), p50, p99, errors, len(lines))


def check_grpc(addresses: dict[str, str], request: bytes) -> None:
    """Every server answers the benchmark's ModelInfer bytes with OK and the same
    predictions (h2load sees only HTTP statuses)."""
    import grpc
    import numpy as np

    from driftloop_runtime.oip import open_inference_pb2 as pb

    answers = {}
    for name, address in addresses.items():
        with grpc.insecure_channel(address) as channel:
            call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
            raw = call(request[5:], timeout=10)  # unframed: grpc frames it
        response = pb.ModelInferResponse.FromString(raw)
        out = response.outputs[0]
        if response.raw_output_contents:
            dtype = {"INT64": "<i8", "INT32": "<i4", "FP64": "<f8", "FP32": "<f4"}[out.datatype]
            values = [int(v) for v in np.frombuffer(response.raw_output_contents[0], dtype)]
        else:
            values = [int(v) for v in out.contents.int64_contents or out.contents.int_contents]
        answers[name] = values
    first = next(iter(answers.values()))
    if any(v != first for v in answers.values()):
        raise SystemExit(f"servers disagree over gRPC: {answers}")


def check_same_predictions(urls: dict[str, str], body: str) -> None:
    answers = {}
    for name, url in urls.items():
        req = urllib.request.Request(
            url, data=body.encode(), method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            answers[name] = json.loads(resp.read())["outputs"][0]["data"]
    values = list(answers.values())
    if any(v != values[0] for v in values):
        raise SystemExit(f"servers disagree: {answers}")


# --------------------------------------------------------------------------- in-process

# CPU cost of one request through the ASGI app (decode, predict, drift bookkeeping,
# metrics, encode), drift on vs off, in ONE process: the two apps take turns every
# CHUNK requests, cycling through the load's payloads, and the cost is the median of
# the per-turn ratios, so a slow moment of the shared machine falls on both sides of
# a ratio.  It leaves out the HTTP server, so the share it reports is larger than
# what drift costs a whole request.
HANDLER_COST = r"""
import asyncio, json, os, statistics, sys, tempfile, time
os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp()
from driftloop_contract import ServerConfig
from driftloop_runtime.app import App
from driftloop_runtime.model import LoadedModel
from driftloop_runtime.shared import SharedState
model_dir, bodies_file, data_file = sys.argv[1], sys.argv[2], sys.argv[5]
chunk, turns = int(sys.argv[3]), int(sys.argv[4])
bodies = [b.encode() for b in json.load(open(bodies_file))]
apps = {}
for side, budget in (("on", None), ("exact", 10**9), ("off", None)):
    cfg = ServerConfig(model_name="bench", artifact_uri="file://" + model_dir,
        drift_enabled=side != "off", **({"drift_max_rows_per_second": budget} if budget else {}))
    m = LoadedModel(cfg, model_dir)
    m.attach(
        SharedState(tempfile.mktemp(), m.n_features + 1, 1000, bins=m.bins.total)
        if side != "off" else None
    )
    apps[side] = App(m)
scope = {"type": "http", "method": "POST", "path": "/v2/models/bench/infer",
         "headers": [(b"content-type", b"application/json")]}
status = []
sent = [0]
async def receive():
    sent[0] += 1
    return {"type": "http.request", "body": bodies[sent[0] % len(bodies)], "more_body": False}
async def send(msg):
    if msg["type"] == "http.response.start":
        status.append(msg["status"])
async def run(app):
    for _ in range(chunk):
        await app(scope, receive, send)
loop = asyncio.new_event_loop()
cost = {side: [] for side in apps}
for _ in range(turns):
    for side in apps:
        t0 = time.thread_time()
        loop.run_until_complete(run(apps[side]))
        cost[side].append((time.thread_time() - t0) / chunk * 1e6)
assert set(status) == {200}, set(status)
def ratio(side):
    return statistics.median(a / b for a, b in zip(cost[side], cost["off"]))
# The drift hot path alone: staging one request's rows, flushes amortised.  Rows drawn
# from the dataset, not one payload repeated: binning the same row over and over lets
# the CPU predict every branch and flatters a branchy kernel.
import numpy as np, pandas as pd
_, rows = apps["on"].m.decode(json.loads(bodies[0]))
data = pd.read_csv(data_file).drop(columns=["target"]).to_numpy(dtype=np.float64)
pick = np.random.default_rng(0).integers(0, len(data), size=(256, rows))
def record_us(m):
    live = [(data[i], m.pred_codes(m.predict(data[i]))) for i in pick]
    k = 20000
    t0 = time.perf_counter()
    for j in range(k):
        x, codes = live[j % 256]
        m.record(x, codes, rows, "bench-request-id")
    return (time.perf_counter() - t0) / k * 1e6
print(json.dumps({"on": statistics.median(cost["on"]), "off": statistics.median(cost["off"]),
                  "exact": statistics.median(cost["exact"]), "ratio": ratio("on"),
                  "ratio_exact": ratio("exact"), "record": record_us(apps["on"].m),
                  "record_exact": record_us(apps["exact"].m)}))
"""


def handler_cost(model_dir: Path, bodies: list[str], work: Path, rows: int) -> dict[str, float]:
    bodies_file = work / f"bodies-{rows}.json"
    bodies_file.write_text(json.dumps(bodies))
    chunk = 256 if rows == 1 else 128
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            HANDLER_COST,
            *map(str, (model_dir, bodies_file, chunk, 300, work / "data.csv")),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
        env=dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1"),
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


PREDICT_RATE = r"""
import json, sys, time
import numpy as np
from driftloop_contract import ServerConfig
from driftloop_runtime import artifacts
from driftloop_runtime.model import LoadedModel
model_dir = sys.argv[1]
model = artifacts.load_model(model_dir + "/model.skops")
config = ServerConfig(model_name="bench", artifact_uri="file://" + model_dir)
served = LoadedModel(config, model_dir)
x = np.asarray(json.load(open(sys.argv[2]))["inputs"][0]["data"], dtype=float).reshape(1, -1)
def rate(predict):
    for _ in range(200):
        predict(x)
    best = 0.0
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(2000):
            predict(x)
        best = max(best, 2000 / (time.perf_counter() - t))
    return best
print(json.dumps({"sklearn": rate(model.predict), "served": rate(served.predict)}))
"""


def predict_ceiling(model_dir: Path, body: str, work: Path) -> dict[str, float]:
    """The ceiling: in-process ``predict`` of one row, calls per second on one core, of
    scikit-learn's ``model.predict`` and of the server's own (compiled) predict."""
    body_file = work / "ceiling.json"
    body_file.write_text(body)
    out = subprocess.run(
        [sys.executable, "-c", PREDICT_RATE, str(model_dir), str(body_file)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
        env=dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1"),
    )
    rates: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return rates


# --------------------------------------------------------------------------- main


def main() -> int:
    global REPO_WORK
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=6.0, help="seconds per measurement")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="wrk threads")
    ap.add_argument("--connections", type=int, default=16, help="wrk connections")
    ap.add_argument("--rounds", type=int, default=4, help="alternating rounds")
    ap.add_argument("--rows", default="1,32", help="payload sizes (rows per request)")
    ap.add_argument(
        "--drift-pairs", type=int, default=12, help="paired drift on/off REST runs per size"
    )
    ap.add_argument("--drift-duration", type=float, default=3.0, help="seconds per paired run")
    ap.add_argument("--no-peer", action="store_true", help="skip MLServer")
    ap.add_argument("--no-kserve", action="store_true", help="skip KServe")
    ap.add_argument("--grpc", action="store_true", help="also gRPC ModelInfer under h2load")
    ap.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    ap.add_argument("--json", type=Path, help="also write raw results as JSON here")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install wrk")
    if args.grpc and shutil.which("h2load") is None:
        raise SystemExit("h2load not found: apt-get install nghttp2-client")
    rows_list = [int(r) for r in args.rows.split(",")]

    peer_bin = None if args.no_peer else ensure_peer_venv()
    kserve_bin = None if args.no_kserve else ensure_peer_venv(KSERVE_VENV, KSERVE_PINS)
    work = Path(tempfile.mkdtemp(prefix="driftloop-bench-"))
    REPO_WORK = work
    try:
        model_dir, sha = train_model(work)
        n_features = len(json.loads((model_dir / "manifest.json").read_text())["features"])
        peer_models = None if args.no_peer and args.no_kserve else peer_model_dir(work, model_dir)
        rest_bodies = {r: payloads(r, n_features) for r in rows_list}
        bodies = {r: rest_bodies[r][0] for r in rows_list}
        scripts = {r: lua_script(work, rest_bodies[r], r) for r in rows_list}
        configs = ["driftloop drift on", "mlserver", "kserve", "driftloop drift off"]
        if args.no_peer:
            configs.remove("mlserver")
        if args.no_kserve:
            configs.remove("kserve")
        series: dict[tuple[str, int], Series] = {
            (c, r): Series() for c in configs for r in rows_list
        }
        # All servers run side by side (an idle server costs nothing); the load
        # alternates between them run by run, so slow drifts in background load hit
        # every side alike.
        running: dict[str, Running] = {}
        live: dict[str, Result] = {}
        pairs: dict[tuple[str, int], list[tuple[Result, Result]]] = {}
        shares: dict[tuple[str, int], Share] = {}
        try:
            for cfg in configs:
                if cfg == "mlserver":
                    assert peer_bin is not None
                    assert peer_models is not None
                    running[cfg] = start_mlserver(work, peer_models, peer_bin, args.workers)
                elif cfg == "kserve":
                    assert kserve_bin is not None
                    assert peer_models is not None
                    joblib_path = peer_models / MODEL / "model.joblib"
                    running[cfg] = start_kserve(work, joblib_path, kserve_bin, args.workers)
                else:
                    drift = cfg.endswith("on")
                    running[cfg] = start_driftloop(
                        work, model_dir, sha, args.workers, drift, "on" if drift else "off"
                    )
            if "driftloop drift on" in running:
                # Drift tracking that counts every row, whatever the load: for the paired
                # drift-cost runs only (the default counts a sample above its row budget).
                running[EXACT] = start_driftloop(
                    work, model_dir, sha, args.workers, True, "exact", EVERY_ROW
                )
            urls = {c: f"{r.url}/v2/models/{MODEL}/infer" for c, r in running.items()}
            check_same_predictions(urls, bodies[rows_list[-1]])
            if args.warmup > 0:
                for cfg in configs:
                    for r in rows_list:
                        wrk(urls[cfg], scripts[r], args, args.warmup)
            grpc_data = {}
            if args.grpc:
                addresses = {c: r.grpc for c, r in running.items() if r.grpc is not None}
                for r in rows_list:
                    grpc_data[r] = work / f"grpc-{r}.bin"
                    grpc_data[r].write_bytes(grpc_request(bodies[r]))
                    check_grpc(addresses, grpc_data[r].read_bytes())
                    for cfg in configs:
                        series.setdefault((f"{cfg} gRPC", r), Series())
            for rnd in range(args.rounds):
                for r in rows_list:
                    order = configs if rnd % 2 == 0 else configs[::-1]
                    for cfg in order:
                        if args.grpc:
                            address = running[cfg].grpc
                            assert address is not None
                            res = measured(
                                running[cfg],
                                partial(h2load, address, grpc_data[r], args, args.duration),
                            )
                            series[(f"{cfg} gRPC", r)].results.append(res)
                            log(
                                f"round {rnd + 1} {cfg + ' gRPC':25s} rows={r:<3d} "
                                f"{res.rps:9.0f} req/s p50 {res.p50_ms:6.2f} ms "
                                f"p99 {res.p99_ms:6.2f} ms errors {res.errors} "
                                f"cpu {res.cpu_us:6.0f} us/req"
                            )
                        res = measured(
                            running[cfg], partial(wrk, urls[cfg], scripts[r], args, args.duration)
                        )
                        series[(cfg, r)].results.append(res)
                        log(
                            f"round {rnd + 1} {cfg:20s} rows={r:<3d} {res.rps:9.0f} req/s "
                            f"p50 {res.p50_ms:6.2f} ms p99 {res.p99_ms:6.2f} ms "
                            f"errors {res.errors} cpu {res.cpu_us:6.0f} us/req"
                        )
            for r in rows_list:
                sides = ("driftloop drift on", EXACT)
                for side, got in drift_pairs(running, urls, scripts[r], args, sides).items():
                    pairs[(side, r)] = got
                    log(f"{side} vs off rows={r}: {describe_pairs(got)}")
                for side in sides:
                    if side in running:
                        share = drift_share(running[side], urls[side], scripts[r], args)
                        if share is not None:
                            shares[(side, r)] = share
                            log(
                                f"{side} rows={r}: drift tracking {100 * share.drift:.1f}% "
                                f"of {share.samples} busy samples (py-spy)"
                            )
            if args.grpc:
                # The gRPC stack's own cost: a call that does no model work, on each server.
                empty = work / "empty.bin"
                empty.write_bytes(grpc_frame(b""))
                for cfg in configs:
                    address = running[cfg].grpc
                    assert address is not None
                    live[cfg] = h2load(address, empty, args, args.duration, call="ServerLive")
                    log(f"{cfg + ' gRPC ServerLive':34s} {live[cfg].rps:9.0f} calls/s")
        finally:
            for run in running.values():
                run.stop()
        costs = {r: handler_cost(model_dir, rest_bodies[r], work, r) for r in rows_list}
        for r, c in costs.items():
            log(
                f"in-process CPU per request rows={r}: drift on {c['on']:.1f} us, "
                f"off {c['off']:.1f} us, paired {100 * (c['ratio'] - 1):+.1f}%; "
                f"every row counted {c['exact']:.1f} us, {100 * (c['ratio_exact'] - 1):+.1f}%; "
                f"record {c['record']:.2f} us, every row {c['record_exact']:.2f} us"
            )
        all_configs = configs + ([f"{c} gRPC" for c in configs] if args.grpc else [])
        report = render(series, all_configs, rows_list, args, costs, pairs, shares)
        if 1 in rows_list:
            ceiling = predict_ceiling(model_dir, bodies[1], work)
            cores = os.cpu_count() or 1
            e2e = series[("driftloop drift on", 1)].median().rps / cores
            report += (
                f"\n- ceiling: in-process scikit-learn `model.predict` of 1 row on one core "
                f"{ceiling['sklearn']:,.0f}/s; driftloop end to end (REST, drift on) "
                f"{e2e:,.0f} req/s per core ({cores} cores, shared with wrk) = "
                f"**{100 * e2e / ceiling['sklearn']:.0f}%** of it.  The server's own "
                f"predict (compiled, docs/runtime.md) runs {ceiling['served']:,.0f}/s "
                f"in-process: end to end is {100 * e2e / ceiling['served']:.0f}% of that"
            )
        if live:
            report += "\n- gRPC with no model work (`ServerLive` under h2load, the same load): " + (
                ", ".join(f"{c} {r.rps:,.0f} calls/s" for c, r in live.items())
            )
        print(report)
        if args.json:
            args.json.write_text(
                json.dumps(
                    {f"{c}|{r}": [vars(x) for x in s.results] for (c, r), s in series.items()},
                    indent=1,
                )
            )
        if args.write_docs:
            write_docs(report)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def drift_pairs(
    running: dict[str, Running],
    urls: dict[str, str],
    script: Path,
    args: argparse.Namespace,
    drift_on: tuple[str, ...],
) -> dict[str, list[tuple[Result, Result]]]:
    """The drift-tracking cost as paired runs: each ``drift_on`` server and the drift-off
    server loaded at the same time, by one wrk each, many times over, the ``drift_on``
    servers taking turns pair by pair.  Both sides of a pair then share the machine at the
    same moments (the kernel gives each busy process an equal share of the cores), so
    background load moves both alike, and their ratio is steadier than that of runs taken
    one after the other; taking turns spreads slow drifts over every ``drift_on`` alike."""
    off = "driftloop drift off"
    present = [side for side in drift_on if side in running]
    out: dict[str, list[tuple[Result, Result]]] = {side: [] for side in present}
    if args.drift_pairs <= 0 or off not in running:
        return out
    with ThreadPoolExecutor(2) as pool:
        for _ in range(args.drift_pairs):
            for side in present:
                runs = [
                    pool.submit(
                        measured,
                        running[s],
                        partial(wrk, urls[s], script, args, args.drift_duration),
                    )
                    for s in (side, off)
                ]
                with_drift, without = (run.result() for run in runs)
                out[side].append((with_drift, without))
    return out


#: Frames of drift tracking in a worker's stacks: the request's ``record`` (staging, and
#: the flushes a full block triggers) and the timer's flushes.
DRIFT_FRAMES = ("record (driftloop_runtime/model.py:", "_flush_loop (driftloop_runtime/app.py:")
PY_SPY = Path(sys.executable).parent / "py-spy"


def spy_args(pid: str, seconds: int) -> list[str]:
    """py-spy sampling ``pid`` at 250 Hz for ``seconds``, stacks in its raw format."""
    return [str(PY_SPY), "record", "-p", pid, "-d", str(seconds), "-r", "250", "-f", "raw"]


@dataclass
class Share:
    drift: float  # share of the workers' busy samples in DRIFT_FRAMES
    samples: int


def drift_share(run: Running, url: str, script: Path, args: argparse.Namespace) -> Share | None:
    """Drift tracking's share of a driftloop server's busy CPU, from py-spy sampling its
    workers' stacks while wrk loads the server alone.  It measures the running process
    itself, so neither the machine's noise nor a difference between two processes enters
    it (paired runs of two servers differ by a few percent between processes of the same
    code: docs/benchmarks.md).  None without py-spy."""
    if not PY_SPY.exists():
        log("py-spy not installed: no drift profile (make venv installs it)")
        return None
    workers = subprocess.run(
        ["pgrep", "-P", str(run.proc.pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    duration = max(int(args.drift_duration * 2), 4)
    outs = [REPO_WORK / f"py-spy-{pid}.txt" for pid in workers]
    spies = [
        subprocess.Popen(
            [*spy_args(pid, duration), "-o", str(out), "--nonblocking"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid, out in zip(workers, outs, strict=True)
    ]
    time.sleep(0.5)  # attached before the load starts; idle samples are not recorded
    wrk(url, script, args, duration)
    total = drift = 0
    for spy, out in zip(spies, outs, strict=True):
        spy.wait(timeout=duration + 60)
        for line in out.read_text().splitlines() if out.exists() else []:
            stack, _, count = line.rpartition(" ")
            total += int(count)
            if any(frame in stack for frame in DRIFT_FRAMES):
                drift += int(count)
    return Share(drift / total, total) if total else None


def describe_pairs(pairs: list[tuple[Result, Result]]) -> str:
    """Median and middle half of the paired on/off ratios, as percentages."""

    def spread(ratios: list[float]) -> str:
        q1, q2, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
        return (
            f"**{100 * (q2 - 1):+.1f}%** "
            f"(middle half {100 * (q1 - 1):+.1f}..{100 * (q3 - 1):+.1f}%)"
        )

    cpu = spread([on.cpu_us / off.cpu_us for on, off in pairs])
    rps = spread([on.rps / off.rps for on, off in pairs])
    return f"server CPU per request {cpu}, req/s {rps}"


def render(
    series: dict[tuple[str, int], Series],
    configs: list[str],
    rows_list: list[int],
    args: argparse.Namespace,
    costs: dict[int, dict[str, float]],
    pairs: dict[tuple[str, int], list[tuple[Result, Result]]],
    shares: dict[tuple[str, int], Share],
) -> str:
    lines = [
        f"Setup: {args.workers} worker processes each; wrk -t{args.threads} "
        f"-c{args.connections}, {args.duration:.0f} s per run after {args.warmup:.0f} s "
        f"warm-up, {args.rounds} rounds alternating run by run between the servers "
        "(medians); loopback; "
        f"{os.cpu_count()} cores shared by servers and load generator; "
        f"Python {platform.python_version()}. Model: LogisticRegression, 30 numeric "
        "features (breast-cancer), same fitted pipeline on every side. "
        f"Load average at the end: {os.getloadavg()[0]:.1f} (the machine is shared: wrk "
        "numbers move ±15% run to run; the drift-tracking cost is measured below from "
        "paired runs that load both driftloop servers at once).",
        "",
        "| server | rows/request | req/s | p50 ms | p99 ms | errors | server CPU µs/request |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows_list:
        for c in configs:
            m = series[(c, r)].median()
            lines.append(
                f"| {c} | {r} | {m.rps:,.0f} | {m.p50_ms:.2f} | {m.p99_ms:.2f} | {m.errors} "
                f"| {m.cpu_us:,.0f} |"
            )
    lines.append("")
    for r in rows_list:
        on = series[("driftloop drift on", r)].median()
        off = series[("driftloop drift off", r)].median()
        parts = [f"rows={r}:"]
        for proto in ("", " gRPC"):
            if (f"driftloop drift on{proto}", r) not in series:
                continue
            ours = series[(f"driftloop drift on{proto}", r)].median()
            for peer_cfg, label in (("mlserver", "MLServer"), ("kserve", "KServe")):
                if (peer_cfg + proto, r) in series:
                    peer = series[(peer_cfg + proto, r)].median()
                    parts.append(
                        f"{proto.strip() or 'REST'} driftloop(drift on)/{label} = "
                        f"**{ours.rps / peer.rps:.2f}x** req/s, "
                        f"p99 {ours.p99_ms:.2f} vs {peer.p99_ms:.2f} ms;"
                    )
        for proto in ("", " gRPC"):
            if (f"driftloop drift on{proto}", r) in series:
                cpu_on = series[(f"driftloop drift on{proto}", r)].median().cpu_us
                cpu_off = series[(f"driftloop drift off{proto}", r)].median().cpu_us
                parts.append(
                    f"drift on vs off, server CPU per request under load "
                    f"({proto.strip() or 'REST'}): {cpu_on:.0f} vs {cpu_off:.0f} us = "
                    f"**{100 * (cpu_on / cpu_off - 1):+.1f}%**;"
                )
        for side, label in (("driftloop drift on", "drift on"), (EXACT, "every row counted")):
            if pairs.get((side, r)):
                parts.append(
                    f"{label} vs off, {len(pairs[(side, r)])} paired REST runs of "
                    f"{args.drift_duration:g} s, both servers loaded at once: "
                    f"{describe_pairs(pairs[(side, r)])};"
                )
        on_share, exact_share = shares.get(("driftloop drift on", r)), shares.get((EXACT, r))
        if on_share is not None and exact_share is not None:
            parts.append(
                f"drift tracking's share of the busy worker CPU under wrk (py-spy, "
                f"{on_share.samples:,} and {exact_share.samples:,} samples): "
                f"**{100 * on_share.drift:.1f}%**, every row counted "
                f"{100 * exact_share.drift:.1f}%;"
            )
        parts.append(
            f"drift on vs off under wrk: {100 * (on.rps / off.rps - 1):+.1f}% req/s (noisy); "
            f"in-process CPU per request of the app alone (no HTTP server), turn about "
            f"every few hundred requests: {costs[r]['on']:.0f} vs {costs[r]['off']:.0f} us, "
            f"median of the paired turns **{100 * (costs[r]['ratio'] - 1):+.1f}%** "
            f"(every row counted: {costs[r]['exact']:.0f} us, "
            f"{100 * (costs[r]['ratio_exact'] - 1):+.1f}%; the drift hot path alone: "
            f"{costs[r]['record']:.1f} us/request, every row counted "
            f"{costs[r]['record_exact']:.1f})"
        )
        lines.append("- " + " ".join(parts))
    return "\n".join(lines)


def write_docs(report: str) -> None:
    """Add this run to the end of docs/benchmarks.md's "## Serving" section as a dated
    subsection; the section's earlier runs stay (they are the history)."""
    path = REPO / "docs" / "benchmarks.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    run = (
        f"### make bench-serving, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n\n"
        f"{report}\n\n"
    )
    section = re.compile(r"^## Serving\n.*?(?=^## |\Z)", re.S | re.M).search(text)
    if section is None:
        intro = (
            "## Serving\n\ndriftloop's model server vs MLServer 1.7.1 and KServe 0.21 "
            "(`make bench-serving`, `bench/serving.py`; gRPC with `--grpc`, under h2load).\n\n"
        )
        text = text.rstrip() + "\n\n" + intro + run
    else:
        body = section.group(0).rstrip() + "\n\n"
        text = text[: section.start()] + body + run + text[section.end() :]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip() + "\n")
    log(f"updated {path}")


if __name__ == "__main__":
    sys.exit(main())
