"""Builders produce the expected child objects (golden YAML) and honour the contracts."""

from __future__ import annotations

import json
from typing import Any

import pytest

import driftloop_contract as contract
from driftloop import builders, naming
from driftloop.api import Autoscaling, DatasetSpec, DeploymentSpec, TrainingRunSpec
from driftloop.builders.serving import ServedVersion, server_config
from driftloop.config import OperatorConfig

from .conftest import Golden

CONFIG = OperatorConfig(runtime_image="driftloop/runtime:test", artifact_pvc="artifacts")
S3_CONFIG = OperatorConfig(
    runtime_image="driftloop/runtime:test",
    artifact_pvc="artifacts",
    artifact_s3_bucket="models",
    artifact_s3_endpoint="http://minio.storage:9000",
    artifact_s3_secret="driftloop-s3",
)
RUN = builders.Owner("TrainingRun", "iris-rf-1", "ml", "0f8e2a6c-1111-2222-3333-444455556666")
DEP = builders.Owner("Deployment", "iris", "ml", "9a9a9a9a-1111-2222-3333-444455556666")
DATASET = DatasetSpec.model_validate(
    {
        "source": "/artifacts/data/iris.csv",
        "features": [{"name": "sepal_length"}, {"name": "petal_width"}],
        "target": "species",
        "refreshInterval": "1h",
    }
)
RUN_SPEC = TrainingRunSpec.model_validate(
    {
        "model": "iris",
        "datasetRef": {"name": "iris"},
        "estimator": {"type": "RandomForestClassifier", "hyperparameters": {"n_estimators": 10}},
        "evaluation": {"minScores": {"accuracy": 0.8}},
        "resources": {"limits": {"cpu": 1, "memory": "1Gi"}},
    }
)
DEPLOY_SPEC = DeploymentSpec.model_validate(
    {"model": {"name": "iris"}, "replicas": 2, "monitoring": {"method": "ks"}}
)
SERVED = ServedVersion("iris-v3", "iris", 3, "file:///artifacts/models/iris/run-1", "ab" * 32)


def _container(manifest: dict[str, Any]) -> dict[str, Any]:
    return manifest["spec"]["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]


def _env(manifest: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in _container(manifest)["env"] if "value" in e}


def _secret_env(manifest: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in _container(manifest)["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }


def test_training_job_golden(golden: Golden) -> None:
    golden.check("training-job", builders.training_job(RUN, RUN_SPEC, DATASET, CONFIG))


def test_training_job_request_is_a_valid_train_request() -> None:
    job = builders.training_job(RUN, RUN_SPEC, DATASET, CONFIG)
    request = contract.TrainRequest.model_validate_json(_env(job)[contract.ENV_REQUEST])
    assert request.estimator == "RandomForestClassifier"
    assert request.hyperparameters == {"n_estimators": 10}
    assert request.output_dir == "/artifacts/models/iris/iris-rf-1-0f8e2a6c"
    assert request.dataset.source == DATASET.source
    assert request.evaluation.min_scores == {"accuracy": 0.8}


def test_training_job_is_owned_and_deterministic() -> None:
    job = builders.training_job(RUN, RUN_SPEC, DATASET, CONFIG)
    assert job["metadata"]["name"] == "iris-rf-1-train"
    assert job["metadata"]["ownerReferences"][0]["uid"] == RUN.uid
    assert job["metadata"]["labels"][naming.LABEL_MANAGED_BY] == "driftloop"
    assert job == builders.training_job(RUN, RUN_SPEC, DATASET, CONFIG)
    assert job["spec"]["backoffLimit"] == 1
    assert job["spec"]["activeDeadlineSeconds"] == 3600


def test_image_override() -> None:
    spec = RUN_SPEC.model_copy(update={"image": "registry.example/runtime:1"})
    assert _container(builders.training_job(RUN, spec, DATASET, CONFIG))["image"] == (
        "registry.example/runtime:1"
    )


def test_profile_job_golden(golden: Golden) -> None:
    owner = builders.Owner("Dataset", "iris", "ml", "d5d5d5d5-0000-0000-0000-000000000000")
    job = builders.profile_job(owner, DATASET, generation=2, refresh=5, config=CONFIG)
    golden.check("profile-job", job)
    request = contract.ProfileRequest.model_validate_json(_env(job)[contract.ENV_REQUEST])
    assert "refreshInterval" not in request.dataset.model_dump(by_alias=True)
    assert job["metadata"]["name"] == "iris-profile-g2-r5"


def test_predictor_golden(golden: Golden) -> None:
    golden.check(
        "predictor-deployment", builders.predictor_deployment(DEP, DEPLOY_SPEC, SERVED, CONFIG)
    )
    golden.check("predictor-service", builders.predictor_service(DEP))
    golden.check("service-monitor", builders.service_monitor(DEP))


def test_canary_predictor_golden(golden: Golden) -> None:
    """The candidate's own predictor: its name, its replicas, a selector of its own, and
    the labels the predictor's Service selects on."""
    canary = builders.predictor_deployment(
        DEP, DEPLOY_SPEC, SERVED, CONFIG, replicas=1, canary=True
    )
    golden.check("predictor-canary", canary)
    service = builders.predictor_service(DEP)
    pod_labels = canary["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    stable = builders.predictor_deployment(DEP, DEPLOY_SPEC, SERVED, CONFIG)
    assert canary["spec"]["selector"] != stable["spec"]["selector"]


def test_predictor_rolls_with_zero_unavailable() -> None:
    deployment = builders.predictor_deployment(DEP, DEPLOY_SPEC, SERVED, CONFIG)
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    # The selector must not mention the version, or a new version could not roll.
    assert naming.LABEL_MODEL_VERSION not in deployment["spec"]["selector"]["matchLabels"]
    env = _env(deployment)
    assert env[contract.ENV_ARTIFACT_SHA256] == SERVED.sha256
    assert env[contract.ENV_DRIFT_METHOD] == "ks"
    probe = _container(deployment)["readinessProbe"]["httpGet"]
    assert probe["path"] == contract.PATH_READY


def test_predictor_drift_row_budget_is_the_users_or_the_contracts() -> None:
    default = _env(builders.predictor_deployment(DEP, DEPLOY_SPEC, SERVED, CONFIG))
    assert default[contract.ENV_DRIFT_MAX_ROWS_PER_SECOND] == str(
        contract.DEFAULT_DRIFT_MAX_ROWS_PER_SECOND
    )
    spec = DEPLOY_SPEC.model_copy(
        update={
            "monitoring": DEPLOY_SPEC.monitoring.model_copy(update={"max_rows_per_second": 500})
        }
    )
    env = _env(builders.predictor_deployment(DEP, spec, SERVED, CONFIG))
    assert env[contract.ENV_DRIFT_MAX_ROWS_PER_SECOND] == "500"


def test_predictor_env_is_the_server_config() -> None:
    deployment = builders.predictor_deployment(DEP, DEPLOY_SPEC, SERVED, CONFIG)
    cfg = contract.ServerConfig.from_env(_env(deployment))
    assert cfg == server_config(DEP, DEPLOY_SPEC, SERVED)
    assert (cfg.model_name, cfg.model_version, cfg.artifact_uri) == (
        "iris",
        "3",
        SERVED.artifact_uri,
    )
    assert cfg.deployment == DEP.name
    assert cfg.workers == DEPLOY_SPEC.workers


S3_SERVED = ServedVersion(
    "iris-v3", "iris", 3, "s3://models/models/iris/iris-rf-1-0f8e2a6c", "ab" * 32
)
S3_DATASET = DATASET.model_copy(update={"source": "s3://data/iris.csv"})


def test_s3_training_job_golden(golden: Golden) -> None:
    golden.check("training-job-s3", builders.training_job(RUN, RUN_SPEC, S3_DATASET, S3_CONFIG))


def test_s3_profile_job_golden(golden: Golden) -> None:
    owner = builders.Owner("Dataset", "iris", "ml", "d5d5d5d5-0000-0000-0000-000000000000")
    job = builders.profile_job(owner, S3_DATASET, generation=2, refresh=5, config=S3_CONFIG)
    golden.check("profile-job-s3", job)
    request = contract.ProfileRequest.model_validate_json(_env(job)[contract.ENV_REQUEST])
    assert request.output_dir == "s3://models/datasets/iris-d5d5d5d5/g2-r5"


def test_s3_predictor_golden(golden: Golden) -> None:
    golden.check(
        "predictor-deployment-s3",
        builders.predictor_deployment(DEP, DEPLOY_SPEC, S3_SERVED, S3_CONFIG),
    )


def test_s3_jobs_write_under_the_bucket_with_credentials_from_the_secret() -> None:
    job = builders.training_job(RUN, RUN_SPEC, S3_DATASET, S3_CONFIG)
    request = contract.TrainRequest.model_validate_json(_env(job)[contract.ENV_REQUEST])
    assert request.output_dir == "s3://models/models/iris/iris-rf-1-0f8e2a6c"
    assert _env(job)[contract.ENV_S3_ENDPOINT] == "http://minio.storage:9000"
    assert _secret_env(job) == {
        key: {"name": "driftloop-s3", "key": key} for key in contract.S3_SECRET_KEYS
    }
    pod = job["spec"]["template"]["spec"]
    # No artifact volume: only the /tmp scratch emptyDir the runtime stages files in.
    assert [v["name"] for v in pod["volumes"]] == ["scratch"]
    assert [m["mountPath"] for m in _container(job)["volumeMounts"]] == [contract.SCRATCH_MOUNT]


def test_predictor_follows_the_served_artifact_not_the_mode() -> None:
    """A file:// version keeps its PVC after a switch to S3; an s3:// one needs none."""
    on_pvc = builders.predictor_deployment(DEP, DEPLOY_SPEC, SERVED, S3_CONFIG)
    assert "persistentVolumeClaim" in on_pvc["spec"]["template"]["spec"]["volumes"][0]
    assert contract.ENV_S3_ENDPOINT not in _env(on_pvc)
    assert not _secret_env(on_pvc)
    in_s3 = builders.predictor_deployment(DEP, DEPLOY_SPEC, S3_SERVED, S3_CONFIG)
    assert [v["name"] for v in in_s3["spec"]["template"]["spec"]["volumes"]] == ["scratch"]
    assert _env(in_s3)[contract.ENV_ARTIFACT_URI] == S3_SERVED.artifact_uri
    assert set(_secret_env(in_s3)) == set(contract.S3_SECRET_KEYS)


def test_predictor_finds_its_peers_through_its_service() -> None:
    """The pod's IP from the downward API; the seed only once the Service has a ClusterIP."""
    seeded = builders.predictor_deployment(
        DEP, DEPLOY_SPEC, SERVED, CONFIG, peers_seed="10.96.0.7:8080"
    )
    env = _container(seeded)["env"]
    assert {
        "name": contract.ENV_POD_IP,
        "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
    } in env
    assert _env(seeded)[contract.ENV_PEERS_SEED] == "10.96.0.7:8080"
    assert contract.ENV_PEERS_SEED not in _env(
        builders.predictor_deployment(DEP, DEPLOY_SPEC, SERVED, CONFIG)
    )
    assert builders.peers_seed({"spec": {"clusterIP": "10.96.0.7"}}) == "10.96.0.7:8080"
    assert builders.peers_seed({"spec": {"clusterIP": "fd00::7"}}) == "[fd00::7]:8080"
    assert builders.peers_seed({"spec": {"clusterIP": "None"}}) is None
    assert builders.peers_seed({"spec": {}}) is None


def test_pvc_mode_sets_no_s3_environment() -> None:
    for manifest in (
        builders.training_job(RUN, RUN_SPEC, DATASET, CONFIG),
        builders.predictor_deployment(DEP, DEPLOY_SPEC, SERVED, CONFIG),
    ):
        names = {e["name"] for e in _container(manifest)["env"]}
        assert not names & {contract.ENV_S3_ENDPOINT, *contract.S3_SECRET_KEYS}


@pytest.mark.parametrize(
    "manifest",
    [
        builders.training_job(RUN, RUN_SPEC, DATASET, CONFIG),
        builders.profile_job(builders.Owner("Dataset", "d", "ml", "u" * 36), DATASET, 1, 0, CONFIG),
        builders.predictor_deployment(DEP, DEPLOY_SPEC, SERVED, CONFIG),
        builders.training_job(RUN, RUN_SPEC, S3_DATASET, S3_CONFIG),
        builders.profile_job(
            builders.Owner("Dataset", "d", "ml", "u" * 36), S3_DATASET, 1, 0, S3_CONFIG
        ),
        builders.predictor_deployment(DEP, DEPLOY_SPEC, S3_SERVED, S3_CONFIG),
    ],
    ids=["training", "profiling", "serving", "training-s3", "profiling-s3", "serving-s3"],
)
def test_pods_meet_pod_security_restricted(manifest: dict[str, Any]) -> None:
    pod = manifest["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for volume in pod["volumes"]:
        assert set(volume) & {"persistentVolumeClaim", "emptyDir"}, "restricted volume types only"
    for container in pod["containers"]:
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["readOnlyRootFilesystem"] is True
        assert "privileged" not in sc


def test_model_version_has_no_owner_and_records_lineage() -> None:
    result = contract.TrainResult(
        ok=True,
        artifact_uri="file:///artifacts/models/iris/x",
        sha256="cd" * 32,
        dataset_digest="sha256:" + "ef" * 32,
        task=contract.Task.classification,
        metrics={"accuracy": 0.95},
        gates_passed=True,
    )
    mv = builders.model_version(RUN, RUN_SPEC, result, 4, "driftloop/runtime:test")
    assert mv["metadata"]["name"] == "iris-v4"
    assert "ownerReferences" not in mv["metadata"]
    assert mv["metadata"]["labels"][naming.LABEL_TRAINING_RUN_UID] == RUN.uid
    assert mv["spec"]["lineage"]["trainingRun"] == "iris-rf-1"
    assert mv["spec"]["artifact"]["format"] == "skops"
    assert json.loads(json.dumps(mv)) == mv


def test_retraining_run_name_is_per_window() -> None:
    assert DEPLOY_SPEC.retraining is None
    template = RUN_SPEC  # a TrainingRunSpec is a template plus a model
    run = builders.retraining_run(DEP, "iris", template, "drift", 1234)
    assert run["metadata"]["name"] == "iris-drift-1234"
    assert run["spec"]["model"] == "iris"
    assert run["metadata"]["ownerReferences"][0]["kind"] == "Deployment"


@pytest.mark.parametrize("parent", ["a", "x" * 63])
def test_child_names_fit_a_label(parent: str) -> None:
    name = naming.child_name(parent, "profile-g12-r345")
    assert len(name) <= 63
    assert name == naming.child_name(parent, "profile-g12-r345")


def test_predictor_hpa_golden_and_replicas_left_to_it(golden: Golden) -> None:
    spec = DEPLOY_SPEC.model_copy(
        update={
            "autoscaling": Autoscaling.model_validate(
                {"minReplicas": 2, "maxReplicas": 5, "targetCPUUtilization": 60}
            )
        }
    )
    hpa = builders.predictor_hpa(DEP, spec)
    assert hpa is not None
    golden.check("predictor-hpa", hpa)
    assert hpa["spec"]["scaleTargetRef"]["name"] == "iris-predictor"
    # the HPA owns the count: the applied predictor must not carry one to fight it
    assert "replicas" not in builders.predictor_deployment(DEP, spec, SERVED, CONFIG)["spec"]
    assert builders.predictor_deployment(DEP, DEPLOY_SPEC, SERVED, CONFIG)["spec"]["replicas"]
    assert builders.predictor_hpa(DEP, DEPLOY_SPEC) is None
    rps = spec.model_copy(
        update={
            "autoscaling": Autoscaling.model_validate(
                {"maxReplicas": 4, "targetRequestsPerSecond": 150.5}
            )
        }
    )
    rps_hpa = builders.predictor_hpa(DEP, rps)
    assert rps_hpa is not None
    (metric,) = rps_hpa["spec"]["metrics"]
    assert metric["pods"] == {
        "metric": {"name": "driftloop_inference_requests_per_second"},
        "target": {"type": "AverageValue", "averageValue": "150500m"},
    }
    default = builders.predictor_hpa(
        DEP,
        spec.model_copy(update={"autoscaling": Autoscaling.model_validate({"maxReplicas": 3})}),
    )
    assert default is not None
    assert default["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 80


def test_predictor_hpa_scale_down_window_only_when_set() -> None:
    def hpa_of(**extra: int) -> Any:
        spec = DEPLOY_SPEC.model_copy(
            update={"autoscaling": Autoscaling.model_validate({"maxReplicas": 3, **extra})}
        )
        hpa = builders.predictor_hpa(DEP, spec)
        assert hpa is not None
        return hpa["spec"]

    assert "behavior" not in hpa_of()  # the HPA's own default (300 s)
    assert hpa_of(scaleDownStabilizationSeconds=0)["behavior"] == {
        "scaleDown": {"stabilizationWindowSeconds": 0}
    }
