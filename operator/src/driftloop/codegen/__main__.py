"""``python -m driftloop.codegen [--check] [--root DIR]``: write (or check) every generated file."""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

from driftloop.codegen import argocd, chart, crds, oip

#: Files below these globs are all generated: one the generators no longer produce is stale
#: (removed by a write, reported by --check).
OWNED = ("crds/*.yaml", f"{chart.CHART_CRDS}/*.yaml", f"{argocd.HEALTH}/*/*/health.lua")


def outputs(root: Path) -> dict[Path, str]:
    """Every generated file below ``root`` and its content."""
    return {
        **crds.outputs(root),
        **chart.outputs(root),
        **argocd.outputs(root),
        **oip.outputs(root),
    }


def leftovers(root: Path, files: dict[Path, str]) -> list[Path]:
    """Files in the generated places that no generator produces any more."""
    return sorted(p for glob in OWNED for p in root.glob(glob) if p not in files)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m driftloop.codegen", description="Write every generated file."
    )
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="repository root")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; list stale files and exit 1"
    )
    args = parser.parse_args(argv)
    root: Path = args.root.resolve()
    files = outputs(root)
    stale: list[str] = []
    for path, text in files.items():
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        name = str(path.relative_to(root))
        if args.check:
            stale.append(f"{name} ({'missing' if current is None else 'differs'})")
            sys.stdout.writelines(
                difflib.unified_diff(
                    (current or "").splitlines(True), text.splitlines(True), name, "generated", n=1
                )
            )
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {name}")
    for path in leftovers(root, files):
        name = str(path.relative_to(root))
        if args.check:
            stale.append(f"{name} (no longer generated)")
        else:
            path.unlink()
            print(f"removed {name}")
    if stale:
        print(
            "stale generated files - run `make generate`:\n" + "".join(f"  {s}\n" for s in stale),
            end="",
            file=sys.stderr,
        )
        return 1
    print(f"{len(files)} generated files are current", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
