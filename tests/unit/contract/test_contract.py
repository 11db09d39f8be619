"""driftloop_contract: the wire names stay put and ServerConfig round-trips its env."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

import driftloop_contract as contract
from driftloop_contract import DriftMethod, ServerConfig
from driftloop_testkit.imports import loaded_packages

#: The env of a predictor pod, in the order the operator writes it (the goldens' order).
OPERATOR_ENV = {
    "DRIFTLOOP_MODEL_NAME": "iris",
    "DRIFTLOOP_MODEL_VERSION": "3",
    "DRIFTLOOP_ARTIFACT_URI": "file:///artifacts/models/iris/run-1",
    "DRIFTLOOP_ARTIFACT_SHA256": "ab" * 32,
    "DRIFTLOOP_DEPLOYMENT": "iris-dep",
    "DRIFTLOOP_DRIFT_METHOD": "ks",
    "DRIFTLOOP_DRIFT_WINDOW": "1000",
    "DRIFTLOOP_WORKERS": "2",
    "DRIFTLOOP_PORT": "8080",
    "DRIFTLOOP_SCRATCH_DIR": "/tmp",
}


def test_imports_pydantic_only() -> None:
    forbidden = {"kopf", "kubernetes", "sklearn", "pandas", "numpy", "driftloop"}
    assert not loaded_packages("driftloop_contract") & (forbidden | {"driftloop_runtime"})


def test_every_public_name_is_exported() -> None:
    assert sorted(contract.__all__) == sorted(set(contract.__all__))
    for name in contract.__all__:
        assert hasattr(contract, name), name


def test_env_names_are_distinct() -> None:
    names = [getattr(contract, n) for n in contract.__all__ if n.startswith("ENV_")]
    assert len(names) == len(set(names))
    aliases = [f.alias for f in ServerConfig.model_fields.values()]
    assert None not in aliases
    assert set(aliases) <= set(names)


def test_metric_names_are_prometheus_names() -> None:
    names = [getattr(contract, n) for n in contract.__all__ if n.startswith("METRIC_")]
    assert len(names) == len(set(names)) == 30
    assert all(n.startswith("driftloop_") for n in names)


def test_server_config_reads_the_operator_env() -> None:
    cfg = ServerConfig.from_env(OPERATOR_ENV)
    assert cfg.model_name == "iris"
    assert cfg.drift_method is DriftMethod.ks
    assert (cfg.drift_window, cfg.workers, cfg.port) == (1000, 2, 8080)
    # Not set by the operator: the runtime's defaults.
    assert cfg.drift_enabled is True
    assert cfg.max_request_bytes == contract.DEFAULT_MAX_REQUEST_BYTES
    assert cfg.host == contract.DEFAULT_HOST


def test_to_env_round_trips_in_field_order() -> None:
    env = ServerConfig.from_env({**OPERATOR_ENV, "UNRELATED": "x"}).to_env()
    assert list(env.items()) == list(OPERATOR_ENV.items())


def test_to_env_renders_only_what_was_set() -> None:
    cfg = ServerConfig(model_name="m", artifact_uri="/a", drift_enabled=False, workers=3)
    assert cfg.to_env() == {
        "DRIFTLOOP_MODEL_NAME": "m",
        "DRIFTLOOP_ARTIFACT_URI": "/a",
        "DRIFTLOOP_DEPLOYMENT": "m",
        "DRIFTLOOP_WORKERS": "3",
        "DRIFTLOOP_DRIFT_ENABLED": "false",
    }
    assert ServerConfig.from_env(cfg.to_env()) == cfg


def test_minimal_env_gets_the_defaults() -> None:
    cfg = ServerConfig.from_env(
        {
            "DRIFTLOOP_MODEL_NAME": "m",
            "DRIFTLOOP_ARTIFACT_URI": "s3://bucket/models/m",
            "DRIFTLOOP_DEPLOYMENT": "",  # empty counts as unset
            "DRIFTLOOP_ARTIFACT_SHA256": "",
        }
    )
    assert cfg.model_version == "1"
    assert cfg.deployment == "m"
    assert cfg.artifact_sha256 is None
    assert cfg.drift_method is contract.DEFAULT_DRIFT_METHOD
    assert cfg.drift_window == contract.DEFAULT_DRIFT_WINDOW
    assert cfg.workers == contract.DEFAULT_WORKERS
    assert cfg.port == contract.SERVING_PORT
    assert cfg.scratch_dir == contract.SCRATCH_MOUNT


@pytest.mark.parametrize(
    ("text", "enabled"),
    [("false", False), ("0", False), (" Off ", False), ("no", False), ("true", True), ("x", True)],
)
def test_drift_is_on_unless_switched_off(text: str, enabled: bool) -> None:
    env = {**OPERATOR_ENV, contract.ENV_DRIFT_ENABLED: text}
    assert ServerConfig.from_env(env).drift_enabled is enabled


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (contract.ENV_MODEL_NAME, ""),
        (contract.ENV_ARTIFACT_URI, ""),
        (contract.ENV_ARTIFACT_URI, "relative/dir"),
        (contract.ENV_ARTIFACT_URI, "s3://"),
        (contract.ENV_ARTIFACT_URI, "https://example.com/model"),
        (contract.ENV_DRIFT_METHOD, "entropy"),
        (contract.ENV_DRIFT_WINDOW, "many"),
        (contract.ENV_WORKERS, "0"),
        (contract.ENV_PORT, "70000"),
    ],
)
def test_bad_env_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ValidationError) as err:
        ServerConfig.from_env({**OPERATOR_ENV, name: value})
    assert {e["loc"][0] for e in err.value.errors()} == {name}


def test_dump_result_fits_the_termination_message() -> None:
    result = contract.TrainResult(ok=False, reason="TrainingFailed", message="x" * 10_000)
    text = contract.dump_result(result)
    assert len(text.encode()) <= contract.TERMINATION_MESSAGE_LIMIT
    assert contract.TrainResult.model_validate_json(text).reason == "TrainingFailed"
