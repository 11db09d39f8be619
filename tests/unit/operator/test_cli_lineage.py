"""``kubectl driftloop status``: the lineage tree, rendered from plain objects (no cluster)."""

from __future__ import annotations

from typing import Any

from driftloop.cli.lineage import Node, lineage, metrics_text, render, short_digest

Obj = dict[str, Any]
D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


def obj(kind: str, name: str, spec: Obj, status: Obj | None = None, **meta: Any) -> Obj:
    return {
        "kind": kind,
        "metadata": {"name": name, "namespace": "ml", **meta},
        "spec": spec,
        "status": status or {},
    }


def ready(ok: bool = True, reason: str = "Serving") -> list[Obj]:
    return [{"type": "Ready", "status": "True" if ok else "False", "reason": reason}]


DATASET = obj(
    "Dataset",
    "iris",
    {"source": "/artifacts/data/iris.csv"},
    {"version": D2, "rows": 150, "columns": 5, "conditions": ready(reason="Validated")},
)
RUN1 = obj(
    "TrainingRun",
    "iris-rf",
    {"model": "iris", "datasetRef": {"name": "iris"}},
    {"phase": "Succeeded", "datasetDigest": D1, "modelVersion": "iris-v1"},
    creationTimestamp="2026-11-30T10:00:00Z",
)
RUN2 = obj(
    "TrainingRun",
    "iris-drift-5",
    {"model": "iris", "datasetRef": {"name": "iris"}},
    {"phase": "Succeeded", "datasetDigest": D2, "modelVersion": "iris-v2"},
    creationTimestamp="2026-11-30T11:00:00Z",
    labels={"driftloop.dev/trigger": "drift", "driftloop.dev/deployment": "iris"},
)
RUN3 = obj(
    "TrainingRun",
    "iris-manual-7",
    {"model": "iris", "datasetRef": {"name": "iris"}},
    {"phase": "Failed", "failureReason": "GatesFailed"},
    creationTimestamp="2026-11-30T12:00:00Z",
    labels={"driftloop.dev/trigger": "manual", "driftloop.dev/deployment": "iris"},
)


def version(n: int, run: str, approval: str, reason: str, accuracy: float) -> Obj:
    return obj(
        "ModelVersion",
        f"iris-v{n}",
        {
            "model": "iris",
            "version": n,
            "metrics": {"accuracy": accuracy, "f1_macro": 0.9},
            "lineage": {"trainingRun": run},
        },
        {"approval": approval, "approvalReason": reason},
    )


V1 = version(1, "iris-rf", "approved", "GatesPassed", 0.9667)
V2 = version(2, "iris-drift-5", "approved", "SetByUser", 0.98)
DEPLOYMENT = obj(
    "Deployment",
    "iris",
    {"model": {"name": "iris"}},
    {
        "servingVersion": 2,
        "servingModelVersion": "iris-v2",
        "previousVersion": 1,
        "desiredVersion": 2,
        "replicas": 2,
        "readyReplicas": 2,
        "url": "http://iris-predictor.ml.svc:8080/v2/models/iris",
        "conditions": ready(),
        "drift": [
            {"trigger": "drift", "value": 0.0312, "threshold": 0.1, "time": "2026-11-30T12:05:00Z"}
        ],
        "retrainHistory": [
            {
                "trainingRun": "iris-drift-5",
                "trigger": "drift",
                "value": 0.31,
                "time": "2026-11-30T11:00:00Z",
                "outcome": "registered iris-v2",
            }
        ],
    },
)

EXPECTED = """\
Model iris  (namespace ml)
├── Dataset iris  Ready  version sha256:222222222222  150 rows x 5 columns  source /artifacts/data/iris.csv
│   ├── TrainingRun iris-rf  Succeeded  on sha256:111111111111 (an earlier version)
│   │   └── ModelVersion iris-v1  v1  approved (GatesPassed)  accuracy=0.9667 f1_macro=0.9
│   ├── TrainingRun iris-drift-5  Succeeded  on sha256:222222222222  retraining of iris (drift)
│   │   └── ModelVersion iris-v2  v2  approved (SetByUser)  accuracy=0.98 f1_macro=0.9  <- serving in Deployment iris
│   └── TrainingRun iris-manual-7  Failed (GatesFailed)  retraining of iris (manual)
└── Deployment iris  Ready  serving v2 (iris-v2)  previous v1  2/2 ready
    ├── url http://iris-predictor.ml.svc:8080/v2/models/iris
    ├── trigger drift: 0.0312 (threshold 0.1) at 2026-11-30T12:05:00Z
    └── last retraining: iris-drift-5 (drift, value 0.31) at 2026-11-30T11:00:00Z -> registered iris-v2
"""  # noqa: E501


def test_the_whole_lineage_of_a_model() -> None:
    tree = lineage("iris", "ml", [DATASET], [RUN3, RUN2, RUN1], [V2, V1], [DEPLOYMENT])
    assert render(tree) == EXPECTED


def test_other_models_are_left_out() -> None:
    other_run = obj("TrainingRun", "wine-rf", {"model": "wine", "datasetRef": {"name": "wine"}})
    other_dep = obj("Deployment", "wine", {"model": {"name": "wine"}})
    tree = lineage("iris", "ml", [DATASET], [RUN1, other_run], [V1], [DEPLOYMENT, other_dep])
    text = render(tree)
    assert "wine" not in text
    assert "TrainingRun iris-rf" in text


def test_a_version_whose_run_is_gone_is_still_shown() -> None:
    tree = lineage("iris", "ml", [DATASET], [], [V1], [])
    assert render(tree) == (
        "Model iris  (namespace ml)\n"
        "└── ModelVersions whose TrainingRun is gone\n"
        "    └── ModelVersion iris-v1  v1  approved (GatesPassed)  accuracy=0.9667 f1_macro=0.9\n"
    )


def test_a_new_deployment_and_a_missing_dataset() -> None:
    run = obj("TrainingRun", "iris-rf", {"model": "iris", "datasetRef": {"name": "gone"}})
    dep = obj(
        "Deployment",
        "iris",
        {"model": {"name": "iris"}},
        {"conditions": ready(False, "NoApprovedVersion")},
    )
    assert render(lineage("iris", "ml", [], [run], [], [dep])) == (
        "Model iris  (namespace ml)\n"
        "├── Dataset gone  (not found)\n"
        "│   └── TrainingRun iris-rf  Pending\n"
        "└── Deployment iris  NotReady (NoApprovedVersion)  serving nothing yet  previous -\n"
        "    ├── drift: no readings\n"
        "    └── last retraining: none\n"
    )


def test_nothing_of_the_model() -> None:
    assert render(lineage("iris", "ml", [], [], [], [])) == (
        "Model iris  (namespace ml): no objects of this model\n"
    )


def test_a_rollout_in_progress_and_a_refused_version() -> None:
    dep = obj(
        "Deployment",
        "iris",
        {"model": {"name": "iris"}},
        {
            "servingVersion": 1,
            "desiredVersion": 2,
            "replicas": 1,
            "readyReplicas": 0,
            "rejectedVersions": [
                {"version": 3, "reason": "PromotionPolicy", "message": "accuracy too low"}
            ],
        },
    )
    text = render(lineage("iris", "ml", [], [], [], [dep]))
    assert "serving v1  previous -  rolling out v2  0/1 ready" in text
    assert "refused v3: PromotionPolicy accuracy too low" in text


def test_render_draws_nested_branches() -> None:
    tree = Node("a", [Node("b", [Node("c")]), Node("d")])
    assert render(tree) == "a\n├── b\n│   └── c\n└── d\n"


def test_small_formatters() -> None:
    assert short_digest(None) == "-"
    assert short_digest(D1) == "sha256:111111111111"
    assert metrics_text({}) == "no metrics"
    assert metrics_text({"b": 1, "a": 0.123456}) == "a=0.1235 b=1"
