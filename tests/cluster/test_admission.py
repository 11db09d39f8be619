"""What the runtime would refuse, the real API server refuses at admission.

The table is shared with the unit tests (driftloop_testkit.refusals): each object is
created with ``--dry-run=server`` (admission runs in full, nothing is stored) and must
be refused with the field and message named there.
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import pytest

from driftloop_testkit.cluster import Kubectl
from driftloop_testkit.driftloop import REPO
from driftloop_testkit.refusals import ADMISSION_REFUSALS, AdmissionRefusal

pytestmark = pytest.mark.cluster


def _apply_our_crds(kubectl: Kubectl) -> None:
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))


def _dry_run(
    kubectl: Kubectl, manifest: dict[str, Any], namespace: str, admitted: bool
) -> subprocess.CompletedProcess[str]:
    """``kubectl create --dry-run=server`` of ``manifest`` against this checkout's CRDs.

    On a shared cluster other test sessions apply their own CRDs, and the API server
    serves a changed schema a moment after it is stored: an answer other than the
    one expected is asked again (CRDs applied again) for a few seconds before it counts.
    """
    obj = {**manifest, "metadata": {**manifest["metadata"], "namespace": namespace}}
    deadline = time.monotonic() + 15
    while True:
        _apply_our_crds(kubectl)
        proc = kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(obj), check=False)
        if (proc.returncode == 0) == admitted or time.monotonic() > deadline:
            return proc
        time.sleep(1)


@pytest.mark.parametrize("case", ADMISSION_REFUSALS, ids=[c.name for c in ADMISSION_REFUSALS])
def test_refused_at_admission_with_its_message(
    case: AdmissionRefusal, crds: None, kubectl: Kubectl, namespace: str
) -> None:
    proc = _dry_run(kubectl, case.manifest, namespace, admitted=False)
    assert proc.returncode != 0, f"{case.name}: accepted"
    for text in case.server:
        assert text in proc.stderr, proc.stderr


@pytest.mark.parametrize("case", ADMISSION_REFUSALS, ids=[c.name for c in ADMISSION_REFUSALS])
def test_the_same_object_with_the_defect_put_right_is_admitted(
    case: AdmissionRefusal, crds: None, kubectl: Kubectl, namespace: str
) -> None:
    proc = _dry_run(kubectl, case.fixed, namespace, admitted=True)
    assert proc.returncode == 0, proc.stderr
