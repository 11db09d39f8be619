"""The peers of bench/drift.py, run inside their own virtualenvs.

    <evidently-venv>/bin/python bench/drift_peers.py evidently WINDOWS_DIR OUT.json
    <nannyml-venv>/bin/python bench/drift_peers.py nannyml WINDOWS_DIR OUT.json

WINDOWS_DIR holds one ``<config>.npz`` per dataset and window size (written by
bench/drift.py): ``reference`` (rows x columns), ``windows`` (k x rows x columns),
``names``, ``categorical`` (mask) - categorical columns hold integer codes, given to the
peers as strings "c<code>" so that both treat them as categorical.  OUT.json maps each
config to a list of k window verdicts; Evidently's also the "any column" verdicts.

Only numpy, pandas and the peer are imported here: the project is not installed in
these virtualenvs.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def frame(matrix: np.ndarray, names: list[str], categorical: np.ndarray) -> pd.DataFrame:
    columns: dict[str, Any] = {}
    for j, name in enumerate(names):
        col = matrix[:, j]
        columns[name] = (
            np.char.add("c", col.astype(np.int64).astype(str)) if categorical[j] else col
        )
    return pd.DataFrame(columns)


def evidently(data: Any) -> dict[str, list[bool]]:
    """DataDriftPreset's decision with its defaults: a test per column chosen by
    Evidently from the column's type and the data size, dataset drift when at least
    half the columns drift (drift_share 0.5).  DatasetDriftMetric is the metric of the
    preset that makes that decision; computed alone it is ~10x faster than the full
    preset (no per-column plots), and the first windows are checked against the
    preset (evidently 0.7's Report API) to show the two agree."""
    from evidently.legacy.metrics import DatasetDriftMetric
    from evidently.legacy.pipeline.column_mapping import ColumnMapping
    from evidently.legacy.report import Report as LegacyReport

    names = [str(n) for n in data["names"]]
    cat = data["categorical"].astype(bool)
    ref = frame(data["reference"], names, cat)
    mapping = ColumnMapping(
        numerical_features=[n for n, c in zip(names, cat, strict=True) if not c],
        categorical_features=[n for n, c in zip(names, cat, strict=True) if c],
    )
    dataset, any_column = [], []
    for i, window in enumerate(data["windows"]):
        cur = frame(window, names, cat)
        report = LegacyReport(metrics=[DatasetDriftMetric()])
        report.run(reference_data=ref, current_data=cur, column_mapping=mapping)
        result = report.as_dict()["metrics"][0]["result"]
        dataset.append(bool(result["dataset_drift"]))
        any_column.append(int(result["number_of_drifted_columns"]) > 0)
        if i < CHECK_PRESET:
            preset = preset_share(ref, cur, mapping)
            if abs(preset - float(result["share_of_drifted_columns"])) > 1e-9:
                raise SystemExit(
                    f"the preset and DatasetDriftMetric disagree: {preset} vs {result}"
                )
    return {"dataset": dataset, "any": any_column}


#: Windows per config checked against the full DataDriftPreset (the new Report API).
CHECK_PRESET = 1


def preset_share(ref: pd.DataFrame, cur: pd.DataFrame, mapping: Any) -> float:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(
        numerical_columns=list(mapping.numerical_features),
        categorical_columns=list(mapping.categorical_features),
    )
    snapshot = Report([DataDriftPreset()]).run(
        current_data=Dataset.from_pandas(cur, data_definition=definition),
        reference_data=Dataset.from_pandas(ref, data_definition=definition),
    )
    for metric in snapshot.dict()["metrics"]:
        if metric["metric_name"].startswith("DriftedColumnsCount"):
            return float(metric["value"]["share"])
    raise SystemExit("DataDriftPreset reported no DriftedColumnsCount")


def nannyml(data: Any) -> dict[str, list[bool]]:
    """UnivariateDriftCalculator with its defaults (Jensen-Shannon for continuous and
    categorical columns, thresholds at the reference chunks' mean +- 3 std), chunks of the
    window size; a window alerts when any column does."""
    import nannyml as nml

    names = [str(n) for n in data["names"]]
    cat = data["categorical"].astype(bool)
    windows = data["windows"]
    size = windows.shape[1]
    ref = frame(data["reference"], names, cat)
    analysis = frame(windows.reshape(-1, windows.shape[2]), names, cat)
    calc = nml.UnivariateDriftCalculator(column_names=names, chunk_size=size)
    calc.fit(ref)
    result = calc.calculate(analysis).filter(period="analysis").to_df()
    alerts = result.xs("alert", axis=1, level=-1).to_numpy(dtype=bool)
    if alerts.shape[0] != windows.shape[0]:
        raise SystemExit(f"nannyml made {alerts.shape[0]} chunks of {windows.shape[0]} windows")
    return {"dataset": alerts.any(axis=1).tolist()}


def main() -> None:
    tool, directory, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    warnings.filterwarnings("ignore")
    run = {"evidently": evidently, "nannyml": nannyml}[tool]
    results = {}
    for path in sorted(directory.glob("*.npz")):
        with np.load(path, allow_pickle=False) as data:
            results[path.stem] = run(data)
        print(f"{tool}: {path.stem} done", file=sys.stderr, flush=True)
    out.write_text(json.dumps(results))


if __name__ == "__main__":
    main()
