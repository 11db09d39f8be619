"""One loaded model version: request decoding, prediction, drift bookkeeping.

Pure logic without HTTP, so it is easy to test.  ``InputError`` means the client
sent something wrong (HTTP 4xx); anything else is a server error.
"""

from __future__ import annotations

import itertools
import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

import driftloop_contract as contract
from driftloop_contract import ServerConfig, Task
from driftloop_runtime import artifacts, calibration, drift, fastpath
from driftloop_runtime.data import MISSING_CATEGORY
from driftloop_runtime.shared import RequestSampler, RowBuffer, SharedState, id_hash

log = logging.getLogger(__name__)

NUMERIC_TYPES = frozenset(
    {
        "FP16",
        "FP32",
        "FP64",
        "INT8",
        "INT16",
        "INT32",
        "INT64",
        "UINT8",
        "UINT16",
        "UINT32",
        "UINT64",
    }
)
INT_TYPES = frozenset(t for t in NUMERIC_TYPES if "INT" in t)
KNOWN_TYPES = NUMERIC_TYPES | {"BYTES", "BOOL"}
OUTPUT_PREDICT = "predict"
OUTPUT_PROBA = "predict_proba"


class InputError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Feature:
    name: str
    categorical: bool
    index: int
    codes: dict[str, int] = field(default_factory=dict)  # categorical only
    profile: dict[str, Any] = field(default_factory=dict)


class LoadedModel:
    """A verified, loaded artifact plus everything needed to serve it."""

    def __init__(self, cfg: ServerConfig, directory: str | Path) -> None:
        """Load the artifact set in ``directory`` (the local copy of cfg.artifact_uri)."""
        self.cfg = cfg
        d = Path(directory)
        self.manifest = artifacts.verify(d, cfg.artifact_sha256)
        if not cfg.artifact_sha256:
            log.warning(
                "%s not set: verified the artifact against its manifest only",
                contract.ENV_ARTIFACT_SHA256,
            )
        self.model = artifacts.load_model(d / contract.MODEL_FILE)
        with open(d / contract.PROFILE_FILE, "rb") as fh:
            self.profile: dict[str, Any] = orjson.loads(fh.read())
        self.task = Task(self.manifest.get("task") or self.profile.get("task"))
        prof_by_name = {p["name"]: p for p in self.profile.get("features", [])}
        self.features: list[Feature] = []
        for i, spec in enumerate(self.manifest["features"]):
            cat = spec.get("type") == contract.FeatureType.categorical.value
            prof = prof_by_name.get(spec["name"], {})
            codes = {c: k for k, c in enumerate(prof.get("categories", []))} if cat else {}
            self.features.append(Feature(spec["name"], cat, i, codes, prof))
        self.by_name = {f.name: f for f in self.features}
        self.n_features = len(self.features)
        self.has_categorical = any(f.categorical for f in self.features)
        self.cat_features = [f for f in self.features if f.categorical]
        self.num_index = np.array([f.index for f in self.features if not f.categorical], dtype=int)
        self.classes: npt.NDArray[Any] | None = (
            np.asarray(self.model.classes_) if self.task is Task.classification else None
        )
        if self.classes is not None:
            k = self.classes.dtype.kind
            self.output_datatype = (
                "INT64" if k in "iu" else "FP64" if k == "f" else ("BOOL" if k == "b" else "BYTES")
            )
        else:
            self.output_datatype = "FP64"
        self.pred_profile: dict[str, Any] = self.profile.get("prediction", {})
        #: The reference bins every pod counts live rows into (pooled drift).
        self.bins = drift.BinLayout.from_profile(
            [(f.name, f.categorical, f.profile) for f in self.features],
            contract.MAX_EXPORTED_BINS,
        )
        #: Calibrated threshold of each feature's drift score for this pod's window and
        #: false-alarm rate (empty: no calibration for the method or in the profile).
        self.drift_thresholds = calibration.thresholds(
            self.profile,
            cfg.drift_method,
            cfg.drift_window,
            cfg.drift_false_alarm_rate,
            [f.name for f in self.features],
        )
        self.reference_rows = int(self.profile.get("rows") or 0)
        from driftloop_runtime.groups import GroupMonitor  # it raises this module's InputError

        #: The sensitive features whose groups live traffic is counted by (None: none).
        self.groups = GroupMonitor.load(d, self.manifest, {f.name: f.index for f in self.features})
        self.shared: SharedState | None = None
        self.buffer: RowBuffer | None = None
        self._ids = itertools.count()
        self._id_prefix = uuid.uuid4().hex[:12]
        #: The model's predict without scikit-learn's per-call checks (decode has checked
        #: the input), when it covers the estimator and agreed with it on probe rows.
        self._compiled: fastpath.Predict | None = None
        if not self.has_categorical:
            self._compiled = fastpath.compile_verified(
                self.model, fastpath.probe_rows([f.profile for f in self.features])
            )
        log.info(
            "predict: %s",
            "compiled (exact, verified at load)" if self._compiled else "scikit-learn's",
        )
        # warm up (first predict imports lazily-loaded modules)
        self.predict(self.example_input())

    # ----------------------------------------------------------------- io
    def example_input(self) -> Any:
        if not self.has_categorical:
            return np.zeros((1, self.n_features))
        x = np.empty((1, self.n_features), dtype=object)
        for f in self.features:
            x[0, f.index] = next(iter(f.codes), MISSING_CATEGORY) if f.categorical else 0.0
        return x

    def attach(self, shared: SharedState | None) -> None:
        self.shared = shared if self.cfg.drift_enabled else None
        self.buffer = (
            RowBuffer(
                self.shared,
                self.encode_categorical if self.has_categorical else None,
                self.bins.counts if self.shared.bins == self.bins.total else None,
                sampler=RequestSampler(self.cfg.drift_max_rows_per_second / self.cfg.workers),
            )
            if self.shared is not None
            else None
        )

    def flush(self) -> None:
        if self.buffer is not None:
            self.buffer.flush()

    def new_id(self) -> str:
        return f"{self._id_prefix}-{os.getpid()}-{next(self._ids)}"

    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "name": self.cfg.model_name,
            "versions": [self.cfg.model_version],
            "platform": "sklearn",
            "inputs": [
                {"name": f.name, "datatype": "BYTES" if f.categorical else "FP64", "shape": [-1]}
                for f in self.features
            ],
            "outputs": [{"name": OUTPUT_PREDICT, "datatype": self.output_datatype, "shape": [-1]}],
            "parameters": {
                "task": self.task.value,
                "features": [f.name for f in self.features],
                "drift_method": self.cfg.drift_method.value,
                "drift_enabled": self.cfg.drift_enabled,
            },
        }
        if self.groups is not None:  # what the groups parameter may name (fairness.md)
            meta["parameters"]["sensitive_features"] = self.groups.names
        return meta

    # ------------------------------------------------------------- decode
    @staticmethod
    def _shape(inp: dict[str, Any]) -> list[int]:
        shape = inp.get("shape")
        if (
            not isinstance(shape, list)
            or not shape
            or not all(type(s) is int and s >= 0 for s in shape)
        ):
            raise InputError(f"input {inp.get('name')!r}: shape must be a list of integers >= 0")
        return shape

    @staticmethod
    def _array(inp: dict[str, Any], expected: int) -> npt.NDArray[Any]:
        name = inp.get("name")
        data = inp.get("data")
        if not isinstance(data, list | np.ndarray):  # an array: gRPC's raw contents
            raise InputError(f"input {name!r}: data must be a list")
        try:
            arr = np.asarray(data)
        except (ValueError, TypeError) as exc:
            raise InputError(f"input {name!r}: data is not a regular array: {exc}") from None
        if arr.dtype.kind not in "biufU":
            raise InputError(f"input {name!r}: data must be numbers or strings (no nulls, objects)")
        arr = arr.reshape(-1)
        if arr.size != expected:
            raise InputError(
                f"input {name!r}: data has {arr.size} elements, shape needs {expected}"
            )
        return arr

    def _numeric(self, inp: dict[str, Any], arr: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        dt = inp.get("datatype")
        kind = arr.dtype.kind
        if dt == "BOOL":
            if kind != "b":
                raise InputError(f"input {inp.get('name')!r}: BOOL data must be true/false")
        elif kind not in "iuf" or (dt in INT_TYPES and kind == "f"):
            raise InputError(f"input {inp.get('name')!r}: data does not match datatype {dt}")
        out = arr.astype(np.float64)
        if not np.isfinite(out).all():
            raise InputError(f"input {inp.get('name')!r}: values must be finite")
        return out

    @staticmethod
    def _datatype(inp: dict[str, Any]) -> str:
        dt = inp.get("datatype")
        if not isinstance(dt, str) or dt not in KNOWN_TYPES:
            raise InputError(
                f"input {inp.get('name')!r}: datatype must be one of {sorted(KNOWN_TYPES)}"
            )
        return dt

    def decode(self, req: Any) -> tuple[Any, int]:
        """The feature matrix (rows, n_features) of an OIP v2 request body."""
        if not isinstance(req, dict):
            raise InputError("request body must be a JSON object")
        inputs = req.get("inputs")
        if not isinstance(inputs, list) or not inputs:
            raise InputError("'inputs' must be a non-empty list of tensors")
        for inp in inputs:
            if not isinstance(inp, dict):
                raise InputError("each input must be an object with name, shape, datatype, data")
        nf = self.n_features
        first = inputs[0].get("name")
        if len(inputs) == 1 and not (isinstance(first, str) and first in self.by_name):
            inp = inputs[0]
            shape = self._shape(inp)
            dt = self._datatype(inp)
            if (len(shape) == 2 and shape[1] == nf) or (len(shape) == 1 and nf == 1):
                rows = shape[0]
            else:
                raise InputError(
                    f"input {inp.get('name')!r}: shape must be [rows, {nf}] "
                    f"(features: {[f.name for f in self.features]}) or send one tensor "
                    "per feature named after it"
                )
            if rows == 0:
                raise InputError("the request has no rows")
            arr = self._array(inp, rows * nf)
            if not self.has_categorical:
                if dt == "BYTES":
                    raise InputError(
                        f"input {inp.get('name')!r}: numeric features need a numeric datatype"
                    )
                return self._numeric(inp, arr).reshape(rows, nf), rows
            x = arr.astype(object).reshape(rows, nf)
            for f in self.features:
                col = arr.reshape(rows, nf)[:, f.index]
                if f.categorical:
                    x[:, f.index] = col.astype(str)
                else:
                    try:
                        vals = col.astype(np.float64)
                    except ValueError:
                        raise InputError(f"feature {f.name!r} must be numeric") from None
                    if not np.isfinite(vals).all():
                        raise InputError(f"feature {f.name!r}: values must be finite")
                    x[:, f.index] = vals
            return x, rows
        # one tensor per feature
        cols: dict[str, npt.NDArray[Any]] = {}
        rows = -1
        for inp in inputs:
            name = inp.get("name")
            feat = self.by_name.get(name) if isinstance(name, str) else None
            if feat is None:
                raise InputError(
                    f"unknown input {name!r}; inputs are {[f.name for f in self.features]} "
                    f"or one tensor of shape [rows, {nf}]"
                )
            if name in cols:
                raise InputError(f"input {name!r} given twice")
            shape = self._shape(inp)
            dt = self._datatype(inp)
            if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
                raise InputError(f"input {name!r}: shape must be [rows] or [rows, 1]")
            if rows not in (-1, shape[0]):
                raise InputError(f"input {name!r}: {shape[0]} rows, other inputs have {rows}")
            rows = shape[0]
            arr = self._array(inp, rows)
            if feat.categorical:
                if arr.dtype.kind == "f" or dt not in ("BYTES", *INT_TYPES, "BOOL"):
                    raise InputError(
                        f"input {name!r}: categorical feature needs BYTES (strings) data"
                    )
                cols[name] = arr.astype(str).astype(object)
            else:
                if dt == "BYTES":
                    raise InputError(f"input {name!r}: numeric feature needs a numeric datatype")
                cols[name] = self._numeric(inp, arr)
        missing = [f.name for f in self.features if f.name not in cols]
        if missing:
            raise InputError(f"missing input(s) {missing}")
        if rows == 0:
            raise InputError("the request has no rows")
        if self.has_categorical:
            x = np.empty((rows, nf), dtype=object)
            for f in self.features:
                x[:, f.index] = cols[f.name]
            return x, rows
        return np.column_stack([cols[f.name] for f in self.features]), rows

    # ------------------------------------------------------------ predict
    def predict(self, x: Any) -> Any:
        if self._compiled is not None:
            return self._compiled(x)
        return self.model.predict(x)

    def predict_proba(self, x: Any) -> Any:
        if not hasattr(self.model, "predict_proba"):
            raise InputError(f"output {OUTPUT_PROBA!r} is not available for this model")
        return self.model.predict_proba(x)

    def requested_outputs(self, req: dict[str, Any]) -> list[str]:
        outs = req.get("outputs")
        if outs is None:
            return [OUTPUT_PREDICT]
        if not isinstance(outs, list) or not all(isinstance(o, dict) for o in outs):
            raise InputError("'outputs' must be a list of objects with a name")
        names = [o.get("name") for o in outs] or [OUTPUT_PREDICT]
        for n in names:
            if n not in (OUTPUT_PREDICT, OUTPUT_PROBA):
                raise InputError(
                    f"unknown output {n!r}; use {OUTPUT_PREDICT!r} or {OUTPUT_PROBA!r}"
                )
        return [str(n) for n in names]

    def encode_predictions(self, pred: Any) -> dict[str, Any]:
        n = int(pred.shape[0])
        if self.output_datatype == "BYTES":
            data: Any = [str(v) for v in pred.tolist()]
        elif self.output_datatype == "INT64":
            data = pred.astype(np.int64, copy=False)
        else:
            data = pred.astype(np.float64, copy=False)
        return {
            "name": OUTPUT_PREDICT,
            "shape": [n],
            "datatype": self.output_datatype,
            "data": data,
        }

    # -------------------------------------------------------------- drift
    def pred_codes(self, pred: Any) -> npt.NDArray[np.float64]:
        if self.classes is None:
            return np.asarray(pred, dtype=np.float64)
        # predictions are always among classes_ (sorted by sklearn): an exact index
        out: npt.NDArray[np.float64] = np.searchsorted(self.classes, pred).astype(np.float64)
        return out

    def record(
        self, x: Any, pred_codes: Any, rows: int, request_id: str, groups: Any = None
    ) -> None:
        """Stage the live rows (features + prediction code, and the rows' packed
        groups for per-group feedback) for the drift window."""
        buf = self.buffer
        if buf is not None:
            buf.add(x, pred_codes, id_hash(request_id), rows, groups)

    def encode_categorical(self, x: Any) -> npt.NDArray[np.float64]:
        """Raw object feature matrix -> float codes (categories -> index, unseen -> n)."""
        out = np.empty(x.shape, dtype=np.float64)
        if self.num_index.size:
            out[:, self.num_index] = x[:, self.num_index].astype(np.float64)
        for f in self.cat_features:
            unseen = len(f.codes)
            get = f.codes.get
            out[:, f.index] = [get(v, unseen) for v in x[:, f.index]]
        return out

    def drift_scores(
        self, window: npt.NDArray[np.float64]
    ) -> Iterator[tuple[str, drift.DriftValue]]:
        """(feature name, drift) of every feature over the given window rows."""
        method = self.cfg.drift_method
        for f in self.features:
            col = window[:, f.index]
            if f.categorical:
                counts = np.bincount(col.astype(np.int64), minlength=len(f.codes) + 1)
                ref = np.asarray(f.profile.get("proportions", []), dtype=np.float64)
                yield f.name, drift.categorical_drift(method, ref, counts.astype(np.float64))
            else:
                yield f.name, drift.numeric_drift(method, f.profile, col[np.isfinite(col)])

    def prediction_drift(self, window: npt.NDArray[np.float64]) -> drift.DriftValue | None:
        prof = self.pred_profile
        if not prof:
            return None
        col = window[:, -1]
        method = self.cfg.drift_method
        if prof.get("type") == "categorical":
            n = len(prof.get("categories", []))
            counts = np.bincount(col.astype(np.int64), minlength=n + 1).astype(np.float64)
            return drift.categorical_drift(method, np.asarray(prof["proportions"]), counts)
        return drift.numeric_drift(method, prof, col[np.isfinite(col)])

    def labels_to_codes(self, labels: list[Any]) -> npt.NDArray[np.float64]:
        if self.classes is None:
            try:
                vals = np.asarray(labels, dtype=np.float64)
            except (TypeError, ValueError):
                raise InputError("labels must be numbers for a regression model") from None
            if not np.isfinite(vals).all():
                raise InputError("labels must be finite")
            return vals
        lookup = {str(c): i for i, c in enumerate(self.classes.tolist())}
        out = np.empty(len(labels), dtype=np.float64)
        for i, lab in enumerate(labels):
            key = str(lab)
            if isinstance(lab, float) and lab.is_integer() and self.classes.dtype.kind in "iu":
                key = str(int(lab))
            code = lookup.get(key)
            if code is None:
                raise InputError(f"label {lab!r} is not a class of this model")
            out[i] = code
        return out


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)
