"""The Argo CD health checks of the four kinds (docs/gitops).

The one hand-written script, ``docs/gitops/argocd-health/health.lua``, serves every kind. It
is copied into Argo CD's resource_customizations layout (``driftloop.dev/<Kind>/health.lua``)
and embedded in an argocd-cm snippet (``docs/gitops/argocd-cm.yaml``). Each kind's
``health_test.yaml`` and ``testdata/`` beside the copies are test data, written by hand (or
captured from a cluster), and never generated.
"""

from __future__ import annotations

from pathlib import Path

from driftloop.api import ALL_KINDS, GROUP

GITOPS = Path("docs") / "gitops"
HEALTH = GITOPS / "argocd-health"
#: The hand-written source (an input, not an output).
SCRIPT = HEALTH / "health.lua"
ARGOCD_CM = GITOPS / "argocd-cm.yaml"


def kind_script(kind: str) -> Path:
    """Where Argo CD's resource_customizations layout puts the script of ``kind``."""
    return HEALTH / GROUP / kind / "health.lua"


def argocd_cm(script: str) -> str:
    """The argocd-cm snippet: one resource.customizations.health.<group>_<kind> key per kind."""
    body = "".join(f"    {line}".rstrip() + "\n" for line in script.splitlines())
    keys = "".join(
        f"  resource.customizations.health.{GROUP}_{kind.kind}: |\n{body}" for kind in ALL_KINDS
    )
    return (
        "# Generated from docs/gitops/argocd-health/health.lua by\n"
        "# `make generate` (driftloop.codegen) - DO NOT EDIT.\n"
        "# Merge into Argo CD's argocd-cm ConfigMap (kubectl -n argocd patch cm argocd-cm\n"
        "# --type merge --patch-file docs/gitops/argocd-cm.yaml), or set the same keys with\n"
        "# the argo-cd Helm chart's configs.cm values.\n"
        "apiVersion: v1\n"
        "kind: ConfigMap\n"
        "metadata:\n"
        "  name: argocd-cm\n"
        "  namespace: argocd\n"
        "  labels:\n"
        "    app.kubernetes.io/name: argocd-cm\n"
        "    app.kubernetes.io/part-of: argocd\n"
        f"data:\n{keys}"
    )


def outputs(root: Path) -> dict[Path, str]:
    """The per-kind copies of the script and the argocd-cm snippet, by path below ``root``."""
    script = (root / SCRIPT).read_text()
    files = {root / kind_script(kind.kind): script for kind in ALL_KINDS}
    files[root / ARGOCD_CM] = argocd_cm(script)
    return files
