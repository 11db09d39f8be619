"""Pure shadow-promotion policy: the PromQL that measures a shadowing candidate, and the
verdict on what it returns.

The serving pods count, per candidate version, the rows they compared with the
shadow's answers and those that agreed (``driftloop_shadow_*_rows_total``); the
candidate's own pods count the requests they answered by status code.  Summed over
pods in PromQL, one window gives agreement, rows and the candidate's error share.
"""

from __future__ import annotations

from dataclasses import dataclass

import driftloop_contract as contract
from driftloop.api import ShadowAnalysis

#: Promoted reasons while a candidate shadows (Promoted=Unknown) ...
SHADOW_STARTING = "ShadowStarting"
SHADOWING = "Shadowing"
AWAITING_TRAFFIC = "AwaitingTraffic"
NO_PROMETHEUS = "NoPrometheus"
#: ... its verdict: promoted ...
SHADOW_AGREES = "ShadowAgrees"
#: ... or refused (recorded in status.rejectedVersions like a policy refusal).
SHADOW_DISAGREES = "ShadowDisagrees"
SHADOW_UNHEALTHY = "ShadowUnhealthy"


def _selector(namespace: str, deployment: str) -> str:
    return f'namespace="{namespace}",deployment="{deployment}"'


def agreement_query(namespace: str, deployment: str, version: int, window: str) -> str:
    """Share of compared rows that agreed, over all serving pods, in ``window``."""
    sel = f'{_selector(namespace, deployment)},shadow_version="{version}"'
    agreed = f"sum(increase({contract.METRIC_SHADOW_AGREED_ROWS}{{{sel}}}[{window}]))"
    return f"{agreed} / {compared_query(namespace, deployment, version, window)}"


def compared_query(namespace: str, deployment: str, version: int, window: str) -> str:
    sel = f'{_selector(namespace, deployment)},shadow_version="{version}"'
    return f"sum(increase({contract.METRIC_SHADOW_COMPARED_ROWS}{{{sel}}}[{window}]))"


def error_ratio_query(namespace: str, deployment: str, version: int, window: str) -> str:
    """The candidate's share of requests not answered 200 (none failed: 0)."""
    sel = f'{_selector(namespace, deployment)},version="{version}"'
    total = f"sum(increase({contract.METRIC_REQUESTS}{{{sel}}}[{window}]))"
    failed = f'sum(increase({contract.METRIC_REQUESTS}{{{sel},code!="200"}}[{window}]))'
    return f"({failed} or vector(0)) / {total}"


@dataclass(frozen=True)
class Verdict:
    #: True: promote; False: refuse; None: not enough to judge yet.
    passed: bool | None
    reason: str
    message: str


def judge(
    analysis: ShadowAnalysis,
    version: int,
    agreement: float | None,
    rows: float | None,
    error_ratio: float | None,
) -> Verdict:
    """The verdict on one window of a shadowing candidate."""
    if rows is None or rows < analysis.min_rows or agreement is None or error_ratio is None:
        seen = 0 if rows is None else int(rows)
        return Verdict(
            None,
            AWAITING_TRAFFIC,
            f"version {version}: {seen} rows compared in the window, "
            f"{analysis.min_rows} needed to judge",
        )
    measured = (
        f"agreement {agreement:.3f} over {int(rows)} rows (min {analysis.min_agreement:g}), "
        f"error ratio {error_ratio:.3f} (max {analysis.max_error_ratio:g})"
    )
    if error_ratio > analysis.max_error_ratio:
        return Verdict(False, SHADOW_UNHEALTHY, f"version {version} shadow unhealthy: {measured}")
    if agreement < analysis.min_agreement:
        return Verdict(False, SHADOW_DISAGREES, f"version {version} disagrees: {measured}")
    return Verdict(True, SHADOW_AGREES, f"version {version} agrees: {measured}")
