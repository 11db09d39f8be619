"""``python -m driftloop.codegen``: every generated file is committed and current.

The same check as ``make verify``, plus its failure modes in a scratch copy of the tree.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from driftloop.codegen import chart
from driftloop.codegen.__main__ import leftovers, main, outputs

ROOT = Path(__file__).resolve().parents[3]
#: What the generators read besides the Python models.
INPUTS = (
    "docs/gitops/argocd-health/health.lua",
    "serving-image/src/driftloop_runtime/oip/open_inference.proto",
)


def test_committed_files_are_current() -> None:
    files = outputs(ROOT)
    for path, text in files.items():
        assert path.exists(), f"{path} missing: run `make generate`"
        assert path.read_text() == text, f"{path} is stale: run `make generate`"
    assert leftovers(ROOT, files) == [], "run `make generate`"


def test_every_generated_file_is_listed() -> None:
    names = sorted(str(p.relative_to(ROOT)) for p in outputs(ROOT))
    kinds = ("datasets", "deployments", "modelversions", "trainingruns")
    assert names == sorted(
        [f"crds/{k}.driftloop.dev.yaml" for k in kinds]
        + [f"charts/driftloop/templates/crds/{k}.driftloop.dev.yaml" for k in kinds]
        + [
            f"docs/gitops/argocd-health/driftloop.dev/{k}/health.lua"
            for k in ("Dataset", "Deployment", "ModelVersion", "TrainingRun")
        ]
        + ["docs/gitops/argocd-cm.yaml", "docs/reference/api.md"]
        + [
            f"serving-image/src/driftloop_runtime/oip/open_inference_pb2{suffix}"
            for suffix in (".py", ".pyi", "_grpc.py")
        ]
    )


def test_test_data_is_never_generated() -> None:
    """Argo CD health fixtures are data (hand-written or captured), not generator output."""
    fixtures = [
        *ROOT.glob("docs/gitops/argocd-health/*/*/testdata/*"),
        *ROOT.glob("docs/gitops/argocd-health/*/*/health_test.yaml"),
    ]
    assert fixtures
    files = outputs(ROOT)
    assert not set(fixtures) & set(files)
    assert not set(fixtures) & set(leftovers(ROOT, dict.fromkeys(fixtures, "")))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A scratch repository root with the generated files and the generators' inputs."""
    for path in [*outputs(ROOT), *(ROOT / p for p in INPUTS)]:
        copy = tmp_path / path.relative_to(ROOT)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, copy)
    return tmp_path


def test_check_fails_on_stale_files_and_write_repairs(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    template = tree / chart.CHART_CRDS / "datasets.driftloop.dev.yaml"
    template.write_text(template.read_text().replace("shortNames:", "shortNames: []\n  x:", 1))
    (tree / "docs/reference/api.md").unlink()
    extra = tree / "crds" / "gone.driftloop.dev.yaml"
    extra.write_text("kind: CustomResourceDefinition\n")
    fixture = tree / "docs/gitops/argocd-health/driftloop.dev/Dataset/testdata/mine.yaml"
    fixture.parent.mkdir(parents=True)
    fixture.write_text("kind: Dataset\n")

    assert main(["--root", str(tree), "--check"]) == 1
    err = capsys.readouterr().err
    assert "charts/driftloop/templates/crds/datasets.driftloop.dev.yaml (differs)" in err
    assert "docs/reference/api.md (missing)" in err
    assert "crds/gone.driftloop.dev.yaml (no longer generated)" in err
    assert "testdata" not in err
    assert err.count("\n  ") == 3

    assert main(["--root", str(tree)]) == 0
    assert main(["--root", str(tree), "--check"]) == 0
    assert template.read_text() == (ROOT / chart.CHART_CRDS / template.name).read_text()
    assert not extra.exists()
    assert fixture.read_text() == "kind: Dataset\n"


def test_hand_edited_source_script_makes_copies_stale(tree: Path) -> None:
    script = tree / INPUTS[0]
    script.write_text(script.read_text() + "-- edited\n")
    assert main(["--root", str(tree), "--check"]) == 1
    assert main(["--root", str(tree)]) == 0
    copy = tree / "docs/gitops/argocd-health/driftloop.dev/Deployment/health.lua"
    assert copy.read_text().endswith("-- edited\n")
    assert "    -- edited\n" in (tree / "docs/gitops/argocd-cm.yaml").read_text()


def test_chart_template_refuses_helm_syntax() -> None:
    with pytest.raises(chart.ChartError, match="template"):
        chart.template("x.yaml", "kind: CustomResourceDefinition\n  labels:\n  a: '{{ x }}'\n")


def test_operator_never_imports_codegen() -> None:
    """Development tooling stays off the operator's run-time import path."""
    code = (
        "import sys, driftloop.__main__, driftloop.handlers; "
        "sys.exit(any(m.startswith('driftloop.codegen') for m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=False)
    assert proc.returncode == 0
