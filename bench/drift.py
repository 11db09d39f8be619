#!/usr/bin/env python3
"""Drift detection benchmark: false alarms and detection delay, driftloop vs Evidently
and NannyML on the same windows.

    python bench/drift.py [--null-windows 1000] [--peer-null-windows 100]
                          [--shift-windows 12] [--no-peers] [--write-docs]

What it does, all offline on this machine:
  1. creates (once, cached) two virtualenvs for the peers in ~/.cache/driftloop:
     evidently-venv (evidently 0.7.23) and nannyml-venv (nannyml 0.13.1), both with
     pandas<3 (neither imports under pandas 3) and this venv's scikit-learn;
  2. takes datasets shipped inside scikit-learn (no download): wine (13 numeric + the
     class as a 3-level categorical column, 178 rows), breast_cancer (30 numeric + the
     diagnosis, 569 rows), diabetes (9 numeric + sex, 2 levels, 442 rows).  Each is the
     shape of a population: rows are drawn from it by smoothed bootstrap (a dataset row,
     numeric columns jittered by 0.1 of their std);
  3. draws a 5,000-row reference (the training data: driftloop's profile, Evidently's
     reference, NannyML's reference period) and, for windows of 100, 500 and 1,000 rows,
     no-drift windows and windows with a shift: the mean of one numeric feature, or of a
     quarter of them ("several"), moved by 0.25, 0.5 or 1 std; 10% of the rows moved from
     the most frequent category to the next; one feature's spread x1.5.  Shifted
     features are drawn anew for every window;
  4. scores every window with: driftloop's fixed default (PSI of each feature over the
     reference deciles above 0.1, the max over features), driftloop's calibrated
     default (each feature's PSI above its calibrated threshold for the window at a 1%
     false-alarm rate), Evidently's DataDriftPreset (dataset drift: at least half the
     columns drift; also "any column" drifting), NannyML's UnivariateDriftCalculator
     (any column alerting, chunks of the window size);
  5. prints, per window size, the false-alarm rate per evaluation (share of no-drift
     windows that fire) and the detection delay (rows until the first firing window:
     windows after a shift are independent draws, so the expected delay is
     window / P(a shifted window fires)).  --write-docs puts the tables in
     docs/benchmarks.md and docs/drift.md.

The shift starts at a window boundary, so the delay counts whole windows; a sliding
window evaluated more often would fire earlier by up to one window for every method.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import driftloop_contract as contract
from driftloop_contract import DriftMethod
from driftloop_runtime import calibration, drift, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving import CACHE, REPO, ensure_peer_venv

EVIDENTLY_VENV = CACHE / "evidently-venv"
EVIDENTLY_PINS = ["evidently==0.7.23", "pandas<3"]
NANNYML_VENV = CACHE / "nannyml-venv"
NANNYML_PINS = ["nannyml==0.13.1", "statsmodels==0.15.0", "pandas<3"]

#: Both peers report usage over the network by default (and Evidently retries while
#: the bench waits): off.
NO_TELEMETRY = {"DO_NOT_TRACK": "1", "NML_DISABLE_USAGE_LOGGING": "1"}

WINDOWS = (100, 500, 1000)
REFERENCE_ROWS = 5000
#: Numeric columns are jittered by this share of their std (smoothed bootstrap).
BANDWIDTH = 0.1
FALSE_ALARM_RATE = contract.DEFAULT_FALSE_ALARM_RATE
FIXED_THRESHOLD = contract.DRIFT_THRESHOLDS[DriftMethod.psi]
SEED = 20261201


def log(message: str) -> None:
    print(f"[bench-drift] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Population:
    name: str
    base: np.ndarray  # rows x columns; categorical columns as integer codes
    names: list[str]
    categorical: np.ndarray  # bool mask

    @property
    def numeric(self) -> np.ndarray:
        return np.flatnonzero(~self.categorical)

    def sample(self, rng: np.random.Generator, rows: int) -> np.ndarray:
        x = self.base[rng.integers(0, self.base.shape[0], rows)].copy()
        num = self.numeric
        x[:, num] += rng.normal(size=(rows, num.size)) * (BANDWIDTH * self.base[:, num].std(0))
        return x


def datasets() -> list[Population]:
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

    out = []
    for name, loader, label in (
        ("wine", load_wine, "class"),
        ("breast_cancer", load_breast_cancer, "diagnosis"),
    ):
        d = loader()
        base = np.column_stack([d.data, d.target.astype(np.float64)])
        names = [str(n) for n in d.feature_names] + [label]
        out.append(Population(name, base, names, np.arange(len(names)) == len(names) - 1))
    d = load_diabetes()
    base = d.data.copy()
    sex = 1  # two values: a categorical column
    base[:, sex] = np.unique(base[:, sex], return_inverse=True)[1]
    out.append(
        Population("diabetes", base, [str(n) for n in d.feature_names], np.arange(10) == sex)
    )
    return out


# ---------------------------------------------------------------------- shifts

Shift = Callable[[np.random.Generator, np.ndarray, Population, np.ndarray], np.ndarray]


def mean_shift(size: float, several: bool) -> Shift:
    def apply(rng: np.random.Generator, x: np.ndarray, pop: Population, std: np.ndarray):
        num = pop.numeric
        count = max(2, round(num.size / 4)) if several else 1
        for j in rng.choice(num, count, replace=False):
            x[:, j] += size * std[j]
        return x

    return apply


def category_shift(share: float) -> Shift:
    def apply(rng: np.random.Generator, x: np.ndarray, pop: Population, std: np.ndarray):
        j = int(np.flatnonzero(pop.categorical)[0])
        codes, counts = np.unique(pop.base[:, j], return_counts=True)
        top, second = codes[np.argsort(-counts)[:2]]
        rows = x[:, j] == top
        move = rows & (rng.random(x.shape[0]) < share / max(rows.mean(), 1e-9))
        x[move, j] = second
        return x

    return apply


def variance_change(factor: float) -> Shift:
    def apply(rng: np.random.Generator, x: np.ndarray, pop: Population, std: np.ndarray):
        j = rng.choice(pop.numeric)
        centre = pop.base[:, j].mean()
        x[:, j] = centre + factor * (x[:, j] - centre)
        return x

    return apply


SHIFTS: dict[str, Shift] = {
    "mean 0.25 sd, one": mean_shift(0.25, False),
    "mean 0.5 sd, one": mean_shift(0.5, False),
    "mean 1 sd, one": mean_shift(1.0, False),
    "mean 0.25 sd, several": mean_shift(0.25, True),
    "mean 0.5 sd, several": mean_shift(0.5, True),
    "mean 1 sd, several": mean_shift(1.0, True),
    "category share -10 pts": category_shift(0.10),
    "variance x1.5, one": variance_change(1.5),
}


# ------------------------------------------------------------------ driftloop


class Driftloop:
    """driftloop's scoring as the server and the pooled query do it: the reference
    profile's bins (drift.BinLayout), PSI per feature, the max over features against the
    fixed default or each feature's calibrated threshold."""

    def __init__(self, pop: Population, reference: np.ndarray, seed: int) -> None:
        cat = pop.categorical
        matrix = reference.astype(object)
        for j in np.flatnonzero(cat):
            matrix[:, j] = [f"c{int(v)}" for v in reference[:, j]]
        features = [(n, bool(c)) for n, c in zip(pop.names, cat, strict=True)]
        started = time.perf_counter()
        self.profile = profile.build(features, matrix, seed=seed)
        self.profile_seconds = time.perf_counter() - started
        entries = self.profile["features"]
        self.layout = drift.BinLayout.from_profile(
            [(e["name"], e["type"] == "categorical", e) for e in entries],
            contract.MAX_EXPORTED_BINS,
        )
        # live categorical values as the server encodes them: the profile's category index
        self.codes = {
            j: {int(c[1:]): k for k, c in enumerate(entries[j]["categories"])}
            for j in np.flatnonzero(cat)
        }
        self.names = pop.names

    def scores(self, windows: np.ndarray) -> np.ndarray:
        """PSI of every feature of every window: (windows, features)."""
        k, rows, _ = windows.shape
        out = np.empty((k, len(self.names)))
        for j, size in enumerate(self.layout.sizes):
            col = windows[:, :, j]
            if self.layout.categorical[j]:
                # the profile's index of each live code; unseen codes (and categories
                # folded past MAX_EXPORTED_BINS) land in the last bin
                lookup = np.full(int(col.max()) + 1, size - 1, dtype=np.int64)
                for code, index in self.codes[j].items():
                    if code < lookup.size:
                        lookup[code] = min(index, size - 1)
                bins = lookup[col.astype(np.int64)]
            else:
                bins = drift.bin_index(self.layout.edges[j], col)
            flat = (bins + size * np.arange(k)[:, None]).ravel()
            counts = np.bincount(flat, minlength=size * k).reshape(k, size) / rows
            ref = np.broadcast_to(self.layout.reference[j], counts.shape)
            out[:, j] = calibration.psi_rows(ref, counts)
        return out

    def verdicts(self, windows: np.ndarray) -> dict[str, list[bool]]:
        rows = windows.shape[1]
        limits = calibration.thresholds(
            self.profile, DriftMethod.psi, rows, FALSE_ALARM_RATE, self.names
        )
        calibrated = np.array([limits[n] for n in self.names])
        s = self.scores(windows)
        return {
            "fixed": (s.max(axis=1) > FIXED_THRESHOLD).tolist(),
            "calibrated": (s > calibrated).any(axis=1).tolist(),
        }


# ---------------------------------------------------------------------- runs


@dataclass
class Config:
    dataset: str
    window: int
    null: int  # driftloop's no-drift windows (the first `peer_null` are the peers' too)
    peer_null: int
    shifted: int  # windows per shift

    @property
    def key(self) -> str:
        return f"{self.dataset}-{self.window}"


def build_windows(pop: Population, cfg: Config, rng: np.random.Generator) -> np.ndarray:
    std = pop.base.std(axis=0)
    null = pop.sample(rng, cfg.null * cfg.window).reshape(cfg.null, cfg.window, -1)
    shifted = [
        shift(rng, pop.sample(rng, cfg.window), pop, std)
        for shift in SHIFTS.values()
        for _ in range(cfg.shifted)
    ]
    return np.concatenate([null, np.stack(shifted)])


def split(verdicts: list[bool], cfg: Config, null: int) -> dict[str, Any]:
    """No-drift verdicts and per-shift verdicts of one method's window list."""
    out: dict[str, Any] = {"null": verdicts[:null]}
    rest = verdicts[null:]
    for i, name in enumerate(SHIFTS):
        out[name] = rest[i * cfg.shifted : (i + 1) * cfg.shifted]
    return out


def run_peer(venv: Path, pins: list[str], tool: str, directory: Path) -> dict[str, Any]:
    python = ensure_peer_venv(venv, pins) / "python"
    out = directory / f"{tool}.json"
    log(f"running {tool} on every window")
    subprocess.run(
        [str(python), str(REPO / "bench" / "drift_peers.py"), tool, str(directory), str(out)],
        check=True,
        env={**os.environ, **NO_TELEMETRY},
    )
    return dict(json.loads(out.read_text()))


def evaluate(args: argparse.Namespace) -> tuple[list[Config], dict[str, dict[str, Any]]]:
    """Per config key, per method: the split verdicts."""
    results: dict[str, dict[str, Any]] = {}
    configs = []
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as tmp:
        directory = Path(tmp)
        for d, pop in enumerate(datasets()):
            if args.datasets and pop.name not in args.datasets:
                continue
            rng = np.random.default_rng([SEED, d])
            reference = pop.sample(rng, REFERENCE_ROWS)
            ours = Driftloop(pop, reference, seed=d)
            log(
                f"{pop.name}: profile + calibration of {len(pop.names)} columns in "
                f"{ours.profile_seconds:.1f}s"
            )
            for window in args.windows:
                cfg = Config(
                    pop.name, window, args.null_windows, args.peer_null_windows, args.shift_windows
                )
                configs.append(cfg)
                windows = build_windows(pop, cfg, np.random.default_rng([SEED, d, window]))
                verdicts = ours.verdicts(windows)
                results[cfg.key] = {m: split(v, cfg, cfg.null) for m, v in verdicts.items()}
                # the peers: the first peer_null no-drift windows and every shifted one
                shared = np.concatenate([windows[: cfg.peer_null], windows[cfg.null :]])
                np.savez(
                    directory / f"{cfg.key}.npz",
                    reference=reference,
                    windows=shared,
                    names=np.array(pop.names),
                    categorical=pop.categorical,
                )
        if not args.no_peers:
            peers = {
                "evidently": run_peer(EVIDENTLY_VENV, EVIDENTLY_PINS, "evidently", directory),
                "nannyml": run_peer(NANNYML_VENV, NANNYML_PINS, "nannyml", directory),
            }
            for cfg in configs:
                ev = peers["evidently"][cfg.key]
                results[cfg.key]["evidently"] = split(ev["dataset"], cfg, cfg.peer_null)
                results[cfg.key]["evidently_any"] = split(ev["any"], cfg, cfg.peer_null)
                nm = peers["nannyml"][cfg.key]["dataset"]
                results[cfg.key]["nannyml"] = split(nm, cfg, cfg.peer_null)
    return configs, results


# -------------------------------------------------------------------- report

METHODS = {
    "fixed": "driftloop, fixed (PSI > 0.1)",
    "calibrated": "driftloop, calibrated (1%)",
    "evidently": "Evidently DataDriftPreset (dataset drift)",
    "evidently_any": "Evidently, any column drifted",
    "nannyml": "NannyML univariate (any column alert)",
}


def delay(window: int, p: float) -> str:
    return "never" if p == 0 else f"{window / p:,.0f}"


def summary(configs: list[Config], results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per window size and method: FAR (mean and max over datasets) and P(fire) per shift
    (mean over datasets)."""
    out: dict[str, Any] = {}
    for window in sorted({c.window for c in configs}):
        keys = [c.key for c in configs if c.window == window]
        per: dict[str, Any] = {}
        for method in METHODS:
            if method not in results[keys[0]]:
                continue
            fars = [float(np.mean(results[k][method]["null"])) for k in keys]
            n_null = sum(len(results[k][method]["null"]) for k in keys)
            per[method] = {
                "far": float(np.mean(fars)),
                "far_max": max(fars),
                "null_windows": n_null,
                "p": {
                    s: float(np.mean([np.mean(results[k][method][s]) for k in keys]))
                    for s in SHIFTS
                },
                "p_by_dataset": {
                    k: {s: float(np.mean(results[k][method][s])) for s in SHIFTS} for k in keys
                },
            }
        out[str(window)] = per
    return out


def table(stats: dict[str, Any], shifted: int) -> str:
    lines = []
    for window, per in stats.items():
        w = int(window)
        lines.append(
            f"**{w}-row windows** — expected delay in rows (window ÷ P(a window "
            f"after the shift fires)); false alarms per evaluation, mean over the "
            f"datasets (worst dataset)\n"
        )
        head = ["method", "false alarms", *SHIFTS]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for method, s in per.items():
            cells = [METHODS[method], f"{s['far']:.1%} ({s['far_max']:.1%})"]
            cells += [delay(w, s["p"][name]) for name in SHIFTS]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def goals(stats: dict[str, Any]) -> list[str]:
    out = []
    worst = {w: per["calibrated"]["far_max"] for w, per in stats.items()}
    ok = all(v <= 0.01 for v in worst.values())
    out.append(
        f"- false alarms ≤ 1% per evaluation with the calibrated default at every window "
        f"size (worst dataset): {'met' if ok else 'NOT met'} — "
        + ", ".join(f"{w} rows: {v:.1%}" for w, v in worst.items())
    )
    if "500" in stats:
        by = stats["500"]["calibrated"]["p_by_dataset"]
        ps = {k.rsplit("-", 1)[0]: v["mean 0.5 sd, one"] for k, v in by.items()}
        ok = all(p >= 0.9 for p in ps.values())
        out.append(
            "- a 0.5 sd mean shift of one feature detected within one 500-row window (the "
            "first window after the shift fires in ≥ 90% of cases, every dataset): "
            f"{'met' if ok else 'NOT met'} — " + ", ".join(f"{k}: {p:.0%}" for k, p in ps.items())
        )
    for w, per in stats.items():
        ours = per["calibrated"]
        mean_p = float(np.mean(list(ours["p"].values())))
        beaten = []
        for method, s in per.items():
            if method in ("calibrated", "fixed"):
                continue
            peer_p = float(np.mean(list(s["p"].values())))
            if s["far"] < ours["far"] and peer_p > mean_p:
                beaten.append(f"{METHODS[method]} ({s['far']:.1%}, P {peer_p:.2f})")
        out.append(
            f"- {w} rows: no peer with both fewer false alarms and a shorter delay (mean "
            f"P(fire) over the shifts; calibrated {ours['far']:.1%}, P {mean_p:.2f}): "
            + ("met" if not beaten else "NOT met — " + "; ".join(beaten))
        )
    return out


def write_docs(report: str) -> None:
    marker = re.compile(r"<!-- bench-drift:start -->.*?<!-- bench-drift:end -->", re.S)
    block = f"<!-- bench-drift:start -->\n{report}\n<!-- bench-drift:end -->"
    for name, heading in (("benchmarks.md", "## Drift detection"), ("drift.md", "## Benchmark")):
        path = REPO / "docs" / name
        text = path.read_text()
        if marker.search(text):
            text = marker.sub(lambda _: block, text)
        else:
            text = text.rstrip() + f"\n\n{heading}\n\n{block}\n"
        path.write_text(text)
        log(f"updated {path}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--windows", type=int, nargs="+", default=list(WINDOWS))
    ap.add_argument("--datasets", nargs="*", default=None, help="wine breast_cancer diabetes")
    ap.add_argument("--null-windows", type=int, default=1000, help="driftloop's no-drift windows")
    ap.add_argument(
        "--peer-null-windows",
        type=int,
        default=100,
        help="the peers' no-drift windows (the first of driftloop's)",
    )
    ap.add_argument("--shift-windows", type=int, default=12, help="windows per shift")
    ap.add_argument("--no-peers", action="store_true", help="driftloop only")
    ap.add_argument("--write-docs", action="store_true")
    ap.add_argument("--json", type=Path, help="also write the raw verdict summary here")
    args = ap.parse_args()
    args.peer_null_windows = min(args.peer_null_windows, args.null_windows)
    started = time.time()
    load = os.getloadavg()
    configs, results = evaluate(args)
    stats = summary(configs, results)
    report = "\n".join(
        [
            f"`make bench-drift` on {time.strftime('%Y-%m-%d')}, load average "
            f"{load[0]:.2f} at start, {time.time() - started:.0f}s. Reference: "
            f"{REFERENCE_ROWS:,} rows; no-drift windows per dataset and size: "
            f"{args.null_windows:,} for driftloop, the first {args.peer_null_windows} of "
            f"them for the peers; {args.shift_windows} windows per shift, the same for "
            "every method. Datasets: wine, breast_cancer, diabetes (scikit-learn).\n",
            table(stats, args.shift_windows),
            "Goals:\n",
            *goals(stats),
        ]
    )
    print(report)
    if args.json:
        args.json.write_text(json.dumps({"stats": stats, "results": results}, indent=1))
    if args.write_docs:
        write_docs(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
