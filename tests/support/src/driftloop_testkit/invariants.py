"""What must hold of driftloop's objects whatever faults hit the operator, the API server,
Prometheus or the artifact store (tests/faults checks these after every fault).

Pure functions over plain objects (dicts as the API returns them), so each check has a
unit test feeding it a breaching input (tests/unit/testkit/test_invariants.py). A check
returns the :class:`Breach` es it found; :func:`check` runs them all over a
:class:`Snapshot` and :func:`report` formats them with the seed that replays the run.

Two kinds of checks: *always* (hold at any moment, even mid-fault) and *settled* (hold
once the operator has had time to act after the last fault: terminal phases, Ready,
observedGeneration current, the Deployment serving what its policy says).
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from driftloop.api._base import parse_duration

Obj = dict[str, Any]

LABEL_TRAINING_RUN_UID = "driftloop.dev/training-run-uid"
LABEL_DEPLOYMENT = "driftloop.dev/deployment"
LABEL_TRIGGER = "driftloop.dev/trigger"
LABEL_MODEL_VERSION = "driftloop.dev/model-version"
TERMINAL_RUN_PHASES = ("Succeeded", "Failed")
#: creationTimestamp has one-second resolution, and the operator's clock is not the
#: API server's: two runs of one trigger closer than cooldown minus this are a breach.
CLOCK_SLACK_SECONDS = 2.0


@dataclass(frozen=True)
class Breach:
    """One invariant broken: which, why, and the offending objects (kind/name)."""

    invariant: str
    message: str
    objects: tuple[str, ...] = ()


@dataclass
class Snapshot:
    """Everything the checks read, listed from one namespace."""

    datasets: list[Obj] = field(default_factory=list)
    runs: list[Obj] = field(default_factory=list)
    versions: list[Obj] = field(default_factory=list)
    deployments: list[Obj] = field(default_factory=list)
    jobs: list[Obj] = field(default_factory=list)  # batch/v1 Jobs
    predictors: list[Obj] = field(default_factory=list)  # apps/v1 Deployments

    def by_ref(self, ref: str) -> Obj | None:
        kind, _, name = ref.partition("/")
        pool = {
            "Dataset": self.datasets,
            "TrainingRun": self.runs,
            "ModelVersion": self.versions,
            "Deployment": self.deployments,
            "Job": self.jobs,
            "apps/Deployment": self.predictors,
        }.get(kind, [])
        return next((o for o in pool if _name(o) == name), None)


# ---------------------------------------------------------------------------
# small readers
# ---------------------------------------------------------------------------
def _name(obj: Obj) -> str:
    return str(obj["metadata"]["name"])


def _ref(kind: str, obj: Obj) -> str:
    return f"{kind}/{_name(obj)}"


def _status(obj: Obj) -> Obj:
    return obj.get("status") or {}


def _labels(obj: Obj) -> dict[str, str]:
    return obj["metadata"].get("labels") or {}


def condition(obj: Obj, type_: str = "Ready") -> Obj:
    for cond in _status(obj).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return {}


def _created(obj: Obj) -> datetime:
    return datetime.fromisoformat(obj["metadata"]["creationTimestamp"].replace("Z", "+00:00"))


def _live(objs: Iterable[Obj]) -> list[Obj]:
    """Objects not being deleted (a Terminating object is on its way out)."""
    return [o for o in objs if not o["metadata"].get("deletionTimestamp")]


# ---------------------------------------------------------------------------
# always
# ---------------------------------------------------------------------------
def no_duplicate_children(jobs: Sequence[Obj], versions: Sequence[Obj]) -> list[Breach]:
    """At most one Job per owner (a TrainingRun's training Job, a Dataset's profile Job of
    one generation/window has its own name) and one ModelVersion per TrainingRun."""
    breaches = []
    jobs_by_owner: dict[tuple[str, str], list[str]] = defaultdict(list)
    for job in jobs:
        component = _labels(job).get("app.kubernetes.io/component", "")
        for owner in job["metadata"].get("ownerReferences") or []:
            if owner.get("kind") == "TrainingRun":
                jobs_by_owner[(owner["uid"], component)].append(_name(job))
    for (uid, _), names in jobs_by_owner.items():
        if len(names) > 1:
            breaches.append(
                Breach(
                    "no-duplicates",
                    f"{len(names)} training Jobs for the TrainingRun with uid {uid}",
                    tuple(f"Job/{n}" for n in sorted(names)),
                )
            )
    by_run: dict[str, list[str]] = defaultdict(list)
    for mv in versions:
        run_uid = _labels(mv).get(LABEL_TRAINING_RUN_UID)
        if run_uid:
            by_run[run_uid].append(_name(mv))
    for uid, names in by_run.items():
        if len(names) > 1:
            breaches.append(
                Breach(
                    "no-duplicates",
                    f"{len(names)} ModelVersions registered for the TrainingRun with uid {uid}",
                    tuple(f"ModelVersion/{n}" for n in sorted(names)),
                )
            )
    return breaches


def versions_gap_free(versions: Sequence[Obj]) -> list[Breach]:
    """Per model: version numbers unique, 1..N without a gap, each named <model>-v<N>."""
    breaches = []
    by_model: dict[str, list[Obj]] = defaultdict(list)
    for mv in versions:
        by_model[mv["spec"]["model"]].append(mv)
        expected = f"{mv['spec']['model']}-v{mv['spec']['version']}"
        if _name(mv) != expected:
            breaches.append(
                Breach(
                    "versions-gap-free",
                    f"ModelVersion {_name(mv)} holds version {mv['spec']['version']} "
                    f"(expected the name {expected})",
                    (_ref("ModelVersion", mv),),
                )
            )
    for model, mvs in sorted(by_model.items()):
        numbers = sorted(int(mv["spec"]["version"]) for mv in mvs)
        if numbers != list(range(1, len(numbers) + 1)):
            breaches.append(
                Breach(
                    "versions-gap-free",
                    f"model {model} has versions {numbers}, not 1..{len(numbers)}",
                    tuple(_ref("ModelVersion", mv) for mv in mvs),
                )
            )
    return breaches


def runs_point_at_own_versions(runs: Sequence[Obj], versions: Sequence[Obj]) -> list[Breach]:
    """A run's status.modelVersion exists and was made by that run (lineage and uid label);
    no two runs share one; a Failed run has none; a version's run, if it still exists,
    names that version."""
    breaches = []
    by_name = {_name(mv): mv for mv in versions}
    claimed: dict[str, list[str]] = defaultdict(list)
    runs_by_name = {_name(r): r for r in runs}
    for run in runs:
        status = _status(run)
        mv_name = status.get("modelVersion")
        ref = _ref("TrainingRun", run)
        if status.get("phase") == "Failed" and mv_name:
            breaches.append(
                Breach("run-owns-version", f"Failed run names {mv_name}", (ref,)),
            )
        if not mv_name:
            continue
        claimed[mv_name].append(_name(run))
        mv = by_name.get(mv_name)
        if mv is None:
            breaches.append(
                Breach("run-owns-version", f"{ref} names {mv_name}, which does not exist", (ref,))
            )
            continue
        lineage = mv["spec"].get("lineage") or {}
        if (
            lineage.get("trainingRun") != _name(run)
            or _labels(mv).get(LABEL_TRAINING_RUN_UID) != run["metadata"]["uid"]
        ):
            breaches.append(
                Breach(
                    "run-owns-version",
                    f"{ref} names {mv_name}, made by {lineage.get('trainingRun')} "
                    f"(uid {_labels(mv).get(LABEL_TRAINING_RUN_UID)})",
                    (ref, _ref("ModelVersion", mv)),
                )
            )
    for mv_name, names in claimed.items():
        if len(names) > 1:
            breaches.append(
                Breach(
                    "run-owns-version",
                    f"{len(names)} runs name {mv_name}",
                    tuple(f"TrainingRun/{n}" for n in sorted(names)),
                )
            )
    for mv in versions:
        maker = runs_by_name.get((mv["spec"].get("lineage") or {}).get("trainingRun", ""))
        if maker is None or maker["metadata"]["uid"] != _labels(mv).get(LABEL_TRAINING_RUN_UID):
            continue  # hand-registered, or its run is gone
        if _status(maker).get("phase") == "Failed":
            breaches.append(
                Breach(
                    "run-owns-version",
                    f"{_ref('ModelVersion', mv)} was registered for a Failed run",
                    (_ref("TrainingRun", maker), _ref("ModelVersion", mv)),
                )
            )
    return breaches


def cooldown_respected(runs: Sequence[Obj], deployments: Sequence[Obj]) -> list[Breach]:
    """The runs each Deployment's triggers started are at least ``cooldown`` apart."""
    breaches = []
    for deployment in deployments:
        retraining = deployment["spec"].get("retraining") or {}
        cooldown = parse_duration(retraining.get("cooldown", "1h")).total_seconds()
        mine = sorted(
            (r for r in runs if _labels(r).get(LABEL_DEPLOYMENT) == _name(deployment)),
            key=_created,
        )
        for earlier, later in itertools.pairwise(mine):
            gap = (_created(later) - _created(earlier)).total_seconds()
            if gap < cooldown - CLOCK_SLACK_SECONDS:
                breaches.append(
                    Breach(
                        "cooldown",
                        f"{_ref('Deployment', deployment)} started two runs {gap:.0f}s apart "
                        f"(cooldown {cooldown:.0f}s)",
                        (_ref("TrainingRun", earlier), _ref("TrainingRun", later)),
                    )
                )
    return breaches


def served_version_approved(deployments: Sequence[Obj], versions: Sequence[Obj]) -> list[Breach]:
    """What a Deployment reports serving is an existing, approved ModelVersion."""
    breaches = []
    by_name = {_name(mv): mv for mv in versions}
    for deployment in deployments:
        serving = _status(deployment).get("servingModelVersion")
        if not serving:
            continue
        mv = by_name.get(serving)
        approval = _status(mv).get("approval") if mv else None
        if approval != "approved":
            breaches.append(
                Breach(
                    "served-approved",
                    f"{_ref('Deployment', deployment)} serves {serving}, whose approval is "
                    f"{approval!r}" + ("" if mv else " (it does not exist)"),
                    (_ref("Deployment", deployment), f"ModelVersion/{serving}"),
                )
            )
    return breaches


# ---------------------------------------------------------------------------
# settled
# ---------------------------------------------------------------------------
def expected_version(deployment: Obj, versions: Sequence[Obj]) -> int | None:
    """What the Deployment's model selector says it should serve: a pinned version, or the
    highest approved (latestApproved) / not refused (latest) version it has not rejected."""
    selector = deployment["spec"]["model"]
    mine = [mv for mv in versions if mv["spec"]["model"] == selector["name"]]
    if selector.get("version") is not None:
        return int(selector["version"])
    rejected = {int(r["version"]) for r in _status(deployment).get("rejectedVersions") or []}
    if selector.get("channel", "latestApproved") == "latestApproved":
        eligible = [mv for mv in mine if _status(mv).get("approval") == "approved"]
    else:
        eligible = [
            mv for mv in mine if _status(mv).get("approval") not in ("rejected", "archived")
        ]
    numbers = [int(mv["spec"]["version"]) for mv in eligible]
    return max((n for n in numbers if n not in rejected), default=None)


def deployments_converged(deployments: Sequence[Obj], versions: Sequence[Obj]) -> list[Breach]:
    """Each Deployment is Ready and serves what its policy says."""
    breaches = []
    for deployment in _live(deployments):
        want = expected_version(deployment, versions)
        serving = _status(deployment).get("servingVersion")
        ready = condition(deployment).get("status")
        if serving != want or ready != "True":
            breaches.append(
                Breach(
                    "converged",
                    f"{_ref('Deployment', deployment)} serves {serving} (Ready={ready}: "
                    f"{condition(deployment).get('message')}); its policy says {want}",
                    (_ref("Deployment", deployment),),
                )
            )
    return breaches


def runs_terminal(runs: Sequence[Obj]) -> list[Breach]:
    """Every TrainingRun has finished: Succeeded (with its version) or Failed."""
    return [
        Breach(
            "terminal",
            f"{_ref('TrainingRun', run)} is {_status(run).get('phase')!r}: "
            f"{condition(run).get('reason')}: {condition(run).get('message')}",
            (_ref("TrainingRun", run),),
        )
        for run in _live(runs)
        if _status(run).get("phase") not in TERMINAL_RUN_PHASES
        or (_status(run).get("phase") == "Succeeded" and not _status(run).get("modelVersion"))
    ]


def generations_observed(snapshot: Snapshot) -> list[Breach]:
    """Every object's status and conditions describe its current generation."""
    breaches = []
    for kind, objs in (
        ("Dataset", snapshot.datasets),
        ("TrainingRun", snapshot.runs),
        ("ModelVersion", snapshot.versions),
        ("Deployment", snapshot.deployments),
    ):
        for obj in _live(objs):
            generation = obj["metadata"].get("generation")
            stale = [
                c.get("type")
                for c in _status(obj).get("conditions") or []
                if c.get("observedGeneration") not in (None, generation)
            ]
            observed = _status(obj).get("observedGeneration")
            if observed != generation or stale:
                breaches.append(
                    Breach(
                        "observed-generation",
                        f"{_ref(kind, obj)} generation {generation}, observed {observed}"
                        + (f"; stale conditions {stale}" if stale else ""),
                        (_ref(kind, obj),),
                    )
                )
    return breaches


def ready_truthful(snapshot: Snapshot) -> list[Breach]:
    """Ready says what is so: a Dataset is Ready iff its phase is; a run iff it Succeeded;
    a Ready Deployment's predictor has every replica of the served version ready."""
    breaches = []
    for dataset in _live(snapshot.datasets):
        ready = condition(dataset).get("status") == "True"
        if ready != (_status(dataset).get("phase") == "Ready"):
            breaches.append(
                Breach(
                    "ready-truthful",
                    f"Dataset Ready={ready} in phase {_status(dataset).get('phase')}",
                    (_ref("Dataset", dataset),),
                )
            )
    for run in _live(snapshot.runs):
        ready = condition(run).get("status") == "True"
        if ready != (_status(run).get("phase") == "Succeeded"):
            breaches.append(
                Breach(
                    "ready-truthful",
                    f"TrainingRun Ready={ready} in phase {_status(run).get('phase')}",
                    (_ref("TrainingRun", run),),
                )
            )
    predictors = {_name(p): p for p in snapshot.predictors}
    for deployment in _live(snapshot.deployments):
        if condition(deployment).get("status") != "True":
            continue
        replicas = int(deployment["spec"].get("replicas", 1))
        predictor = next(
            (
                p
                for name, p in predictors.items()
                if _labels(p).get("app.kubernetes.io/instance") == _name(deployment)
                or name == f"{_name(deployment)}-predictor"
            ),
            None,
        )
        serving = str(_status(deployment).get("servingVersion"))
        if predictor is None:
            breaches.append(
                Breach(
                    "ready-truthful",
                    f"{_ref('Deployment', deployment)} is Ready without a predictor",
                    (_ref("Deployment", deployment),),
                )
            )
            continue
        template = predictor["spec"]["template"]["metadata"].get("labels") or {}
        pstatus = _status(predictor)
        if (
            template.get(LABEL_MODEL_VERSION) != serving
            or int(pstatus.get("readyReplicas") or 0) < replicas
            or int(pstatus.get("updatedReplicas") or 0) < replicas
            or pstatus.get("observedGeneration") != predictor["metadata"].get("generation")
        ):
            breaches.append(
                Breach(
                    "ready-truthful",
                    f"{_ref('Deployment', deployment)} is Ready serving version {serving}, but "
                    f"its predictor runs version {template.get(LABEL_MODEL_VERSION)} with "
                    f"{pstatus.get('readyReplicas')}/{replicas} ready, "
                    f"{pstatus.get('updatedReplicas')} updated",
                    (_ref("Deployment", deployment), _ref("apps/Deployment", predictor)),
                )
            )
    return breaches


def outage_named(obj: Obj | None, type_: str, reasons: Iterable[str]) -> list[Breach]:
    """While an outage lasts, ``obj``'s ``type_`` condition is not True and names it: one
    of ``reasons``, with a message."""
    allowed = sorted(reasons)
    if obj is None:
        return [Breach("outage-named", f"no object to carry the {type_} condition")]
    cond = condition(obj, type_)
    if cond.get("status") == "True" or cond.get("reason") not in allowed or not cond.get("message"):
        return [
            Breach(
                "outage-named",
                f"{type_} is {cond.get('status')}/{cond.get('reason')}: "
                f"{cond.get('message')!r}; expected one of {allowed} with a message",
                (f"{obj.get('kind', '?')}/{_name(obj)}",),
            )
        ]
    return []


# ---------------------------------------------------------------------------
# all together
# ---------------------------------------------------------------------------
def check_always(snapshot: Snapshot) -> list[Breach]:
    """The invariants that hold at every moment, mid-fault included."""
    return [
        *no_duplicate_children(snapshot.jobs, snapshot.versions),
        *versions_gap_free(snapshot.versions),
        *runs_point_at_own_versions(snapshot.runs, snapshot.versions),
        *cooldown_respected(snapshot.runs, snapshot.deployments),
        *served_version_approved(snapshot.deployments, snapshot.versions),
    ]


def check_settled(snapshot: Snapshot) -> list[Breach]:
    """:func:`check_always` plus what must hold once the operator caught up."""
    return [
        *check_always(snapshot),
        *runs_terminal(snapshot.runs),
        *deployments_converged(snapshot.deployments, snapshot.versions),
        *generations_observed(snapshot),
        *ready_truthful(snapshot),
    ]


def report(breaches: Sequence[Breach], snapshot: Snapshot, seed: int | str, when: str) -> str:
    """A failure message: the seed to replay, each breach, and the offending objects."""
    lines = [f"{len(breaches)} invariant breach(es) {when} (replay: DRIFTLOOP_FAULT_SEED={seed}):"]
    refs: list[str] = []
    for breach in breaches:
        lines.append(f"  [{breach.invariant}] {breach.message}")
        refs.extend(r for r in breach.objects if r not in refs)
    for ref in refs:
        obj = snapshot.by_ref(ref)
        if obj is not None:
            shown = {
                "metadata": {
                    k: obj["metadata"].get(k)
                    for k in ("name", "uid", "generation", "creationTimestamp", "labels")
                },
                "status": obj.get("status"),
            }
            lines.append(f"--- {ref}\n{json.dumps(shown, indent=1, default=str)[:3000]}")
    return "\n".join(lines)
