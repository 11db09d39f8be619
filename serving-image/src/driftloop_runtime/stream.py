"""The profile Job's pass over the data, a batch at a time: memory does not grow with rows.

The staged copy (driftloop_runtime.snapshot) is read in record batches of BATCH_ROWS:
Parquet through pyarrow datasets (only the feature and target columns), CSV through
pandas' chunked reader after a streamed structural check.  Each batch goes through
the validation rules (data.Checker) and into per-feature sketches:

* numeric: exact count, missing count, mean, variance (Chan's parallel update), min
  and max; the values themselves while there are at most RESERVOIR of them, then a
  uniform sample of RESERVOIR (bottom-k on random keys, seeded).  Up to RESERVOIR rows
  the profile equals the in-memory one exactly; above, the decile edges and bin
  proportions come from the sample (a uniform sample of 100 000 puts a decile within
  about 0.3 percentage points), the moments and extremes stay exact;
* categorical: exact counts per value.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from driftloop_contract import DatasetSpec, FeatureType, SensitiveFeature, ValidationRule
from driftloop_runtime import data, fairness, profile
from driftloop_runtime.errors import ValidationFailedError
from driftloop_runtime.snapshot import Staged

if TYPE_CHECKING:
    import pandas as pd

BATCH_ROWS = 65_536
RESERVOIR = 100_000


class NumericSketch:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.total = 0
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.low = np.inf
        self.high = -np.inf
        #: All finite values in order, until there are more than RESERVOIR.
        self.parts: list[np.ndarray] | None = []
        self.kept = 0
        self.sample = np.empty(0)
        self.keys = np.empty(0)

    def add(self, values: np.ndarray) -> None:
        self.total += values.size
        x = values[np.isfinite(values)]
        if not x.size:
            return
        n, mean = x.size, float(x.mean())
        m2 = float(((x - mean) ** 2).sum())
        delta = mean - self.mean
        both = self.count + n
        self.mean += delta * n / both
        self.m2 += m2 + delta * delta * self.count * n / both
        self.count = both
        self.low, self.high = min(self.low, float(x.min())), max(self.high, float(x.max()))
        if self.parts is not None:
            self.parts.append(x.copy())
            self.kept += n
            if self.kept <= RESERVOIR:
                return
            x, self.parts = np.concatenate(self.parts), None
        keys = np.concatenate([self.keys, self.rng.random(x.size)])
        pool = np.concatenate([self.sample, x])
        keep = np.argpartition(keys, RESERVOIR)[:RESERVOIR] if keys.size > RESERVOIR else None
        self.keys, self.sample = (keys, pool) if keep is None else (keys[keep], pool[keep])

    def entry(self, name: str, seed: int) -> dict[str, Any]:
        exact = self.parts is not None
        values = np.concatenate(self.parts) if exact and self.parts else self.sample
        out = profile.numeric_entry(name, values, seed)
        out["nullRatio"] = (self.total - self.count) / self.total if self.total else 0.0
        if not exact and self.count:
            out.update(
                mean=self.mean,
                std=float(np.sqrt(self.m2 / self.count)),
                min=self.low,
                max=self.high,
            )
        return out


def _categories(col: pd.Series) -> Counter[str]:
    strings = col.astype(object).where(col.notna(), data.MISSING_CATEGORY).astype(str)
    return Counter(strings.value_counts(sort=False).to_dict())


def open_batches(
    staged: Staged, fmt: str, spec: DatasetSpec
) -> tuple[list[str], Iterator[pd.DataFrame]]:
    """Every column name of the data, and batches of the columns the spec names."""
    inputs = {f.name for f in spec.features}
    sensitive = [f.name for f in spec.sensitive_features if f.name not in inputs]
    wanted = [*(f.name for f in spec.features), *sensitive, spec.target]
    if fmt == "csv":
        return _csv_batches(staged, spec, wanted)
    import pyarrow.dataset as pads

    dataset = data.parquet_dataset(staged)
    names = list(dataset.schema.names)
    columns = [c for c in wanted if c in names]

    def batches() -> Iterator[pd.DataFrame]:
        import pyarrow.parquet as pq

        try:
            # File by file, a batch at a time: pyarrow's dataset scanner decodes whole
            # row groups (and reads ahead), the file reader decodes pages as it goes.
            for fragment in dataset.get_fragments():
                keys = pads.get_partition_keys(fragment.partition_expression) or {}
                in_file = [c for c in columns if c not in keys]
                with pq.ParquetFile(fragment.path, buffer_size=1 << 20, pre_buffer=False) as pf:
                    for batch in pf.iter_batches(
                        batch_size=BATCH_ROWS, columns=in_file, use_threads=False
                    ):
                        if not batch.num_rows:
                            continue
                        frame = batch.to_pandas()
                        for key, value in keys.items():
                            if key in columns:
                                frame[key] = value  # a hive partition's value
                        yield frame
        except ValidationFailedError:
            raise
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise ValidationFailedError(
                ValidationRule.readable, f"cannot read {staged.source} as Parquet: {exc}"
            ) from exc

    return names, batches()


def _csv_batches(
    staged: Staged, spec: DatasetSpec, wanted: list[str]
) -> tuple[list[str], Iterator[pd.DataFrame]]:
    import pandas as pd

    (path,) = staged.paths()
    header = data.check_csv_file(path)
    columns = [c for c in wanted if c in header]
    # Categories as written (a numeric-looking category must not read 1 in one batch
    # and 1.0 in the next, where a missing value made pandas choose floats).
    text = {f.name: str for f in spec.features if f.type is FeatureType.categorical}
    # So is a sensitive column grouped by value (unless a numeric input reads it).
    inputs = {f.name for f in spec.features}
    text |= {
        f.name: str for f in spec.sensitive_features if f.bins is None and f.name not in inputs
    }

    def batches() -> Iterator[pd.DataFrame]:
        try:
            with pd.read_csv(
                path,
                usecols=columns,
                dtype={c: t for c, t in text.items() if c in columns},
                chunksize=BATCH_ROWS,
                compression=data.csv_compression(path),
            ) as reader:
                yield from reader
        except ValidationFailedError:
            raise
        except Exception as exc:  # pandas raises many types for bad files
            raise ValidationFailedError(
                ValidationRule.readable, f"cannot parse the source as csv: {exc}"
            ) from exc

    return header, batches()


def _refuse_no_rows(staged: Staged, fmt: str, rows: int, columns: int) -> None:
    if rows == 0 and fmt == "parquet":  # a CSV without rows is refused earlier
        raise ValidationFailedError(
            ValidationRule.no_rows,
            f"the {len(staged.files)} file(s) of {staged.source} hold no rows"
            if staged.prefix
            else f"the source has {columns} columns and no rows",
        )


def profile_staged(
    staged: Staged, fmt: str, spec: DatasetSpec, seed: int = 0
) -> tuple[dict[str, Any], int, int]:
    """Validate and profile a staged source in one streamed pass: (profile, rows, columns)."""
    names, batches = open_batches(staged, fmt, spec)
    checker = data.Checker(spec)
    checker.columns(names)
    numeric = {f.name: NumericSketch(seed) for f in spec.features if f.type is FeatureType.numeric}
    counts: dict[str, Counter[str]] = {
        f.name: Counter() for f in spec.features if f.type is FeatureType.categorical
    }
    for frame in batches:
        checker.batch(frame)
        if checker.defect is not None:
            continue  # refused already; the counts may still name an earlier rule
        for name, sketch in numeric.items():
            sketch.add(frame[name].to_numpy(dtype=np.float64))
        for name, counter in counts.items():
            counter.update(_categories(frame[name]))
    _refuse_no_rows(staged, fmt, checker.rows, len(names))
    checker.finish()
    features: list[dict[str, Any]] = []
    for f in spec.features:
        if f.name in numeric:
            features.append(numeric[f.name].entry(f.name, seed))
        else:
            features.append(profile.categorical_counts(f.name, counts[f.name], checker.rows))
    prof = {"version": profile.PROFILE_VERSION, "rows": checker.rows, "features": features}
    return prof, checker.rows, len(names)


# --------------------------------------------------------------------------- #
# Training: the same pass, keeping the columns compactly
# --------------------------------------------------------------------------- #


class CategoryCodes:
    """A categorical column as integer codes into the strings seen so far, batch by
    batch (as data.feature_matrix names them: ``str`` of each value, missing as
    MISSING_CATEGORY): one small integer per row instead of a pointer to a string."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.parts: list[np.ndarray] = []

    def add(self, col: pd.Series) -> None:
        import pandas as pd

        codes, uniques = pd.factorize(col, use_na_sentinel=True)
        names = [str(u) for u in uniques]
        if (codes < 0).any():
            names.append(data.MISSING_CATEGORY)  # code -1 picks the last name
        lookup = np.array([self.index.setdefault(n, len(self.index)) for n in names], np.int32)
        self.parts.append(lookup[codes])

    def column(self) -> pd.Categorical:
        import pandas as pd

        codes = np.concatenate(self.parts) if self.parts else np.empty(0, np.int32)
        self.parts = []
        # Object categories: the encoders see the same str objects a frame of strings
        # gives them.
        return pd.Categorical.from_codes(codes, pd.Index(list(self.index), dtype=object))


@dataclass
class TrainingData:
    """The validated feature and target columns of a source.

    ``features``: when every feature is numeric, a float64 matrix in spec order
    (column-major: built a column at a time without a second copy); else a frame
    whose columns are numbered 0..n-1 (positions, as the served model takes them),
    float64 for numeric features and ``pandas.Categorical`` of strings for
    categorical ones (one byte or two per row).  ``rows``: rows read (all of them;
    the target may be missing in some).
    """

    features: Any
    target: pd.Series
    rows: int
    #: Per sensitive feature, each row's group (fairness.group_labels).
    groups: dict[str, pd.Categorical] = field(default_factory=dict)

    @property
    def has_categorical(self) -> bool:
        return not isinstance(self.features, np.ndarray)


def column(features: Any, j: int) -> np.ndarray:
    """Column ``j`` of TrainingData.features (a positional frame or a 2-D array) as an array."""
    col = features[j].to_numpy() if hasattr(features, "iloc") else features[:, j]
    return cast(np.ndarray, col)


def training_data(staged: Staged, fmt: str, spec: DatasetSpec, task: Any) -> TrainingData:
    """Validate a staged source as training does (the rules of ``task``) in one
    streamed pass, keeping only the feature and target columns, compact.

    Peak memory: the kept columns plus one batch, plus one column while the batches
    of a column are joined.  A whole-file read would hold the parsed frame (a Python
    string per categorical cell) and its copies besides.
    """
    import pandas as pd

    names, batches = open_batches(staged, fmt, spec)
    checker = data.Checker(spec, task)
    checker.columns(names)
    numeric: dict[str, list[np.ndarray]] = {
        f.name: [] for f in spec.features if f.type is FeatureType.numeric
    }
    categorical = {f.name: CategoryCodes() for f in spec.features if f.name not in numeric}
    target: list[pd.Series] = []
    # The sensitive columns as read (an input's too: binning needs its raw values).
    sensitive: dict[str, list[pd.Series]] = {f.name: [] for f in spec.sensitive_features}
    for frame in batches:
        checker.batch(frame)
        if checker.defect is not None:  # refused already: keep counting, stop keeping
            numeric, categorical, target, sensitive = {}, {}, [], {}
            continue
        for name, kept in sensitive.items():
            labels = fairness.group_labels(frame[name].to_numpy(), _sensitive(spec, name))
            kept.append(pd.Series(labels))
        # Copies, not views: a view would keep the batch's whole block alive.
        for name, parts in numeric.items():
            parts.append(frame[name].to_numpy(dtype=np.float64, copy=True))
        for name, codes in categorical.items():
            codes.add(frame[name])
        target.append(frame[spec.target].reset_index(drop=True).copy(deep=True))
    _refuse_no_rows(staged, fmt, checker.rows, len(names))
    checker.finish()
    rows = checker.rows
    y = pd.concat(target, ignore_index=True) if len(target) > 1 else target[0]
    del target
    from pandas.api.types import union_categoricals

    # union_categoricals: the batches' categories differ (a group absent from one).
    groups = {
        name: union_categoricals([p.array for p in parts], ignore_order=True)
        for name, parts in sensitive.items()
    }
    if not categorical:
        matrix = np.empty((rows, len(spec.features)), dtype=np.float64, order="F")
        for j, f in enumerate(spec.features):
            parts = numeric.pop(f.name)
            np.concatenate(parts, out=matrix[:, j])
            del parts
        return TrainingData(matrix, y, rows, groups)
    columns: dict[int, Any] = {}
    for j, f in enumerate(spec.features):
        if f.name in numeric:
            parts = numeric.pop(f.name)
            columns[j] = np.concatenate(parts)
            del parts
        else:
            columns[j] = categorical.pop(f.name).column()
    # copy=False: one block per column, no consolidated copy of the numeric ones.
    frame = pd.DataFrame(columns, index=pd.RangeIndex(rows), copy=False)
    return TrainingData(frame, y, rows, groups)


def _sensitive(spec: DatasetSpec, name: str) -> SensitiveFeature:
    return next(f for f in spec.sensitive_features if f.name == name)
