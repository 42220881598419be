"""A small Python API for notebooks: reports and manifests as pandas DataFrames.

    from void_batch import api
    df = api.read_report("out")                      # one row per shot, every report column
    df[df.status != "ok"][["shot_id", "failed_stage", "error"]]
    m = api.read_manifest("shots.parquet")           # the manifest's rows (+ an `errors` column)
    m.loc[m.shot_id == "sh010", "passes"] = "2"
    api.write_manifest(m, "shots.parquet")           # validated like `manifest check`
"""
from __future__ import annotations

import pandas as pd

from void_engine.errors import InputError


def read_report(path: str, run: str | None = None) -> pd.DataFrame:
    """The report of an output folder (or a report.parquet); `run`: one past run's report."""
    from flows import report

    return report.load(f"{path.rstrip('/')}/{report.RUNS}/{run}" if run else path)


def read_manifest(uri: str, *, check_files: bool = False) -> pd.DataFrame:
    """Every row of a manifest as written (URIs not resolved), plus `errors`: the problems
    `manifest check` finds in the row (empty list when it is good)."""
    from manifests.loader import load_manifest, read_table

    df = read_table(uri).to_pandas()
    m = load_manifest(uri, check_files=check_files)
    problems: dict[int, list[str]] = {}
    for e in m.errors:
        problems.setdefault(e.row, []).append(e.message)
    df["errors"] = [problems.get(i, []) for i in range(len(df))]
    return df


def write_manifest(df: pd.DataFrame, uri: str, *, engines=None) -> str:
    """Validate every row (types, mask inputs, unique ids, known engines) and write the
    manifest; raises InputError listing every bad row, writing nothing."""
    from manifests.loader import validate_records
    from manifests.loader import write_manifest as write
    from manifests.schema import SCHEMA

    records = [{k: _plain(v) for k, v in r.items() if k in SCHEMA.names}
               for r in df.to_dict("records")]
    m = validate_records(records, ".", engines=engines, check_files=False)
    if m.errors:
        raise InputError("manifest not written: " + "; ".join(str(e) for e in m.errors))
    return write(m.shots, uri)  # the validated rows: values in the schema's types


def _plain(v):
    """pandas/numpy cell values as the Python values the schema takes (NaN -> None)."""
    if hasattr(v, "tolist"):
        v = v.tolist()
    if isinstance(v, float) and v != v:
        return None
    return v
