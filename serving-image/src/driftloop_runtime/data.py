"""Reading, digesting and validating a Dataset source.

The content digest is ``sha256:<hex>`` of the **raw bytes of the source file** as
stored (before any parsing): cheap, stable across pandas versions, and equal to
``sha256sum`` of the file, so anyone can check it by hand.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import os
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import driftloop_contract as contract
from driftloop_contract import DatasetSpec, FeatureType, Task, ValidationRule
from driftloop_runtime import snapshot, store
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


def _decompressed(raw: bytes) -> bytes:
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError) as exc:
        raise ValidationFailedError(
            ValidationRule.readable, f"cannot decompress the gzip source: {exc}"
        ) from exc


def check_csv_structure(raw: bytes) -> None:
    """Refuse the defects of a CSV file that pandas would paper over.

    pandas renames a repeated header (``x``, ``x.1``), fills a short row with missing
    values and reads a header-only file as an empty frame; each is named here instead,
    with the line it is on.
    """
    _check_csv_chunks([_decompressed(raw)])


def csv_compression(path: str | os.PathLike[str]) -> str | None:
    """ "gzip" for a gzip file (by its magic bytes, whatever its name), else None."""
    with open(path, "rb") as probe:
        return "gzip" if probe.read(2) == b"\x1f\x8b" else None


def check_csv_file(path: str | os.PathLike[str]) -> list[str]:
    """:func:`check_csv_structure` of a (plain or gzip) file, streamed; returns the header."""
    gzipped = csv_compression(path) == "gzip"

    def chunks() -> Iterator[bytes]:
        opener = gzip.open if gzipped else open
        try:
            with opener(path, "rb") as fh:
                while block := fh.read(CSV_CHUNK):
                    yield block
        except (OSError, EOFError) as exc:
            raise ValidationFailedError(
                ValidationRule.readable, f"cannot decompress the gzip source: {exc}"
            ) from exc

    return _check_csv_chunks(chunks())


#: Bytes read at a time when a CSV file is checked.
CSV_CHUNK = 1 << 20


def _text_lines(chunks: Iterable[bytes], state: dict[str, bool]) -> Iterator[str]:
    """UTF-8 lines (ends kept) of byte chunks; ``state["nonblank"]``: a byte that is not
    whitespace was seen."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    consumed = 0
    carry = ""
    for chunk in chunks:
        if chunk.strip():
            state["nonblank"] = True
        pending = len(decoder.getstate()[0])
        try:
            text = decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            at = consumed - pending + exc.start
            raise ValidationFailedError(
                ValidationRule.readable,
                f"the source is not UTF-8 text: byte {at} is {exc.object[exc.start]:#04x}",
            ) from exc
        consumed += len(chunk)
        lines = (carry + text).split("\n")
        carry = lines.pop()
        for line in lines:
            yield line + "\n"
    try:
        carry += decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise ValidationFailedError(
            ValidationRule.readable,
            f"the source is not UTF-8 text: it ends inside a character (byte {consumed})",
        ) from exc
    if carry:
        yield carry


def _check_csv_chunks(chunks: Iterable[bytes]) -> list[str]:
    state = {"nonblank": False}
    reader = csv.reader(_text_lines(chunks, state), strict=True)
    header: list[str] | None = None
    rows = 0
    try:
        for fields in reader:
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue  # a blank line (pandas skips them too)
            if header is None:
                header = fields
                seen: set[str] = set()
                for name in header:
                    if name and name in seen:  # pandas names blank ones Unnamed: <i>
                        raise ValidationFailedError(
                            ValidationRule.duplicate_column,
                            f"column {name!r} appears more than once in the header "
                            f"(line {reader.line_num})",
                            column=name,
                        )
                    seen.add(name)
                continue
            rows += 1
            if len(fields) != len(header):
                raise ValidationFailedError(
                    ValidationRule.malformed_row,
                    f"line {reader.line_num} has {len(fields)} fields, the header has "
                    f"{len(header)}: {','.join(fields)[:120]!r}",
                )
    except csv.Error as exc:
        raise ValidationFailedError(
            ValidationRule.malformed_row, f"line {reader.line_num} cannot be parsed: {exc}"
        ) from exc
    if not state["nonblank"]:
        raise ValidationFailedError(ValidationRule.empty_file, "the source file is empty")
    if rows == 0:
        raise ValidationFailedError(
            ValidationRule.no_rows,
            f"the source has a header ({len(header or [])} columns) and no data rows",
        )
    return header or []


def _check_parquet_columns(raw: bytes) -> None:
    """Refuse repeated column names, which Parquet allows and pandas cannot read."""
    import pyarrow.parquet as pq

    try:
        names = pq.ParquetFile(io.BytesIO(raw)).schema_arrow.names
    except Exception:  # not Parquet at all: parse() names it
        return
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValidationFailedError(
                ValidationRule.duplicate_column,
                f"column {name!r} appears more than once in the Parquet schema",
                column=name,
            )
        seen.add(name)


def parse(raw: bytes, fmt: str) -> pd.DataFrame:
    import pandas as pd

    if not raw.strip():
        raise ValidationFailedError(ValidationRule.empty_file, "the source file is empty")
    if fmt == "csv":
        check_csv_structure(raw)
    else:
        _check_parquet_columns(raw)
    try:
        if fmt == "parquet":
            frame = pd.read_parquet(io.BytesIO(raw))
        else:
            compression = "gzip" if raw[:2] == b"\x1f\x8b" else None
            frame = pd.read_csv(io.BytesIO(raw), compression=compression)
    except Exception as exc:  # pandas/pyarrow raise many types for bad files
        raise ValidationFailedError(
            ValidationRule.readable, f"cannot parse the source as {fmt}: {exc}"
        ) from exc
    if len(frame) == 0:  # a Parquet file without rows (a CSV one is refused above)
        raise ValidationFailedError(
            ValidationRule.no_rows, f"the source has {len(frame.columns)} columns and no rows"
        )
    return frame


def load_staged(
    staged: snapshot.Staged, declared: str, columns: list[str] | None = None
) -> tuple[LoadedData, str]:
    """Parse a staged source or a fetched snapshot; return the data and its format.

    One file goes through :func:`parse` (with every CSV check).  A prefix is read as
    a Parquet dataset (hive partitions become columns) after every file's schema has
    been compared with the first one's.  ``columns``: read only these from Parquet
    (training needs the features and the target; a missing one is named by validate).
    """
    if not staged.prefix and staged_format(staged, declared) == "csv":
        (path,) = staged.paths()
        # Streamed checks, then only the columns asked for: the bytes are never held.
        header = check_csv_file(path)
        import pandas as pd

        try:
            frame = pd.read_csv(
                path,
                usecols=None if columns is None else [c for c in columns if c in header],
                compression=csv_compression(path),
            )
        except Exception as exc:  # pandas raises many types for bad files
            raise ValidationFailedError(
                ValidationRule.readable, f"cannot parse the source as csv: {exc}"
            ) from exc
        return LoadedData(frame=frame, digest=staged.digest, size=path.stat().st_size), "csv"
    if staged.prefix:
        staged_format(staged, declared)  # a prefix declared csv is refused
    frame = _read_parquet_prefix(staged, columns)
    size = sum(p.stat().st_size for p in staged.paths())
    return LoadedData(frame=frame, digest=staged.digest, size=size), "parquet"


def _schema_difference(a: Any, b: Any) -> str:
    """The first difference between two Arrow schemas, in words."""
    names_a, names_b = set(a.names), set(b.names)
    if names_a - names_b:
        return f"lacks column {sorted(names_a - names_b)[0]!r}"
    if names_b - names_a:
        return f"has an extra column {sorted(names_b - names_a)[0]!r}"
    for field in b:
        other = a.field(field.name)
        if field.type != other.type:
            return f"has column {field.name!r} as {field.type}, not {other.type}"
    return "orders its columns differently"


def _read_parquet_prefix(staged: snapshot.Staged, columns: list[str] | None) -> pd.DataFrame:
    dataset = parquet_dataset(staged)
    wanted = None if columns is None else [c for c in columns if c in dataset.schema.names]
    try:
        frame = dataset.to_table(columns=wanted).to_pandas()
    except Exception as exc:
        raise ValidationFailedError(
            ValidationRule.readable, f"cannot read the Parquet files of {staged.source}: {exc}"
        ) from exc
    if len(frame) == 0:
        raise ValidationFailedError(
            ValidationRule.no_rows,
            f"the {len(staged.files)} file(s) of {staged.source} hold no rows"
            if staged.prefix
            else f"the source has {len(dataset.schema.names)} columns and no rows",
        )
    return frame


def parquet_dataset(staged: snapshot.Staged) -> Any:
    """A pyarrow dataset of the staged Parquet file(s), once every file's schema is
    readable, free of repeated names and (for a prefix) equal to the first file's."""
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

    first: tuple[str, Any] | None = None
    for rel in sorted(staged.files):
        try:
            schema = pq.read_schema(staged.data_dir / rel).remove_metadata()
        except Exception as exc:  # pyarrow raises several types for a non-Parquet file
            where = (
                f"{rel} in {staged.source} is not Parquet"
                if staged.prefix
                else ("cannot parse the source as parquet")
            )
            raise ValidationFailedError(ValidationRule.readable, f"{where}: {exc}") from exc
        seen: set[str] = set()
        for name in schema.names:
            if name in seen:
                raise ValidationFailedError(
                    ValidationRule.duplicate_column,
                    f"column {name!r} appears more than once in {rel}",
                    column=name,
                )
            seen.add(name)
        if first is None:
            first = (rel, schema)
        elif not schema.equals(first[1]):
            raise ValidationFailedError(
                ValidationRule.schema_mismatch,
                f"the files of {staged.source} have different schemas: {rel} "
                f"{_schema_difference(first[1], schema)} (compared with {first[0]})",
            )
    return pads.dataset(
        [str(p) for p in staged.paths()],
        format="parquet",
        partitioning="hive" if staged.prefix else None,
        partition_base_dir=str(staged.data_dir),
    )


def staged_format(staged: snapshot.Staged, declared: str) -> str:
    """csv or parquet: a prefix is Parquet; one file by its name, else its first bytes."""
    if staged.prefix:
        if declared == "csv":
            raise ValidationFailedError(
                ValidationRule.readable,
                f"{staged.source} is a prefix: prefixes are read as Parquet files, not CSV",
            )
        return "parquet"
    (path,) = staged.paths()
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    if not head.strip() and path.stat().st_size <= len(head):
        raise ValidationFailedError(ValidationRule.empty_file, "the source file is empty")
    return detect_format(staged.source, declared, head)


def _near(name: str, columns: set[str]) -> str:
    """The columns, and the one ``name`` differs from only in case or surrounding spaces."""
    near = [c for c in sorted(columns) if c.strip().casefold() == name.casefold()]
    hint = f"; the data has {near[0]!r}" if near else ""
    return f" (columns: {sorted(columns)[:20]}){hint}"


def _row(mask: Any, offset: int = 0) -> int:
    """The 1-based data row of the first True in ``mask`` (line = row + 1 in a CSV);
    ``offset``: rows before this batch."""
    import numpy as np

    return offset + int(np.argmax(np.asarray(mask))) + 1


def _is_numeric(col: pd.Series) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col))


def _non_numeric(
    name: str, col: pd.Series, what: str, rule: ValidationRule, offset: int = 0
) -> None:
    import pandas as pd

    if _is_numeric(col):
        return
    coerced = pd.to_numeric(col, errors="coerce")
    bad = col.notna() & coerced.isna()
    example = f"{col[bad].iloc[0]!r} in row {_row(bad, offset)}" if bad.any() else "?"
    raise ValidationFailedError(
        rule, f"{what} {name!r} has non-numeric values (e.g. {example})", column=name
    )


def _check_finite(name: str, col: pd.Series, offset: int = 0) -> None:
    import numpy as np
    import pandas as pd

    if pd.api.types.is_bool_dtype(col):
        return
    values = col.to_numpy(dtype=np.float64)
    infinite = np.isinf(values)
    if infinite.any():
        first = int(np.argmax(infinite))
        raise ValidationFailedError(
            ValidationRule.non_finite,
            f"column {name!r} has {int(infinite.sum())} infinite value(s) "
            f"(e.g. {values[first]} in row {offset + first + 1}); numbers must be finite",
            column=name,
        )


class Checker:
    """The validation rules over data seen in batches (memory does not grow with rows).

    ``columns`` first, then ``batch`` for each batch in order, then ``finish``.  The
    rules fail in one order whatever the batching: the columns; the row counts; the
    missing values; the values (numeric, finite, allowed; the first such defect is
    kept until the counts are known); the target's classes.
    """

    def __init__(self, spec: DatasetSpec, task: Task | None = None) -> None:
        self.spec = spec
        self.task = task or spec.task
        self.rows = 0
        self.checked = [*(f.name for f in spec.features), spec.target]
        self.nulls = dict.fromkeys(self.checked, 0)
        self.first_null: dict[str, int] = {}
        self.classes: list[str] = []
        self.defect: ValidationFailedError | None = None

    def columns(self, names: Any) -> None:
        spec = self.spec
        columns = set(map(str, names))
        named = [
            *(("feature", f.name) for f in spec.features),
            *(("sensitive feature", f.name) for f in spec.sensitive_features),
        ]
        for what, name in named:
            if name not in columns:
                raise ValidationFailedError(
                    ValidationRule.missing_column,
                    f"{what} column {name!r} is not in the data" + _near(name, columns),
                    column=name,
                )
        if spec.target not in columns:
            raise ValidationFailedError(
                ValidationRule.missing_target,
                f"target column {spec.target!r} is not in the data" + _near(spec.target, columns),
                column=spec.target,
            )

    def batch(self, frame: pd.DataFrame) -> None:
        offset = self.rows
        self.rows += len(frame)
        rules = self.spec.validation
        if rules.max_rows is not None and self.rows > rules.max_rows:
            raise ValidationFailedError(
                ValidationRule.max_rows, f"{self.rows} rows, more than maxRows={rules.max_rows}"
            )
        for name in self.checked:
            missing = frame[name].isna()
            count = int(missing.sum())
            if count and name not in self.first_null:
                self.first_null[name] = _row(missing, offset)
            self.nulls[name] += count
        if self.defect is None:
            try:
                self._values(frame, offset)
            except ValidationFailedError as defect:
                self.defect = defect
        if len(self.classes) < 2:
            present = frame[self.spec.target].dropna()
            values = (
                present.unique() if self.task is Task.regression else present.astype(str).unique()
            )
            for value in values:
                if value not in self.classes:
                    self.classes.append(value)
                    if len(self.classes) == 2:
                        break

    def _values(self, frame: pd.DataFrame, offset: int) -> None:
        for feature in self.spec.features:
            col = frame[feature.name]
            if feature.type is FeatureType.numeric:
                _non_numeric(
                    feature.name, col, "numeric feature", ValidationRule.numeric_type, offset
                )
                _check_finite(feature.name, col, offset)
            elif feature.allowed_values is not None:
                allowed = set(feature.allowed_values)
                values = col.dropna().astype(str)
                unexpected = sorted(set(values.unique()) - allowed)
                if unexpected:
                    outside = col.notna() & ~col.astype(str).isin(allowed)
                    raise ValidationFailedError(
                        ValidationRule.allowed_values,
                        f"column {feature.name!r} has values outside allowedValues: "
                        f"{unexpected[:10]} (the first in row {_row(outside, offset)})",
                        column=feature.name,
                    )
        for sensitive in self.spec.sensitive_features:
            if sensitive.bins is not None:  # binned: numbers (a missing one is a group)
                col = frame[sensitive.name]
                _non_numeric(
                    sensitive.name,
                    col,
                    "binned sensitive feature",
                    ValidationRule.numeric_type,
                    offset,
                )
                _check_finite(sensitive.name, col, offset)
        name, col = self.spec.target, frame[self.spec.target]
        if self.task is Task.regression:
            _non_numeric(name, col, "regression target", ValidationRule.target_numeric, offset)
        if _is_numeric(col):
            _check_finite(name, col, offset)

    def finish(self) -> None:
        rules, rows = self.spec.validation, self.rows
        if rows == 0:
            raise ValidationFailedError(ValidationRule.no_rows, "the data has no rows")
        if rules.min_rows is not None and rows < rules.min_rows:
            raise ValidationFailedError(
                ValidationRule.min_rows, f"{rows} rows, fewer than minRows={rules.min_rows}"
            )
        for name in self.checked:
            ratio = self.nulls[name] / rows
            if ratio > rules.max_null_ratio:
                raise ValidationFailedError(
                    ValidationRule.max_null_ratio,
                    f"column {name!r} has {ratio:.4f} missing values (the first in row "
                    f"{self.first_null.get(name, 1)}), more than "
                    f"maxNullRatio={rules.max_null_ratio}",
                    column=name,
                )
        if self.defect is not None:
            raise self.defect
        if len(self.classes) < 2:
            only = f"only {str(self.classes[0])!r}" if self.classes else "no values"
            regression = self.task is Task.regression
            need = "two distinct values" if regression else "two classes"
            raise ValidationFailedError(
                ValidationRule.target_classes,
                f"target {self.spec.target!r} has {only}: a model needs at least {need}",
                column=self.spec.target,
            )


def validate(spec: DatasetSpec, frame: pd.DataFrame, *, task: Task | None = None) -> None:
    """Check ``frame`` against the spec; raise ValidationFailedError naming rule and column.

    ``task`` (else the spec's) adds the target's checks for that task: at least two
    classes (classification), numeric (regression).
    """
    checker = Checker(spec, task)
    checker.columns(frame.columns)
    checker.batch(frame)
    checker.finish()


def feature_matrix(spec: DatasetSpec, frame: pd.DataFrame) -> tuple[Any, bool]:
    """Raw features in spec order: a float64 matrix if all are numeric, else a frame
    whose columns are numbered 0..n-1 (positions, as the served model takes them).

    Categorical values are strings (one object per distinct value, shared by its
    rows); numeric values float64 (NaN for missing).  A frame keeps numbers unboxed:
    an object matrix would hold a Python float per numeric cell, several times the
    size of the numbers.  Returns (features, has_categorical).
    """
    import numpy as np
    import pandas as pd

    has_cat = any(f.type is FeatureType.categorical for f in spec.features)
    if not has_cat:
        return (
            frame[[f.name for f in spec.features]].to_numpy(dtype=np.float64, copy=True),
            False,
        )
    columns: dict[int, Any] = {}
    for j, f in enumerate(spec.features):
        col = frame[f.name]
        if f.type is FeatureType.categorical:
            codes, uniques = pd.factorize(col, use_na_sentinel=True)
            names = np.array([str(u) for u in uniques] + [MISSING_CATEGORY], dtype=object)
            columns[j] = names[codes]  # code -1 (missing) picks the last name
        else:
            columns[j] = col.to_numpy(dtype=np.float64)
    return pd.DataFrame(columns, index=pd.RangeIndex(len(frame))), True
