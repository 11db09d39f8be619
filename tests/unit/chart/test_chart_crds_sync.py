"""The chart's CRD templates are generated from crds/ (no helm binary needed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
CHART_CRDS = REPO / "charts" / "driftloop" / "templates" / "crds"


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(cwd / "hack" / "helm.sh"), *args], capture_output=True, text=True, check=False
    )


def test_chart_crds_are_current() -> None:
    """Fails when crds/ changed without `hack/helm.sh sync-crds`."""
    proc = run("check")
    assert proc.returncode == 0, proc.stderr


def test_one_template_per_crd() -> None:
    sources = sorted(p.name for p in (REPO / "crds").glob("*.yaml"))
    assert sorted(p.name for p in CHART_CRDS.glob("*.yaml")) == sources


def test_check_detects_drift(tmp_path: Path) -> None:
    """`check` fails on a stale template, and `sync-crds` repairs it (in a scratch copy)."""
    for part in ("hack", "crds", "charts"):
        shutil.copytree(REPO / part, tmp_path / part)
    stale = tmp_path / "charts" / "driftloop" / "templates" / "crds" / "datasets.driftloop.dev.yaml"
    stale.write_text(stale.read_text().replace("shortNames:", "shortNames: []\n  x:", 1))
    assert run("check", cwd=tmp_path).returncode != 0
    assert run("sync-crds", cwd=tmp_path).returncode == 0
    assert run("check", cwd=tmp_path).returncode == 0
    assert stale.read_text() == (CHART_CRDS / stale.name).read_text()
