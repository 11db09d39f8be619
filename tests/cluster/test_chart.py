"""The chart's rendered manifests are accepted by a real API server (server-side dry run)."""

from __future__ import annotations

import pytest
import yaml

from driftloop_testkit.cluster import Kubectl
from driftloop_testkit.helm import VALUE_SETS, render

pytestmark = [pytest.mark.cluster, pytest.mark.helm]


@pytest.fixture(scope="module")
def value_set_namespaces(kubectl: Kubectl) -> None:
    for namespace in ("driftloop-system", "team-a", "team-b"):
        manifest = yaml.safe_dump(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        )
        kubectl("apply", "-f", "-", input=manifest)


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_rendered_chart_passes_server_side_dry_run(
    name: str, kubectl: Kubectl, value_set_namespaces: None
) -> None:
    objects = render(VALUE_SETS[name])
    # ServiceMonitors need the Prometheus Operator's CRD, which this cluster lacks.
    objects = [o for o in objects if o["kind"] != "ServiceMonitor"]
    result = kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "--dry-run=server",
        "--field-manager=driftloop-chart-test",
        "-f",
        "-",
        input=yaml.safe_dump_all(objects),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("(server dry run)") == len(objects)
