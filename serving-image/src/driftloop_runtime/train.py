"""``driftloop-runtime train`` and ``driftloop-runtime profile``."""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import driftloop_contract as contract
from driftloop_contract import (
    FeatureType,
    Metric,
    ProfileRequest,
    ProfileResult,
    Task,
    TrainRequest,
    TrainResult,
    ValidationRule,
)
from driftloop_runtime import __version__, artifacts, data, profile, store
from driftloop_runtime.errors import RuntimeFailureError, ValidationFailedError

log = logging.getLogger(__name__)


def _output_path(output_dir: str) -> str:
    """Where the output goes: an absolute local path, or an ``s3://`` prefix as given."""
    if store.is_remote(output_dir):
        return output_dir.rstrip("/")
    path = data.local_path(output_dir)
    if path is None:
        raise RuntimeFailureError(
            contract.REASON_INVALID_REQUEST,
            f"outputDir must be a local path, file:// or s3:// URI, got {output_dir!r}",
        )
    return os.path.abspath(path)


def _uri(location: str) -> str:
    return location if store.is_remote(location) else "file://" + location


def _scratch_dir() -> str:
    """Local scratch space (an emptyDir on /tmp in a pod: the root fs is read-only)."""
    path = os.environ.get(contract.ENV_SCRATCH_DIR) or tempfile.gettempdir()
    os.makedirs(path, exist_ok=True)
    return path


# --------------------------------------------------------------------------- #
# Estimator
# --------------------------------------------------------------------------- #


def make_estimator(name: str, hyperparameters: dict[str, Any], seed: int) -> tuple[Any, Task]:
    if name not in contract.ESTIMATORS:
        raise RuntimeFailureError(
            contract.REASON_UNKNOWN_ESTIMATOR,
            f"estimator {name!r} is not allowed; choose one of {sorted(contract.ESTIMATORS)}",
        )
    module_name, task = contract.ESTIMATORS[name]
    cls = getattr(importlib.import_module(module_name), name)
    params = inspect.signature(cls.__init__).parameters
    accepted = {p for p in params if p != "self"}
    unknown = sorted(set(hyperparameters) - accepted)
    if unknown:
        raise RuntimeFailureError(
            contract.REASON_INVALID_HYPERPARAMETERS,
            f"{name} has no hyperparameter(s) {unknown}; valid: {sorted(accepted)}",
        )
    hp = dict(hyperparameters)
    if "random_state" in accepted and "random_state" not in hp:
        hp["random_state"] = seed
    try:
        est = cls(**hp)
        est._validate_params()  # sklearn's own constraints (types, ranges, options)
    except (TypeError, ValueError) as exc:
        raise RuntimeFailureError(
            contract.REASON_INVALID_HYPERPARAMETERS, f"{name}: {exc}"
        ) from exc
    return est, task


def make_pipeline(estimator: Any, spec: contract.DatasetSpec, numeric_has_nan: bool) -> Any:
    """Pipeline taking the raw feature matrix (columns in spec order).

    Columns are selected by position so the model works on plain numpy arrays
    (fast to serve, and usable by any OIP v2 server such as MLServer).
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    cat_idx = [i for i, f in enumerate(spec.features) if f.type is FeatureType.categorical]
    num_idx = [i for i, f in enumerate(spec.features) if f.type is FeatureType.numeric]
    if not cat_idx and not numeric_has_nan:
        return Pipeline([("model", estimator)])
    transformers: list[tuple[str, Any, list[int]]] = []
    if num_idx:
        num: Any = SimpleImputer(strategy="median") if numeric_has_nan else "passthrough"
        transformers.append(("numeric", num, num_idx))
    if cat_idx:
        transformers.append(
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=float),
                cat_idx,
            )
        )
    return Pipeline(
        [("preprocess", ColumnTransformer(transformers, remainder="drop")), ("model", estimator)]
    )


# --------------------------------------------------------------------------- #
# Evaluation
# --------------------------------------------------------------------------- #


def evaluate(
    model: Any, task: Task, x_test: Any, y_test: Any, wanted: list[Metric]
) -> dict[str, float]:
    import numpy as np
    from sklearn import metrics as skm

    names = wanted or list(contract.METRICS_BY_TASK[task])
    bad = [m.value for m in names if m not in contract.METRICS_BY_TASK[task]]
    if bad:
        raise RuntimeFailureError(
            contract.REASON_INVALID_REQUEST,
            f"metric(s) {bad} do not apply to {task.value}; use "
            f"{[m.value for m in contract.METRICS_BY_TASK[task]]}",
        )
    pred = model.predict(x_test)
    out: dict[str, float] = {}
    for m in names:
        value: float | None
        if m is Metric.accuracy:
            value = float(skm.accuracy_score(y_test, pred))
        elif m is Metric.f1:
            value = float(skm.f1_score(y_test, pred, average="macro"))
        elif m is Metric.roc_auc:
            value = None
            if hasattr(model, "predict_proba"):
                try:
                    proba = model.predict_proba(x_test)
                    classes = list(model.classes_)
                    if len(classes) == 2:
                        value = float(skm.roc_auc_score(y_test, proba[:, 1]))
                    else:
                        value = float(
                            skm.roc_auc_score(y_test, proba, multi_class="ovr", labels=classes)
                        )
                except ValueError as exc:  # e.g. a class missing from the test split
                    log.warning("roc_auc not computed: %s", exc)
        elif m is Metric.r2:
            value = float(skm.r2_score(y_test, pred))
        elif m is Metric.mae:
            value = float(skm.mean_absolute_error(y_test, pred))
        else:
            value = float(np.sqrt(skm.mean_squared_error(y_test, pred)))
        if value is not None and math.isfinite(value):
            out[m.value] = round(value, 6)
    return out


def check_gates(scores: dict[str, float], gates: dict[str, float]) -> list[str]:
    failed: list[str] = []
    for name, bound in sorted(gates.items()):
        try:
            metric = Metric(name)
        except ValueError:
            raise RuntimeFailureError(
                contract.REASON_INVALID_REQUEST,
                f"minScores names unknown metric {name!r}; use {[m.value for m in Metric]}",
            ) from None
        value = scores.get(metric.value)
        if value is None:
            failed.append(f"{name}: not computed (required {bound})")
        elif metric in contract.LOWER_IS_BETTER and value > bound:
            failed.append(f"{name}: {value} > max {bound}")
        elif metric not in contract.LOWER_IS_BETTER and value < bound:
            failed.append(f"{name}: {value} < min {bound}")
    return failed


# --------------------------------------------------------------------------- #
# Commands
# --------------------------------------------------------------------------- #


def _verified_manifest(output_dir: str) -> dict[str, Any] | None:
    """The manifest of the valid set at ``output_dir``; None when there is none.

    On an object store a prefix without a manifest holds no version (a killed upload
    leaves exactly that); with a manifest, the files are fetched and checked as locally.
    """
    if not store.is_remote(output_dir):
        return artifacts.verify(output_dir, None) if os.path.isdir(output_dir) else None
    if store.read_manifest(output_dir) is None:
        return None
    with tempfile.TemporaryDirectory(prefix="driftloop-check-", dir=_scratch_dir()) as tmp:
        local = store.download_set(output_dir, Path(tmp) / "set")
        return artifacts.verify(local, None)


def existing_result(output_dir: str) -> TrainResult | None:
    """The result of an already published version (a retried Job pod), if valid."""
    try:
        manifest = _verified_manifest(output_dir)
        if manifest is None:
            return None
    except artifacts.ArtifactError as exc:
        raise RuntimeFailureError(
            contract.REASON_OUTPUT_CONFLICT,
            f"{output_dir} exists but is not a valid artifact set: {exc}",
        ) from exc
    stored = manifest.get("result")
    if not isinstance(stored, dict):
        raise RuntimeFailureError(
            contract.REASON_OUTPUT_CONFLICT, f"{output_dir}: manifest has no training result"
        )
    return TrainResult.model_validate(stored)


def train(req: TrainRequest) -> TrainResult:
    import numpy as np
    from sklearn.model_selection import train_test_split

    out_dir = _output_path(req.output_dir)
    done = existing_result(out_dir)
    if done is not None:
        log.info("%s already holds a valid version; reporting it", out_dir)
        return done

    started = time.monotonic()
    estimator, task = make_estimator(
        req.estimator, dict(req.hyperparameters), req.evaluation.random_state
    )
    loaded = data.load(req.dataset)
    frame = loaded.frame
    data.validate(req.dataset, frame)
    x, has_cat = data.feature_matrix(req.dataset, frame)
    x_arr: Any = x
    y_col = frame[req.dataset.target]
    if task is Task.regression:
        if not np.issubdtype(y_col.dtype, np.number):
            raise ValidationFailedError(
                ValidationRule.numeric_type,
                f"regression target {req.dataset.target!r} is not numeric",
                column=req.dataset.target,
            )
        y = y_col.to_numpy(dtype=np.float64)
    else:
        y = y_col.to_numpy()
        if y.dtype == object:
            y = y.astype(str)
        if len(np.unique(y)) < 2:
            raise ValidationFailedError(
                ValidationRule.target_classes,
                f"target {req.dataset.target!r} has fewer than 2 classes",
                column=req.dataset.target,
            )
    # Rows with a missing target cannot be used.
    keep = ~y_col.isna().to_numpy()
    x_arr, y = x_arr[keep], y[keep]

    num_idx = [i for i, f in enumerate(req.dataset.features) if f.type is FeatureType.numeric]
    numeric_has_nan = bool(
        num_idx and np.isnan(np.asarray(x_arr[:, num_idx], dtype=np.float64)).any()
    )
    model = make_pipeline(estimator, req.dataset, numeric_has_nan)

    ev = req.evaluation
    stratify = None
    if task is Task.classification:
        _, counts = np.unique(y, return_counts=True)
        if counts.min() >= 2:
            stratify = y
    try:
        x_train, x_test, y_train, y_test = train_test_split(
            x_arr, y, test_size=ev.test_size, random_state=ev.random_state, stratify=stratify
        )
    except ValueError as exc:
        raise ValidationFailedError(
            ValidationRule.min_rows, f"cannot split the data: {exc}"
        ) from exc
    try:
        model.fit(x_train, y_train)
    except (ValueError, TypeError) as exc:
        raise RuntimeFailureError(contract.REASON_TRAINING_FAILED, f"fit failed: {exc}") from exc
    scores = evaluate(model, task, x_test, y_test, list(ev.metrics))
    failed_gates = check_gates(scores, ev.min_scores)

    features = [(f.name, f.type is FeatureType.categorical) for f in req.dataset.features]
    rng = np.random.default_rng(ev.random_state)
    sample_idx = rng.choice(len(x_arr), 20000, replace=False) if len(x_arr) > 20000 else slice(None)
    preds = model.predict(x_arr[sample_idx])
    classes = [str(c) for c in model.classes_] if task is Task.classification else None
    prof = profile.build(features, x_arr, preds, classes, seed=ev.random_state)
    prof.update(
        {
            "task": task.value,
            "target": req.dataset.target,
            "datasetDigest": loaded.digest,
        }
    )

    remote = store.is_remote(out_dir)
    # Locally: a sibling of out_dir (same filesystem, for the rename); for an object
    # store: local scratch, uploaded once sealed.
    tmp = (
        Path(tempfile.mkdtemp(prefix="driftloop-train-", dir=_scratch_dir()))
        if remote
        else artifacts.staging_dir(out_dir)
    )
    try:
        model_path = tmp / contract.MODEL_FILE
        artifacts.dump_model(model, model_path)
        model_sha = artifacts.sha256_file(model_path)
        artifacts.write_json(tmp / contract.PROFILE_FILE, prof)
        artifacts.write_json(tmp / contract.METRICS_FILE, scores)
        result = TrainResult(
            ok=True,
            artifact_uri=_uri(out_dir),
            sha256=model_sha,
            dataset_digest=loaded.digest,
            rows=len(x_arr),
            task=task,
            metrics=scores,
            gates_passed=not failed_gates,
            failed_gates=failed_gates,
        )
        manifest = {
            "modelName": req.model_name,
            "task": task.value,
            "estimator": req.estimator,
            "hyperparameters": dict(req.hyperparameters),
            "features": [
                f.model_dump(by_alias=True, exclude_none=True) for f in req.dataset.features
            ],
            "target": req.dataset.target,
            "classes": classes,
            "hasCategorical": has_cat,
            "datasetDigest": loaded.digest,
            "runtimeVersion": __version__,
            "sklearnVersion": _sklearn_version(),
            "trainingSeconds": round(time.monotonic() - started, 3),
            "result": json.loads(result.model_dump_json(by_alias=True, exclude_none=True)),
        }
        if remote:
            # Object stores have no rename: upload under the final prefix, manifest
            # last (the commit marker; see driftloop_runtime.store).
            artifacts.seal(tmp, manifest)
            store.upload_set(tmp, out_dir)
            artifacts.discard(tmp)
        else:
            try:
                artifacts.publish(tmp, out_dir, manifest)
            except FileExistsError:
                artifacts.discard(tmp)
                done = existing_result(out_dir)
                if done is None:  # pragma: no cover - vanished again
                    raise RuntimeFailureError(
                        contract.REASON_OUTPUT_CONFLICT, f"{out_dir} appeared and vanished"
                    ) from None
                return done
    except BaseException:
        artifacts.discard(tmp)
        raise
    log.info(
        "trained %s (%s) on %d rows: %s -> %s",
        req.estimator,
        task.value,
        len(x_arr),
        scores,
        out_dir,
    )
    return result


def _sklearn_version() -> str:
    import sklearn

    return str(sklearn.__version__)


def run_profile(req: ProfileRequest) -> ProfileResult:
    out = _output_path(req.output_dir)
    loaded = data.load(req.dataset)
    frame = loaded.frame
    data.validate(req.dataset, frame, need_target=False)
    x, _ = data.feature_matrix(req.dataset, frame)
    features = [(f.name, f.type is FeatureType.categorical) for f in req.dataset.features]
    prof = profile.build(features, x)
    prof["datasetDigest"] = loaded.digest
    result = ProfileResult(
        ok=True,
        digest=loaded.digest,
        rows=len(frame),
        columns=len(frame.columns),
        profile_uri=_uri(store.join(out, contract.PROFILE_FILE)),
    )
    if store.is_remote(out):
        # One object, one PUT: atomic on every S3 implementation, so no marker is needed.
        with tempfile.TemporaryDirectory(prefix="driftloop-profile-", dir=_scratch_dir()) as d:
            local = Path(d) / contract.PROFILE_FILE
            artifacts.write_json(local, prof)
            store.put_file(local, store.join(out, contract.PROFILE_FILE))
        return result
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / contract.PROFILE_FILE
    tmp = out_dir / f".{contract.PROFILE_FILE}.tmp-{os.getpid()}"
    artifacts.write_json(tmp, prof)
    os.replace(tmp, target)
    return result
