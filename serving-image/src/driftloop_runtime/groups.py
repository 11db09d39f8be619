"""Per-group monitoring of live traffic: the group of each served row, and its counters.

The server learns the sensitive features from the artifact set training wrote: their
definitions (bins, whether they are model inputs) from the manifest, their groups from
``fairness.json`` (the largest MAX_MONITORED_GROUPS of the held-out data; a binned
feature has all its bins).  A request gives a row's attribute in the request parameter
PARAMETER_GROUPS, or, for a sensitive feature that is also a model input, in the input
itself.  Any other value is OTHER_GROUP and an absent or null one MISSING_GROUP, so
the label sets are fixed at start: the counters cannot grow with the traffic.

The counters are plain prometheus counters, summed over the replicas in PromQL.  The
groups of a prediction are kept beside it in the shared state (packed in one int64,
8 bits per feature) so the pod that made it counts its feedback per group.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

import driftloop_contract as contract
from driftloop_contract import SensitiveFeature
from driftloop_runtime.fairness import group_labels
from driftloop_runtime.model import InputError
from driftloop_runtime.shared import NO_GROUPS

#: Bits per feature in a packed row (labels per feature stay far below 256).
_BITS = 8


@dataclass(frozen=True)
class GroupedFeature:
    """One monitored sensitive feature: its group labels (the code is the index)."""

    spec: SensitiveFeature
    #: The monitored groups, then OTHER_GROUP, then MISSING_GROUP.
    labels: tuple[str, ...]
    #: The model input column holding it, when it is one.
    input_index: int | None
    #: Binned: the code of each bin (in group_labels' order), OTHER if not monitored.
    bin_codes: tuple[int, ...] = ()
    #: Categorical: label -> code of the monitored groups.
    index: dict[str, int] = field(default_factory=dict)

    @property
    def other(self) -> int:
        return len(self.labels) - 2

    @property
    def missing(self) -> int:
        return len(self.labels) - 1

    def codes(self, values: Sequence[Any] | npt.NDArray[Any]) -> npt.NDArray[np.int64]:
        """The group code of each value; a value that is not a monitored group is
        OTHER, a missing one (None, NaN) MISSING.  Bins as training's group_labels."""
        bins = self.spec.bins
        if bins is not None and isinstance(values, np.ndarray) and values.dtype.kind == "f":
            # a numeric input column: one vectorised pass (the loop below costs ~1 us a row)
            found: npt.NDArray[np.int64] = np.asarray(self.bin_codes, dtype=np.int64)[
                np.searchsorted(bins, np.nan_to_num(values), side="right")
            ]
            found[np.isnan(values)] = self.missing
            return found
        out = np.empty(len(values), dtype=np.int64)
        index = self.index
        for i, value in enumerate(values):
            if value is None or (isinstance(value, float) and math.isnan(value)):
                out[i] = self.missing
            elif bins is None:
                out[i] = index.get(str(value)[: contract.MAX_GROUP_LABEL], self.other)
            elif isinstance(value, int | float | np.number) and not isinstance(value, bool):
                # [lo, hi) intervals, like pd.cut(right=False) in group_labels
                out[i] = self.bin_codes[int(np.searchsorted(bins, float(value), side="right"))]
            else:  # not a number: training refuses it, monitoring only folds it
                out[i] = self.other
        return out


class GroupMonitor:
    """The monitored sensitive features of one model and the group codes of requests."""

    def __init__(self, features: list[GroupedFeature]) -> None:
        self.features = features
        self.names = [f.spec.name for f in features]

    @classmethod
    def load(
        cls, directory: Path, manifest: dict[str, Any], inputs: dict[str, int]
    ) -> GroupMonitor | None:
        """From an artifact set; None when it has no sensitive features (or predates
        them).  ``inputs``: model input name -> column."""
        specs = [SensitiveFeature.model_validate(s) for s in manifest.get("sensitiveFeatures", [])]
        if not specs:
            return None
        report: dict[str, list[str]] = {}
        path = directory / contract.FAIRNESS_FILE
        if path.exists():  # verified with the manifest like every file of the set
            for entry in orjson.loads(path.read_bytes()):
                report[entry["feature"]] = [g["group"] for g in entry.get("groups", [])]
        features = []
        for spec in specs[: 64 // _BITS]:
            bin_names: list[str] = []
            if spec.bins is not None:  # every bin, named by training's own function
                edges = spec.bins
                bin_names = [str(g) for g in group_labels([edges[0] - 1, *edges], spec)]
                known = bin_names
            else:
                known = [g for g in report.get(spec.name, []) if g != contract.MISSING_GROUP]
            known = known[: max(contract.MAX_MONITORED_GROUPS, len(bin_names))]
            labels = (*known, contract.OTHER_GROUP, contract.MISSING_GROUP)
            codes = {label: code for code, label in enumerate(known)}
            features.append(
                GroupedFeature(
                    spec,
                    labels,
                    inputs.get(spec.name) if spec.use_as_input else None,
                    tuple(codes.get(b, len(known)) for b in bin_names),
                    codes,
                )
            )
        return cls(features)

    def resolve(self, req: dict[str, Any], x: Any, rows: int) -> npt.NDArray[np.int64]:
        """Each row's packed group codes: the inputs' values for sensitive inputs, the
        request parameter's for the others (one value for every row, or a list of one
        per row).  Raises InputError (400) on a malformed parameter."""
        given = self._parameter(req)
        packed = np.zeros(rows, dtype=np.int64)
        for j, feature in enumerate(self.features):
            if feature.input_index is not None:
                values: Any = x[:, feature.input_index]
            else:
                value = given.get(feature.spec.name)
                if isinstance(value, list):
                    if len(value) != rows:
                        raise InputError(
                            f"parameter {contract.PARAMETER_GROUPS!r}: "
                            f"{feature.spec.name!r} has {len(value)} values for {rows} rows"
                        )
                    values = value
                else:  # one value for every row: its code once
                    packed |= int(feature.codes([value])[0]) << (_BITS * j)
                    continue
            packed |= feature.codes(values) << (_BITS * j)
        return packed

    def _parameter(self, req: dict[str, Any]) -> dict[str, Any]:
        params = req.get("parameters")
        given = params.get(contract.PARAMETER_GROUPS) if isinstance(params, dict) else None
        if given is None:
            return {}
        if not isinstance(given, dict) or not set(given) <= set(self.names):
            raise InputError(
                f"parameter {contract.PARAMETER_GROUPS!r} must be an object of the sensitive "
                f"features {self.names} (a value, or a list of one value per row)"
            )
        return given

    def unpack(self, packed: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Packed rows -> (rows, features) group codes."""
        shifts = np.arange(len(self.features), dtype=np.int64) * _BITS
        out: npt.NDArray[np.int64] = (packed[:, None] >> shifts) & ((1 << _BITS) - 1)
        return out


class GroupCounters:
    """The per-group counters of one worker (prometheus multiprocess, like Metrics).

    Every (feature, group[, class]) child is created at start, at zero, so a group's
    first predictions already show in rate() and the series are fixed."""

    def __init__(
        self,
        monitor: GroupMonitor,
        base: tuple[str, ...],
        base_values: tuple[str, ...],
        classes: list[str] | None,
    ) -> None:
        from prometheus_client import Counter

        self.monitor = monitor
        self.classes = classes
        labels = [*base, "feature", "group"]

        def children(name: str, doc: str, extra: Sequence[str] = ()) -> list[list[Any]]:
            counter = Counter(name, doc, [*labels, "class"] if extra else labels, registry=None)
            return [
                [
                    counter.labels(*base_values, f.spec.name, g, *((c,) if extra else ()))
                    for g in f.labels
                    for c in (extra or [""])
                ]
                for f in monitor.features
            ]

        self.labeled = children(
            contract.METRIC_GROUP_LABELED_ROWS, "Rows with ground truth per group."
        )
        if classes is not None:
            self.predicted = children(
                contract.METRIC_GROUP_PREDICTIONS, "Predicted rows per group by class.", classes
            )
            self.correct = children(
                contract.METRIC_GROUP_CORRECT_ROWS,
                "Rows with ground truth per group whose prediction was right.",
            )
        else:
            self.predicted = children(
                contract.METRIC_GROUP_PREDICTIONS, "Predicted rows per group."
            )
            self.value_sum = children(
                contract.METRIC_GROUP_PREDICTION_SUM, "Sum of the predicted values per group."
            )
            self.abs_error = children(
                contract.METRIC_GROUP_ABS_ERROR,
                "Sum of |prediction - ground truth| per group over rows with ground truth.",
            )

    @staticmethod
    def _add(children: list[Any], keys: Any, weights: Any = None) -> None:
        sums = np.bincount(keys, weights=weights, minlength=len(children))
        for k in np.flatnonzero(sums):
            children[k].inc(float(sums[k]))

    def predictions(self, packed: npt.NDArray[np.int64], codes: Any, raw: Any) -> None:
        groups = self.monitor.unpack(packed)
        for j in range(groups.shape[1]):
            if self.classes is not None:
                keys = groups[:, j] * len(self.classes) + codes.astype(np.int64)
                self._add(self.predicted[j], keys)
            else:
                self._add(self.predicted[j], groups[:, j])
                self._add(self.value_sum[j], groups[:, j], np.asarray(raw, dtype=np.float64))

    def ground_truth(self, packed: npt.NDArray[np.int64], pairs: Any) -> None:
        """Count (prediction, label) pairs per group of the rows they belong to."""
        known = packed != NO_GROUPS
        if not known.any():
            return
        groups, pairs = self.monitor.unpack(packed[known]), pairs[known]
        for j in range(groups.shape[1]):
            self._add(self.labeled[j], groups[:, j])
            if self.classes is not None:
                self._add(self.correct[j], groups[:, j], (pairs[:, 0] == pairs[:, 1]) * 1.0)
            else:
                self._add(self.abs_error[j], groups[:, j], np.abs(pairs[:, 0] - pairs[:, 1]))
