"""Helm for tests: the cached binary, and the chart rendered to Python objects.

    from driftloop_testkit.helm import CHART, helm, render

    helm("lint", str(CHART), "--strict")
    objects = render({"watchNamespaces": ["a", "b"]})

The binary comes from ``hack/helm.sh ensure`` (built once from the Go module proxy and
cached outside git); ``$DRIFTLOOP_HELM`` points at another one. Nothing here needs a cluster.
"""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from driftloop_testkit.cluster import REPO

CHART = REPO / "charts" / "driftloop"
RELEASE = "driftloop"
NAMESPACE = "driftloop-system"


class HelmError(RuntimeError):
    """helm exited non-zero; the message carries its stderr."""

    def __init__(self, args: tuple[str, ...], returncode: int, stderr: str) -> None:
        super().__init__(f"helm {' '.join(args)} exited {returncode}:\n{stderr.strip()}")
        self.returncode = returncode
        self.stderr = stderr


@functools.cache
def helm_binary() -> str:
    """Path of the helm binary, building it on first use (minutes, once per machine)."""
    if override := os.environ.get("DRIFTLOOP_HELM"):
        return override
    out = subprocess.run(
        [str(REPO / "hack" / "helm.sh"), "ensure"],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]


def helm(*args: str, input: str | None = None, timeout: float = 300) -> str:
    """Run helm with ``args``; return its stdout, raise :class:`HelmError` on failure."""
    proc = subprocess.run(
        [helm_binary(), *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )
    if proc.returncode != 0:
        raise HelmError(args, proc.returncode, proc.stderr)
    return proc.stdout


def values_file(values: dict[str, Any], directory: Path) -> Path:
    """Write ``values`` as a values file in ``directory``."""
    path = directory / "values.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def render(
    values: dict[str, Any] | None = None,
    *,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
    args: tuple[str, ...] = (),
    chart: Path = CHART,
) -> list[dict[str, Any]]:
    """``helm template`` the chart with ``values``; every rendered object, in order."""
    with tempfile.TemporaryDirectory(prefix="driftloop-helm-") as tmp:
        out = helm(
            "template",
            release,
            str(chart),
            "--namespace",
            namespace,
            "--values",
            str(values_file(values or {}, Path(tmp))),
            *args,
        )
    return [doc for doc in yaml.safe_load_all(out) if doc]


def lint(values: dict[str, Any] | None = None, *, namespace: str = NAMESPACE) -> str:
    """``helm lint --strict`` the chart with ``values``; return its output."""
    with tempfile.TemporaryDirectory(prefix="driftloop-helm-") as tmp:
        return helm(
            "lint",
            str(CHART),
            "--strict",
            "--namespace",
            namespace,
            "--values",
            str(values_file(values or {}, Path(tmp))),
        )


#: Representative value sets: each is linted, rendered and (in cluster tests) dry-run
#: against a real API server. Keys are test ids.
VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "namespaced": {"watchNamespaces": ["team-a", "team-b"]},
    "crds-disabled": {"crds": {"enabled": False}},
    "crds-not-kept": {"crds": {"enabled": True, "keep": False}},
    "s3-artifacts": {
        "prometheus": {"url": "http://prometheus.monitoring:9090"},
        "artifacts": {
            "pvc": {"create": False, "name": "models"},
            "s3": {
                "endpoint": "http://minio.storage:9000",
                "bucket": "models",
                "secretName": "driftloop-s3",
            },
        },
    },
    "observability": {
        "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
        "networkPolicy": {
            "enabled": True,
            "metricsFrom": [
                {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}
                    }
                }
            ],
        },
    },
    "minimal-rbac": {"prometheus": {"modelServiceMonitors": False}},
}
