"""``driftloop-runtime train`` and ``driftloop-runtime profile``."""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import math
import os
import shutil
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
from driftloop_runtime import (
    __version__,
    artifacts,
    data,
    fairness,
    hgb,
    profile,
    scoring,
    snapshot,
    store,
    stream,
)
from driftloop_runtime.errors import RuntimeFailureError, ValidationFailedError
from driftloop_runtime.memory import release_free_memory, return_large_blocks

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


#: Estimators that split on a categorical feature's categories themselves
#: (``categorical_features``): given the categories as they are, they need no one-hot
#: columns, several times the size of the numeric features.
NATIVE_CATEGORICAL = frozenset({"HistGradientBoostingClassifier", "HistGradientBoostingRegressor"})


def native_categorical(name: str, estimator: Any, hyperparameters: Any, categories: int) -> bool:
    """Whether ``estimator`` takes the categorical features as they are: it can, the
    run does not set ``categorical_features`` itself, and no feature has more
    categories (``categories``: the largest count) than it has bins."""
    return (
        name in NATIVE_CATEGORICAL
        and "categorical_features" not in hyperparameters
        and categories <= int(estimator.get_params()["max_bins"])
    )


def make_pipeline(
    estimator: Any, spec: contract.DatasetSpec, numeric_has_nan: bool, native: bool = False
) -> Any:
    """Pipeline taking the raw feature matrix (columns in spec order).

    Columns are selected by position so the model works on plain numpy arrays
    (fast to serve, and usable by any OIP v2 server such as MLServer).  Categorical
    features are one-hot encoded, or, with ``native`` (see native_categorical), given
    to the estimator as categories (``categorical_features``): it encodes them as
    ordinals and splits on sets of them; an unseen category counts as missing.
    """
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    cat_idx = [i for i, f in enumerate(spec.features) if f.type is FeatureType.categorical]
    num_idx = [i for i, f in enumerate(spec.features) if f.type is FeatureType.numeric]
    if native and cat_idx:
        if not numeric_has_nan:
            mask = [i in cat_idx for i in range(len(spec.features))]
            estimator.set_params(categorical_features=mask)
            return Pipeline([("model", estimator)])
        # The imputer's output is numeric: the categories go beside it as ordinals.
        estimator.set_params(categorical_features=[False] * len(num_idx) + [True] * len(cat_idx))
        ordinal = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan)
        return Pipeline(
            [
                (
                    "preprocess",
                    ColumnTransformer(
                        [
                            # keep_empty_features: a numeric feature with no value
                            # stays (as zeros), so the categorical mask above fits.
                            (
                                "numeric",
                                SimpleImputer(strategy="median", keep_empty_features=True),
                                num_idx,
                            ),
                            ("categorical", ordinal, cat_idx),
                        ],
                        remainder="drop",
                    ),
                ),
                ("model", estimator),
            ]
        )
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


def _fit_served_model(
    estimator: Any,
    spec: contract.DatasetSpec,
    numeric_has_nan: bool,
    native: bool,
    encoding: hgb.Encoding | None,
    x_train: Any,
    y_train: Any,
    x_val: Any = None,
    y_val: Any = None,
) -> tuple[Any, Any]:
    """The served model (it takes the raw feature matrix: spec order, category
    strings), fitted, and what predicts the test rows as they were split.

    Without ``encoding``: make_pipeline's, fitted on the raw rows, and it predicts the
    raw test rows itself.  With it (see driftloop_runtime.hgb): hgb.pipeline's, whose
    estimator is fitted on the rows encoded by hgb.assemble (``x_val``: early
    stopping's validation rows, if any); the test rows are encoded already, so the
    estimator predicts them (what the served model answers for their raw values).
    """
    if encoding is None:
        model = make_pipeline(estimator, spec, numeric_has_nan, native)
        model.fit(x_train, y_train)
        return model, model
    model = hgb.pipeline(estimator, encoding)  # after hgb.assemble: it set the medians
    hgb.fit(estimator, x_train, y_train, x_val, y_val)
    return model, estimator


# --------------------------------------------------------------------------- #
# Evaluation
# --------------------------------------------------------------------------- #


def evaluate(
    model: Any, task: Task, x_test: Any, y_test: Any, wanted: list[Metric], pred: Any
) -> dict[str, float]:
    """The held-out metrics; ``pred``: the model's predictions of ``x_test`` (the
    per-group evaluation uses them too), ``model`` and ``x_test`` give roc_auc's scores."""
    from sklearn import metrics as skm

    names = wanted or list(contract.METRICS_BY_TASK[task])
    bad = [m.value for m in names if m not in contract.METRICS_BY_TASK[task]]
    if bad:
        raise RuntimeFailureError(
            contract.REASON_INVALID_REQUEST,
            f"metric(s) {bad} do not apply to {task.value}; use "
            f"{[m.value for m in contract.METRICS_BY_TASK[task]]}",
        )
    out: dict[str, float] = {}
    for m in names:
        value: float | None = None
        score = scoring.scorer(m)
        if score is not None:
            value = score(y_test, pred)
        elif hasattr(model, "predict_proba"):  # roc_auc: from the class probabilities
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
    return_large_blocks()
    estimator, task = make_estimator(
        req.estimator, dict(req.hyperparameters), req.evaluation.random_state
    )
    # Memory: the columns are read once, compactly (stream.training_data); from then
    # on rows are chosen by index and each full-size object is dropped as soon as
    # its successor exists, so what is alive during fit is the train and test rows
    # (one copy of the data) plus the estimator's own working copies.
    loaded, digest = _load_for_training(req, task)
    rows_read = loaded.rows
    x: Any = loaded.features
    y_col = loaded.target
    has_cat = loaded.has_categorical
    groups = loaded.groups
    del loaded
    release_free_memory()  # the batches' (Parquet: Arrow's pool keeps them)
    if req.sampling is not None and rows_read > req.sampling.max_rows:
        chosen = sample_rows(y_col, req, task)
        x, y_col = _take(x, chosen), y_col.iloc[chosen].reset_index(drop=True)
        groups = _take_groups(groups, chosen)
    if task is Task.regression:
        y = y_col.to_numpy(dtype=np.float64)
    else:
        y = y_col.to_numpy()
        if y.dtype == object:
            y = y.astype(str)
    # Rows with a missing target cannot be used.
    keep = ~y_col.isna().to_numpy()
    del y_col
    if not keep.all():
        x, y = _take(x, np.flatnonzero(keep)), y[keep]
        groups = _take_groups(groups, np.flatnonzero(keep))
    del keep
    rows = len(y)

    num_idx = [i for i, f in enumerate(req.dataset.features) if f.type is FeatureType.numeric]
    numeric_has_nan = any(bool(np.isnan(stream.column(x, j)).any()) for j in num_idx)
    categories = max(
        (len(x[j].cat.categories) for j in range(x.shape[1]) if j not in num_idx), default=0
    )
    native = native_categorical(req.estimator, estimator, req.hyperparameters, categories)
    # HistGradientBoosting*: fitted on rows encoded here (see driftloop_runtime.hgb);
    # the served model (_fit_served_model) encodes raw rows the same way.
    encoding = hgb.encoding(req.dataset, x, numeric_has_nan) if native else None

    ev = req.evaluation
    features = [(f.name, f.type is FeatureType.categorical) for f in req.dataset.features]
    # The reference profile of every row now, and the rows whose predictions it
    # profiles, so the full-size features can go before the fit.
    prof = profile.build(features, x, seed=ev.random_state)
    rng = np.random.default_rng(ev.random_state)
    sample_idx = rng.choice(rows, 20000, replace=False) if rows > 20000 else np.arange(rows)
    x_sample = _take(x, sample_idx)
    stratify = None
    if task is Task.classification:
        _, counts = np.unique(y, return_counts=True)
        if counts.min() >= 2:
            stratify = y
    try:
        # Row numbers, not the data: the same rows train_test_split(x, y) picks,
        # without its copies of x beside x.
        train_idx, test_idx = train_test_split(
            np.arange(rows), test_size=ev.test_size, random_state=ev.random_state, stratify=stratify
        )
    except ValueError as exc:
        raise ValidationFailedError(
            ValidationRule.min_rows, f"cannot split the data: {exc}"
        ) from exc
    test_groups = _take_groups(groups, test_idx)
    del stratify, groups
    try:
        # The rows to fit and test on, then the full-size data goes before the fit.
        x_val: Any = None
        y_val: Any = None
        if encoding is None:
            x_train, y_train = _take(x, train_idx), y[train_idx]
            x_test, y_test = _take(x, test_idx), y[test_idx]
            del x, y, train_idx, test_idx
        else:
            # Validation rows for early stopping split off here, not by the estimator.
            size = hgb.validation_size(estimator, len(train_idx))
            fit_idx, val_idx = (
                hgb.split_validation(
                    train_idx, y, size, task is Task.classification, ev.random_state
                )
                if size is not None
                else (train_idx, None)
            )
            splits = [fit_idx, test_idx] + ([val_idx] if val_idx is not None else [])
            encoded = hgb.assemble(x, encoding, splits, train_idx)
            x_train, x_test = encoded[0], encoded[1]
            x_val = encoded[2] if val_idx is not None else None
            y_train, y_test = y[fit_idx], y[test_idx]
            y_val = y[val_idx] if val_idx is not None else None
            # Row numbers too: 8 bytes a row (0.05x the numeric matrix of 20 features).
            del x, y, encoded, splits, train_idx, test_idx, fit_idx, val_idx
        release_free_memory()
        model, predictor = _fit_served_model(
            estimator,
            req.dataset,
            numeric_has_nan,
            native,
            encoding,
            x_train,
            y_train,
            x_val,
            y_val,
        )
        del x_val, y_val
    except (ValueError, TypeError) as exc:
        raise RuntimeFailureError(contract.REASON_TRAINING_FAILED, f"fit failed: {exc}") from exc
    del x_train, y_train
    pred = predictor.predict(x_test)
    scores = evaluate(predictor, task, x_test, y_test, list(ev.metrics), pred)
    failed_gates = check_gates(scores, ev.min_scores)
    classes = [str(c) for c in model.classes_] if task is Task.classification else None
    report = fairness.evaluate(
        task, y_test, pred, test_groups, list(ev.metrics), ev.fairness, classes
    )
    del x_test, y_test, pred, test_groups
    fairness_failed = any(f.failed_gates for f in report)

    preds = model.predict(x_sample)
    prof["prediction"] = profile.prediction_entry(preds, classes, ev.random_state)
    prof.update(
        {
            "task": task.value,
            "target": req.dataset.target,
            "datasetDigest": digest,
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
        if report:
            # Every group here; the result (a 4 KiB termination message) carries at
            # most MAX_REPORTED_GROUPS per feature, fewer if it must (dump_result).
            artifacts.write_json(
                tmp / contract.FAIRNESS_FILE,
                [f.model_dump(mode="json", by_alias=True, exclude_none=True) for f in report],
            )
        result = TrainResult(
            ok=True,
            artifact_uri=_uri(out_dir),
            sha256=model_sha,
            dataset_digest=digest,
            snapshot_uri=req.snapshot.uri if req.snapshot else None,
            rows=rows,
            task=task,
            metrics=scores,
            gates_passed=not failed_gates and not fairness_failed,
            failed_gates=failed_gates,
            fairness=contract.keep_groups(report, contract.MAX_REPORTED_GROUPS),
            library_versions=library_versions(),
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
            # The server reads them (and fairness.json's groups) to count live
            # predictions per group, binned as here.
            "sensitiveFeatures": [
                f.model_dump(by_alias=True, exclude_none=True)
                for f in req.dataset.sensitive_features
            ],
            "classes": classes,
            "hasCategorical": has_cat,
            "datasetDigest": digest,
            "runtimeVersion": __version__,
            "sklearnVersion": _sklearn_version(),
            "libraryVersions": library_versions(),
            "evaluation": {"testSize": ev.test_size, "randomState": ev.random_state},
            "rowsRead": rows_read,
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
        rows,
        scores,
        out_dir,
    )
    return result


def _sklearn_version() -> str:
    import sklearn

    return str(sklearn.__version__)


#: Distributions whose versions decide what a training run produces.
_LINEAGE_DISTRIBUTIONS = ("scikit-learn", "numpy", "scipy", "pandas", "pyarrow", "skops")


def library_versions() -> dict[str, str]:
    """Python's and the numeric libraries' versions, for a ModelVersion's lineage."""
    import platform
    from importlib import metadata

    versions = {"python": platform.python_version(), "driftloop-runtime": __version__}
    for name in _LINEAGE_DISTRIBUTIONS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def sample_rows(target: Any, req: TrainRequest, task: Task) -> Any:
    """The positions (ascending) of ``sampling.maxRows`` rows, given the target column,
    drawn with the evaluation seed (a rerun draws the same ones), each class keeping
    its share when stratified."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    assert req.sampling is not None
    seed, keep = req.evaluation.random_state, req.sampling.max_rows
    rows = np.arange(len(target))
    stratify = None
    if req.sampling.stratified and task is Task.classification:
        labels = target.astype(str).where(target.notna(), "")
        if labels.value_counts().min() >= 2:
            stratify = labels.to_numpy()
    if stratify is not None:
        chosen, _ = train_test_split(rows, train_size=keep, random_state=seed, stratify=stratify)
    else:
        chosen = np.random.default_rng(seed).choice(rows, keep, replace=False)
    log.info("sampled %d of %d rows (seed %d)", keep, len(target), seed)
    return np.sort(chosen)


def _take(features: Any, rows: Any) -> Any:
    """The given rows of a feature matrix or positional frame (a copy, renumbered)."""
    if hasattr(features, "iloc"):
        return features.iloc[rows].reset_index(drop=True)
    return features[rows]


def _take_groups(groups: dict[str, Any], rows: Any) -> dict[str, Any]:
    """The given rows of each sensitive feature's group labels."""
    return {name: labels[rows] for name, labels in groups.items()}


def _load_for_training(req: TrainRequest, task: Task) -> tuple[stream.TrainingData, str]:
    """The validated columns of a run and their digest: from the snapshot it names
    (verified), else the live source."""
    scratch = _scratch_dir()
    if req.snapshot is not None:
        staged, fmt = snapshot.fetch(req.snapshot, scratch)
        try:
            declared = req.dataset.format if req.dataset.format != "auto" else fmt
            fmt = data.staged_format(staged, declared)
            return stream.training_data(staged, fmt, req.dataset, task), staged.digest
        finally:
            if store.is_remote(req.snapshot.uri):  # a fetched copy; never the stored one
                shutil.rmtree(staged.directory, ignore_errors=True)
    staging = snapshot.staging_dir(None, scratch)
    try:
        staged = snapshot.stage(req.dataset.source, staging)
        fmt = data.staged_format(staged, req.dataset.format)
        return stream.training_data(staged, fmt, req.dataset, task), staged.digest
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def run_profile(req: ProfileRequest) -> ProfileResult:
    out = _output_path(req.output_dir)
    # Validate exactly the bytes that are kept: a copy staged beside the snapshots.
    staging = snapshot.staging_dir(req.snapshot_root, _scratch_dir())
    try:
        staged = snapshot.stage(req.dataset.source, staging)
        fmt = data.staged_format(staged, req.dataset.format)
        # One streamed pass: memory stays flat however many rows the source has.
        prof, rows, columns = stream.profile_staged(staged, fmt, req.dataset)
        prof["datasetDigest"] = staged.digest
        snapshot_uri = (
            snapshot.publish(staged, req.snapshot_root, fmt) if req.snapshot_root else None
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already when published
    result = ProfileResult(
        ok=True,
        digest=staged.digest,
        rows=rows,
        columns=columns,
        profile_uri=_uri(store.join(out, contract.PROFILE_FILE)),
        snapshot_uri=snapshot_uri,
    )
    if store.is_remote(out):
        # One object, one PUT: atomic on every S3 implementation, so no marker is needed.
        with tempfile.TemporaryDirectory(prefix="driftloop-profile-", dir=_scratch_dir()) as d:
            local = Path(d) / contract.PROFILE_FILE
            artifacts.write_json(local, prof)
            store.put_file(local, store.join(out, contract.PROFILE_FILE))
    else:
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / contract.PROFILE_FILE
        tmp = out_dir / f".{contract.PROFILE_FILE}.tmp-{os.getpid()}"
        artifacts.write_json(tmp, prof)
        os.replace(tmp, target)
    if req.superseded_profiles_root:
        _remove_superseded_profiles(_output_path(req.superseded_profiles_root), out)
    return result


def _remove_superseded_profiles(root: str, current: str) -> None:
    """Remove every entry under ``root`` but ``current`` (earlier versions' profiles).

    Only after the current profile is written, so the Dataset always has one.  Names
    starting with a dot are another writer's work in progress and are left alone.
    """
    keep = current.rstrip("/").rsplit("/", 1)[-1]  # directly under root (the request says)
    remote = store.is_remote(root)
    names = store.listdir(root) if remote else sorted(p.name for p in Path(root).iterdir())
    for name in names:
        if name == keep or name.startswith("."):
            continue
        if remote:
            store.delete_tree(store.join(root, name))
        elif (Path(root) / name).is_dir():
            shutil.rmtree(Path(root) / name)
        else:
            (Path(root) / name).unlink()
        log.info("removed the superseded profile %s", store.join(root, name))
