"""Reading, digesting and validating a Dataset source.

The content digest is ``sha256:<hex>`` of the **raw bytes of the source file** as
stored (before any parsing): cheap, stable across pandas versions, and equal to
``sha256sum`` of the file, so anyone can check it by hand.
"""

from __future__ import annotations

import hashlib
import io
import os
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING

import driftloop_contract as contract
from driftloop_contract import DatasetSpec, FeatureType, ValidationRule
from driftloop_runtime import store
from driftloop_runtime.errors import RuntimeFailureError, ValidationFailedError

if TYPE_CHECKING:
    import pandas as pd

#: Refuse sources larger than this (the runtime holds them in memory).
MAX_SOURCE_BYTES = int(os.environ.get("DRIFTLOOP_MAX_SOURCE_BYTES", str(2 * 1024**3)))
HTTP_TIMEOUT_S = 60.0
#: Category used for a missing categorical value (training and serving alike).
MISSING_CATEGORY = "__missing__"


@dataclass
class LoadedData:
    frame: pd.DataFrame
    digest: str
    size: int


def local_path(uri: str) -> str | None:
    """The filesystem path of a ``/...`` or ``file://`` URI, else None."""
    if uri.startswith("file://"):
        return urllib.parse.unquote(urllib.parse.urlparse(uri).path)
    if uri.startswith("/"):
        return uri
    return None


def read_source_bytes(uri: str) -> bytes:
    """The raw bytes of a source URI (local path, file://, http(s)://, s3://)."""
    path = local_path(uri)
    try:
        if path is not None:
            size = os.path.getsize(path)
            if size > MAX_SOURCE_BYTES:
                raise RuntimeFailureError(
                    contract.REASON_DATA_UNAVAILABLE,
                    f"{uri}: {size} bytes exceeds the limit of {MAX_SOURCE_BYTES}",
                )
            with open(path, "rb") as fh:
                return fh.read()
        if uri.startswith(("http://", "https://")):
            req = urllib.request.Request(uri, headers={"User-Agent": "driftloop-runtime"})
            with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as resp:
                data: bytes = resp.read(MAX_SOURCE_BYTES + 1)
        elif store.is_remote(uri):
            data = store.read_bytes(uri, limit=MAX_SOURCE_BYTES)
        else:
            raise RuntimeFailureError(
                contract.REASON_INVALID_REQUEST, f"unsupported source URI scheme: {uri}"
            )
    except RuntimeFailureError:
        raise
    except (OSError, ValueError) as exc:
        raise RuntimeFailureError(
            contract.REASON_DATA_UNAVAILABLE,
            f"cannot read {uri}: {exc}",
            exit_code=contract.EXIT_ERROR,
        ) from exc
    if len(data) > MAX_SOURCE_BYTES:
        raise RuntimeFailureError(
            contract.REASON_DATA_UNAVAILABLE, f"{uri}: larger than {MAX_SOURCE_BYTES} bytes"
        )
    return data


def detect_format(uri: str, declared: str, raw: bytes) -> str:
    if declared != "auto":
        return declared
    path = urllib.parse.urlparse(uri).path.lower() if "://" in uri else uri.lower()
    if path.endswith((".parquet", ".pq")) or raw[:4] == b"PAR1":
        return "parquet"
    return "csv"


def parse(raw: bytes, fmt: str) -> pd.DataFrame:
    import pandas as pd

    try:
        if fmt == "parquet":
            return pd.read_parquet(io.BytesIO(raw))
        compression = "gzip" if raw[:2] == b"\x1f\x8b" else None
        return pd.read_csv(io.BytesIO(raw), compression=compression)
    except Exception as exc:  # pandas/pyarrow raise many types for bad files
        raise ValidationFailedError(
            ValidationRule.readable, f"cannot parse the source as {fmt}: {exc}"
        ) from exc


def load(spec: DatasetSpec) -> LoadedData:
    raw = read_source_bytes(spec.source)
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    frame = parse(raw, detect_format(spec.source, spec.format, raw))
    return LoadedData(frame=frame, digest=digest, size=len(raw))


def validate(spec: DatasetSpec, frame: pd.DataFrame, *, need_target: bool = True) -> None:
    """Check ``frame`` against the spec; raise ValidationFailedError naming rule and column."""
    import pandas as pd

    columns = set(map(str, frame.columns))
    for feature in spec.features:
        if feature.name not in columns:
            raise ValidationFailedError(
                ValidationRule.missing_column,
                f"feature column {feature.name!r} is not in the data "
                f"(columns: {sorted(columns)[:20]})",
                column=feature.name,
            )
    if need_target and spec.target not in columns:
        raise ValidationFailedError(
            ValidationRule.missing_target,
            f"target column {spec.target!r} is not in the data",
            column=spec.target,
        )
    rules = spec.validation
    rows = len(frame)
    if rules.min_rows is not None and rows < rules.min_rows:
        raise ValidationFailedError(
            ValidationRule.min_rows, f"{rows} rows, fewer than minRows={rules.min_rows}"
        )
    if rules.max_rows is not None and rows > rules.max_rows:
        raise ValidationFailedError(
            ValidationRule.max_rows, f"{rows} rows, more than maxRows={rules.max_rows}"
        )
    if rows == 0:
        raise ValidationFailedError(ValidationRule.min_rows, "the data has no rows")
    checked = [f.name for f in spec.features]
    if need_target:
        checked.append(spec.target)
    for name in checked:
        ratio = float(frame[name].isna().mean())
        if ratio > rules.max_null_ratio:
            raise ValidationFailedError(
                ValidationRule.max_null_ratio,
                f"column {name!r} has {ratio:.4f} missing values, more than "
                f"maxNullRatio={rules.max_null_ratio}",
                column=name,
            )
    for feature in spec.features:
        col = frame[feature.name]
        if feature.type is FeatureType.numeric:
            if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
                bad = col.dropna()
                bad = bad[pd.to_numeric(bad, errors="coerce").isna()]
                example = repr(bad.iloc[0]) if len(bad) else "?"
                raise ValidationFailedError(
                    ValidationRule.numeric_type,
                    f"numeric feature {feature.name!r} has non-numeric values (e.g. {example})",
                    column=feature.name,
                )
        elif feature.allowed_values is not None:
            allowed = set(feature.allowed_values)
            values = col.dropna().astype(str)
            unexpected = sorted(set(values.unique()) - allowed)
            if unexpected:
                raise ValidationFailedError(
                    ValidationRule.allowed_values,
                    f"column {feature.name!r} has values outside allowedValues: {unexpected[:10]}",
                    column=feature.name,
                )


def feature_matrix(spec: DatasetSpec, frame: pd.DataFrame) -> tuple[object, bool]:
    """Raw feature matrix in spec order: float64 if all numeric, else object.

    Categorical values are strings; numeric values floats (NaN for missing).
    Returns (matrix, has_categorical).
    """
    import numpy as np

    has_cat = any(f.type is FeatureType.categorical for f in spec.features)
    n = len(frame)
    if not has_cat:
        return (
            frame[[f.name for f in spec.features]].to_numpy(dtype=np.float64, copy=True),
            False,
        )
    out = np.empty((n, len(spec.features)), dtype=object)
    for j, f in enumerate(spec.features):
        col = frame[f.name]
        if f.type is FeatureType.categorical:
            out[:, j] = [
                MISSING_CATEGORY if v is None else str(v)
                for v in col.astype(object).where(col.notna(), None)
            ]
        else:
            out[:, j] = col.to_numpy(dtype=np.float64)
    return out, True
