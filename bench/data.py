#!/usr/bin/env python3
"""Data at real sizes: the profile and train commands on 10^5..10^7 rows.

    .venv/bin/python bench/data.py [--rows 100000 1000000 10000000] [--train-max 1000000]
    (make bench-data)

Each data set has 20 numeric and 5 categorical feature columns and a binary target,
written once (cached in --dir) as one CSV file and as a prefix of Parquet files
(one file per 10^6 rows, at least 4; row groups of 128 Ki rows).  For each,
``driftloop-runtime profile`` and ``driftloop-runtime train`` run as the Jobs run them
(a subprocess, the request in a file); the child's wall time and peak RSS (``wait4``'s
ru_maxrss) are recorded.

Peer: the whole-file path the profile Job used before it streamed (read the whole
source, parse it with pandas, validate, build the profile from the in-memory matrix),
run the same way on the same files up to --peer-max rows.  Goals (issue 14): profile
peak RSS within 2x from 10^5 to 10^7 rows; training peak RSS <= 2x the numeric
feature matrix (rows x 20 x 8 bytes).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

NUMERIC = [f"x{i:02d}" for i in range(20)]
CATEGORICAL = [f"c{i}" for i in range(5)]
LABELS = [f"level_{i}" for i in range(8)]
CHUNK = 1_000_000

#: The pre-streaming profile path, for the peer column (run as a child too).
PEER = """
import json, sys
import driftloop_contract as contract
from driftloop_runtime import data, profile, snapshot
req = contract.ProfileRequest.model_validate_json(open(sys.argv[1]).read())
staged = snapshot.stage(req.dataset.source, __import__("pathlib").Path(sys.argv[2]))
loaded, _ = data.load_staged(staged, req.dataset.format)
data.validate(req.dataset, loaded.frame)
x, _ = data.feature_matrix(req.dataset, loaded.frame)
feats = [(f.name, f.type.value == "categorical") for f in req.dataset.features]
prof = profile.build(feats, x)
print(json.dumps({"rows": prof["rows"]}))
"""


def _chunk(rng: np.random.Generator, n: int) -> Any:
    import pandas as pd

    frame = pd.DataFrame(rng.normal(0.0, 1.0, size=(n, len(NUMERIC))), columns=NUMERIC)
    for name in CATEGORICAL:
        frame[name] = rng.choice(LABELS, n)
    noise = rng.normal(0.0, 0.5, n)
    frame["target"] = ((frame["x00"] + frame["x01"] + noise) > 0).astype(np.int64)
    return frame


def generate(rows: int, directory: Path) -> tuple[Path, Path]:
    """(csv file, parquet prefix) of ``rows`` rows, written once, by a child process:
    a forked child's peak RSS counts its parent's pages, so the parent stays small."""
    csv_path = directory / f"rows-{rows}.csv"
    parquet_dir = directory / f"rows-{rows}-parquet"
    if not (directory / f".rows-{rows}.done").exists():
        subprocess.run(
            [sys.executable, __file__, "--generate", str(rows), "--dir", str(directory)],
            check=True,
        )
    return csv_path, parquet_dir


def _write(rows: int, directory: Path) -> None:
    csv_path = directory / f"rows-{rows}.csv"
    parquet_dir = directory / f"rows-{rows}-parquet"
    done = directory / f".rows-{rows}.done"
    rng = np.random.default_rng(rows)
    files = max(4, rows // CHUNK)
    per_file = -(-rows // files)
    parquet_dir.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "w", encoding="utf-8") as out:
        written = 0
        for index in range(files):
            n = min(per_file, rows - written)
            frame = _chunk(rng, n)
            frame.to_csv(out, index=False, header=index == 0, float_format="%.6g")
            # Row groups of 128 Ki rows (Spark's 128 MiB default holds about as many
            # such rows): the profile's memory grows with a row group, not a file.
            frame.to_parquet(
                parquet_dir / f"part-{index:04d}.parquet", index=False, row_group_size=1 << 17
            )
            written += n
    done.touch()


def _dataset(source: str) -> dict[str, Any]:
    return {
        "source": source,
        "features": [{"name": n} for n in NUMERIC]
        + [{"name": c, "type": "categorical"} for c in CATEGORICAL],
        "target": "target",
        "task": "classification",
    }


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, int, int]:
    """(wall seconds, peak RSS bytes, exit code) of a child process."""
    started = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 and proc.stderr is not None:
        sys.stderr.write(proc.stderr.read().decode(errors="replace")[-2000:])
    return wall, usage.ru_maxrss * 1024, proc.returncode


def measure(
    command: str, request: dict[str, Any], work: Path, env: dict[str, str]
) -> dict[str, Any]:
    req = work / f"{command}-request.json"
    req.write_text(json.dumps(request))
    term = work / f"{command}-result.json"
    run_env = {**env, "DRIFTLOOP_TERMINATION_LOG": str(term), "DRIFTLOOP_SCRATCH_DIR": str(work)}
    argv = [sys.executable, "-m", "driftloop_runtime", command, "--request-file", str(req)]
    wall, rss, code = _run(argv, run_env)
    result = json.loads(term.read_text()) if term.exists() else {}
    if code != 0 or not result.get("ok"):
        raise SystemExit(f"{command} failed ({code}): {result}")
    return {"wall": wall, "rss": rss, "rows": result.get("rows")}


def peer(request: dict[str, Any], work: Path, env: dict[str, str]) -> dict[str, Any]:
    req = work / "peer-request.json"
    req.write_text(json.dumps(request))
    staging = Path(tempfile.mkdtemp(dir=work))
    wall, rss, code = _run([sys.executable, "-c", PEER, str(req), str(staging)], env)
    if code != 0:
        raise SystemExit(f"peer failed ({code})")
    return {"wall": wall, "rss": rss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    parser.add_argument("--formats", nargs="+", default=["csv", "parquet"])
    parser.add_argument(
        "--train-max", type=int, default=1_000_000, help="train up to this many rows"
    )
    parser.add_argument("--peer-max", type=int, default=1_000_000, help="peer up to this many rows")
    parser.add_argument(
        "--dir", type=Path, default=Path(tempfile.gettempdir()) / "driftloop-bench-data"
    )
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--generate", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    if args.generate:
        _write(args.generate, args.dir)
        return
    env = dict(os.environ)
    rows_out: list[dict[str, Any]] = []
    print(
        f"{'rows':>10} {'format':>8} {'step':>8} {'wall s':>8} {'peak MiB':>9} {'rows/s':>10} "
        f"{'peer MiB':>9} {'ratio':>6} {'goal':>24}"
    )
    for rows in args.rows:
        csv_path, parquet_dir = generate(rows, args.dir)
        matrix = rows * len(NUMERIC) * 8
        for fmt in args.formats:
            source = str(csv_path) if fmt == "csv" else str(parquet_dir) + "/"
            with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
                work = Path(tmp)
                request = {
                    "dataset": _dataset(source),
                    "outputDir": str(work / "profile"),
                    "snapshotRoot": str(work / "snapshots"),
                }
                prof = measure("profile", request, work, env)
                base = peer(request, work, env) if rows <= args.peer_max else None
                steps = [("profile", prof, base)]
                if rows <= args.train_max:
                    train_request = {
                        "modelName": "bench",
                        "dataset": _dataset(source),
                        "estimator": "HistGradientBoostingClassifier",
                        "hyperparameters": {"max_iter": 20},
                        "outputDir": str(work / "model"),
                    }
                    steps.append(("train", measure("train", train_request, work, env), None))
                for step, got, other in steps:
                    row = {
                        "rows": rows,
                        "format": fmt,
                        "step": step,
                        "wall_s": round(got["wall"], 2),
                        "peak_rss_mib": round(got["rss"] / 2**20, 1),
                        "rows_per_s": round(rows / got["wall"]),
                        "peer_rss_mib": round(other["rss"] / 2**20, 1) if other else None,
                        "numeric_matrix_mib": round(matrix / 2**20, 1),
                    }
                    rows_out.append(row)
                    ratio = f"{got['rss'] / other['rss']:.2f}" if other else "-"
                    goal = (
                        f"RSS/matrix {got['rss'] / matrix:.2f} (<=2)"
                        if step == "train"
                        else "flat (see summary)"
                    )
                    peer_mib = f"{row['peer_rss_mib']:.0f}" if other else "-"
                    print(
                        f"{rows:>10} {fmt:>8} {step:>8} {row['wall_s']:>8.1f} "
                        f"{row['peak_rss_mib']:>9.0f} {row['rows_per_s']:>10} {peer_mib:>9} "
                        f"{ratio:>6} {goal:>24}",
                        flush=True,
                    )
    for fmt in args.formats:
        rss = [r["peak_rss_mib"] for r in rows_out if r["format"] == fmt and r["step"] == "profile"]
        if len(rss) > 1:
            print(
                f"profile peak RSS, {fmt}: largest/smallest = {max(rss) / min(rss):.2f} (goal <= 2)"
            )
    if args.json:
        args.json.write_text(json.dumps(rows_out, indent=1))


if __name__ == "__main__":
    main()
