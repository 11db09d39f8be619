"""The lineage of one model as a tree of text lines (``kubectl driftloop status``).

Pure: it takes the objects as the API server returns them (plain dicts) and returns
text, so it is tested without a cluster.  The tree:

    Dataset -> TrainingRuns (on which version of it) -> ModelVersions (approval, metrics)
    Deployment -> serving / previous version, drift readings, last retraining
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Obj = Mapping[str, Any]


@dataclass
class Node:
    text: str
    children: list[Node] = field(default_factory=list)


def render(root: Node) -> str:
    """The tree drawn with box characters, one node per line."""
    lines: list[str] = []

    def walk(node: Node, prefix: str, last: bool, top: bool) -> None:
        if top:
            lines.append(node.text)
            child_prefix = ""
        else:
            lines.append(f"{prefix}{'└── ' if last else '├── '}{node.text}")
            child_prefix = prefix + ("    " if last else "│   ")
        for i, child in enumerate(node.children):
            walk(child, child_prefix, i == len(node.children) - 1, False)

    walk(root, "", True, True)
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- fields


def _name(obj: Obj) -> str:
    return str(obj["metadata"]["name"])


def _spec(obj: Obj) -> Mapping[str, Any]:
    return obj.get("spec") or {}


def _status(obj: Obj) -> Mapping[str, Any]:
    return obj.get("status") or {}


def _ready(obj: Obj) -> str:
    """``Ready`` or ``NotReady (<reason>)`` from the Ready condition; ``-`` without one."""
    for cond in _status(obj).get("conditions") or []:
        if cond.get("type") == "Ready":
            if cond.get("status") == "True":
                return "Ready"
            return f"NotReady ({cond.get('reason', '?')})"
    return "-"


def short_digest(digest: str | None) -> str:
    """``sha256:`` and the first 12 hex digits; ``-`` for none."""
    if not digest:
        return "-"
    algo, _, hexdigits = digest.partition(":")
    return f"{algo}:{hexdigits[:12]}" if hexdigits else digest[:19]


def metrics_text(metrics: Mapping[str, Any] | None) -> str:
    """``accuracy=0.967 f1_macro=0.96`` (sorted by name), or ``no metrics``."""
    if not metrics:
        return "no metrics"
    return " ".join(f"{k}={float(v):.4g}" for k, v in sorted(metrics.items()))


def _version_number(mv: Obj) -> int:
    return int(_spec(mv).get("version", 0))


def _created(obj: Obj) -> str:
    return str(obj["metadata"].get("creationTimestamp") or "")


# --------------------------------------------------------------------------- nodes


def _dataset_node(name: str, dataset: Obj | None) -> Node:
    if dataset is None:
        return Node(f"Dataset {name}  (not found)")
    status = _status(dataset)
    shape = ""
    if status.get("rows") is not None:
        shape = f"  {status['rows']} rows"
        if status.get("columns") is not None:
            shape += f" x {status['columns']} columns"
    source = _spec(dataset).get("source", "")
    return Node(
        f"Dataset {name}  {_ready(dataset)}  version {short_digest(status.get('version'))}"
        f"{shape}  source {source}"
    )


def _version_node(mv: Obj, serving_in: Mapping[str, list[str]]) -> Node:
    status = _status(mv)
    approval = status.get("approval") or "pending"
    reason = status.get("approvalReason")
    text = f"ModelVersion {_name(mv)}  v{_version_number(mv)}  {approval}"
    if reason:
        text += f" ({reason})"
    text += f"  {metrics_text(_spec(mv).get('metrics'))}"
    where = serving_in.get(_name(mv))
    if where:
        text += f"  <- serving in {', '.join(where)}"
    return Node(text)


def _run_node(
    run: Obj, dataset: Obj | None, versions: Sequence[Obj], serving_in: Mapping[str, list[str]]
) -> Node:
    status = _status(run)
    phase = status.get("phase") or "Pending"
    text = f"TrainingRun {_name(run)}  {phase}"
    if phase == "Failed" and status.get("failureReason"):
        text += f" ({status['failureReason']})"
    digest = status.get("datasetDigest")
    if digest:
        current = _status(dataset).get("version") if dataset is not None else None
        text += f"  on {short_digest(digest)}"
        if current and digest != current:
            text += " (an earlier version)"
    labels = run["metadata"].get("labels") or {}
    trigger, deployment = (
        labels.get("driftloop.dev/trigger"),
        labels.get("driftloop.dev/deployment"),
    )
    if trigger and deployment:
        text += f"  retraining of {deployment} ({trigger})"
    mine = versions_of(run, versions)
    return Node(text, [_version_node(mv, serving_in) for mv in mine])


def versions_of(run: Obj, versions: Sequence[Obj]) -> list[Obj]:
    """The ModelVersions ``run`` registered: by their lineage, or the run's own status."""
    produced = _status(run).get("modelVersion")
    return sorted(
        (
            mv
            for mv in versions
            if (_spec(mv).get("lineage") or {}).get("trainingRun") == _name(run)
            or _name(mv) == produced
        ),
        key=_version_number,
    )


def _deployment_node(dep: Obj) -> Node:
    status = _status(dep)
    serving = status.get("servingVersion")
    text = f"Deployment {_name(dep)}  {_ready(dep)}"
    children: list[Node] = []
    if serving is not None:
        text += f"  serving v{serving}"
        if status.get("servingModelVersion"):
            text += f" ({status['servingModelVersion']})"
    else:
        text += "  serving nothing yet"
    previous = status.get("previousVersion")
    text += f"  previous {f'v{previous}' if previous is not None else '-'}"
    desired = status.get("desiredVersion")
    if desired is not None and desired != serving:
        text += f"  rolling out v{desired}"
    if status.get("replicas") is not None:
        text += f"  {status.get('readyReplicas') or 0}/{status['replicas']} ready"
    if status.get("url"):
        children.append(Node(f"url {status['url']}"))
    readings = status.get("drift") or []
    if readings:
        for reading in readings:
            value = reading.get("value")
            shown = "no data" if value is None else f"{float(value):.4g}"
            line = (
                f"trigger {reading.get('trigger')}: {shown} (threshold {reading.get('threshold')})"
                f" at {reading.get('time')}"
            )
            if reading.get("firingSince"):
                line += f", beyond since {reading['firingSince']}"
            children.append(Node(line))
    else:
        children.append(Node("drift: no readings"))
    history = status.get("retrainHistory") or []
    if history:
        last = history[0]
        line = f"last retraining: {last.get('trainingRun')} ({last.get('trigger')}"
        if last.get("value") is not None:
            line += f", value {float(last['value']):.4g}"
        line += f") at {last.get('time')}"
        line += f" -> {last['outcome']}" if last.get("outcome") else " -> running"
        children.append(Node(line))
    else:
        children.append(Node("last retraining: none"))
    for record in status.get("rejectedVersions") or []:
        children.append(
            Node(
                f"refused v{record.get('version')}: {record.get('reason')} {record.get('message')}"
            )
        )
    return Node(text, children)


def lineage(
    model: str,
    namespace: str,
    datasets: Iterable[Obj],
    runs: Iterable[Obj],
    versions: Iterable[Obj],
    deployments: Iterable[Obj],
) -> Node:
    """The tree of ``model``: its Datasets with their runs and versions, then its Deployments.

    Only objects of ``model`` are shown: runs and versions whose ``spec.model`` is it,
    Deployments whose ``spec.model.name`` is it, and the Datasets those runs name.
    """
    runs = sorted((r for r in runs if _spec(r).get("model") == model), key=_created)
    versions = sorted((v for v in versions if _spec(v).get("model") == model), key=_version_number)
    deployments = sorted(
        (d for d in deployments if (_spec(d).get("model") or {}).get("name") == model), key=_name
    )
    by_dataset = {_name(d): d for d in datasets}
    serving_in: dict[str, list[str]] = {}
    for dep in deployments:
        if served := _status(dep).get("servingModelVersion"):
            serving_in.setdefault(str(served), []).append(f"Deployment {_name(dep)}")

    roots: list[Node] = []
    shown: set[str] = set()
    dataset_names = list(
        dict.fromkeys(str(_spec(r).get("datasetRef", {}).get("name")) for r in runs)
    )
    for name in dataset_names:
        dataset = by_dataset.get(name)
        node = _dataset_node(name, dataset)
        for run in runs:
            if _spec(run).get("datasetRef", {}).get("name") == name:
                node.children.append(_run_node(run, dataset, versions, serving_in))
                shown.update(_name(mv) for mv in versions_of(run, versions))
        roots.append(node)
    orphans = [mv for mv in versions if _name(mv) not in shown]
    if orphans:
        roots.append(
            Node(
                "ModelVersions whose TrainingRun is gone",
                [_version_node(mv, serving_in) for mv in orphans],
            )
        )
    roots.extend(_deployment_node(dep) for dep in deployments)
    if not roots:
        return Node(f"Model {model}  (namespace {namespace}): no objects of this model")
    return Node(f"Model {model}  (namespace {namespace})", roots)
