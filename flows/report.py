"""The run report: one row per shot, kept as a pandas DataFrame with a fixed Parquet schema.

    <output_root>/report.parquet, report.html          the current state of every shot
    <output_root>/runs/<flow run id>/report.parquet    what each run did (history)

Every command that writes a report merges its rows into the current one (a rerun shot's row
replaces its old row; the others stay). A row keeps, per stage, this run's wall seconds
(`seconds_<stage>`: a lookup for a cache hit) and the compute seconds of the run that produced
the stage's result (`compute_<stage>`), so a cached re-run does not erase the real figures.
Reports are written through fsspec (local folders and object stores alike) by
void_engine.io.atomic: a temporary name, then moved into place, removed on any error.
"""
from __future__ import annotations

import os
import tempfile

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tasks.graph import stage_names
from void_engine.errors import InputError
from void_engine.io.atomic import write_bytes

REPORT, HTML, RUNS = "report.parquet", "report.html", "runs"
_BASE = [
    ("shot_id", pa.string()), ("row", pa.int32()), ("status", pa.string()),
    ("error", pa.string()), ("failed_stage", pa.string()), ("engine", pa.string()),
    ("model_id", pa.string()), ("priority", pa.int32()), ("tags", pa.list_(pa.string())),
]
_TAIL = [
    ("seconds_total", pa.float64()), ("model_load_seconds", pa.float64()),
    ("cache_hits", pa.list_(pa.string())), ("executed", pa.list_(pa.string())),
    ("skipped", pa.string()),  # "stage: why; ..." for the human reader
    ("mask_path", pa.string()), ("mask_degraded", pa.bool_()),
    ("gate_score", pa.float64()), ("gate_threshold", pa.float64()),
    ("gate_decision", pa.string()), ("passes_run", pa.int32()),
    ("qc_flicker_ratio", pa.float64()), ("qc_seam", pa.float64()),
    ("qc_flagged", pa.bool_()), ("qc_reasons", pa.string()),
    ("display_note", pa.string()), ("notes", pa.list_(pa.string())),
    ("result_uri", pa.string()), ("matte_uri", pa.string()), ("review_uri", pa.string()),
    ("thumbnail", pa.string()), ("output_dir", pa.string()),
    ("flow_run_id", pa.string()), ("flow_run_url", pa.string()), ("host", pa.string()),
]


def schema() -> pa.Schema:
    """The report's columns: per stage of tasks.graph.STAGES, this run's wall seconds
    (`seconds_<stage>`) and the producing run's compute seconds (`compute_<stage>`)."""
    stages = stage_names()
    return pa.schema([*_BASE, *[(f"seconds_{s}", pa.float64()) for s in stages],
                      *[(f"compute_{s}", pa.float64()) for s in stages], *_TAIL])


def columns() -> list[str]:
    return schema().names


def frame(rows: list[dict]) -> pd.DataFrame:
    """Rows (dicts) as a report DataFrame with every column of schema(), in order."""
    cols = columns()
    return pd.DataFrame([{c: r.get(c) for c in cols} for r in rows], columns=cols)


def merge(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """`old` with the rows of the shots in `new` replaced by `new`'s (duplicates of a rerun
    shot id included), ordered by manifest row."""
    keep = old[~old["shot_id"].isin(set(new["shot_id"]))]
    parts = [df for df in (keep, new) if len(df)]
    return by_row(pd.concat(parts, ignore_index=True) if parts else new)


def by_row(df: pd.DataFrame) -> pd.DataFrame:
    """In manifest row order (rows without one last)."""
    return df.sort_values("row", kind="stable", na_position="last").reset_index(drop=True)


def _table(df: pd.DataFrame) -> pa.Table:
    sch = schema()
    df = df.reindex(columns=sch.names)
    df = df.astype(object).where(df.notna(), None)
    return pa.Table.from_pylist(df.to_dict("records"), schema=sch)


def _path(output_root_or_file: str) -> str:
    p = str(output_root_or_file)
    return p if p.endswith(".parquet") else f"{p.rstrip('/')}/{REPORT}"


def load(path: str) -> pd.DataFrame:
    """A report (an output root, or a report.parquet) as a DataFrame; FileNotFoundError when
    there is none; InputError when the file is not a report."""
    return _read(path).to_pandas(types_mapper=None)


def records(df: pd.DataFrame) -> list[dict]:
    """DataFrame rows as plain dicts (lists as lists, nulls as None)."""
    return _table(df).to_pylist()


def read_report(path: str | os.PathLike) -> list[dict]:
    """A report's rows as plain dicts (lists as lists, nulls as None)."""
    return _read(str(path)).to_pylist()


def _read(path: str) -> pa.Table:
    uri = _path(str(path))
    try:
        with fsspec.open(uri, "rb") as f:
            table = pq.read_table(f)
    except FileNotFoundError:
        raise
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{uri} is not a readable report: {exc}") from None
    if "shot_id" not in table.column_names or "status" not in table.column_names:
        raise InputError(f"{uri} is not a void-batch report (no shot_id/status columns)")
    sch = schema()
    for f in sch:  # a report from an older version (or other stages): missing columns empty
        if f.name not in table.column_names:
            table = table.append_column(f, pa.nulls(len(table), f.type))
    return table.select(sch.names).cast(sch)


def write(df: pd.DataFrame, output_root: str, run_id: str | None = None,
          manifest: str | None = None) -> dict[str, str]:
    """Merge `df` into the output root's report and write it (Parquet + HTML), plus this
    run's own copy under runs/<run_id>/. Returns the paths written. `manifest` goes into the
    HTML page's header."""
    from flows.report_html import render_html

    root = str(output_root).rstrip("/")
    try:
        current = merge(load(root), df)
    except FileNotFoundError:
        current = by_row(df)
    written = {}
    if run_id:
        written["run_report"] = write_bytes(f"{root}/{RUNS}/{run_id}/{REPORT}", _parquet(df),
                                            what="report")
    table = _table(current)
    written["report"] = write_bytes(f"{root}/{REPORT}", _parquet(table), what="report")
    page = render_html(table.to_pylist(), base=root, manifest=manifest, run_id=run_id)
    written["html"] = write_bytes(f"{root}/{HTML}", page.encode(), what="report")
    return written


def _parquet(data: pd.DataFrame | pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(data if isinstance(data, pa.Table) else _table(data), sink)
    return sink.getvalue().to_pybytes()


def write_fallback(df: pd.DataFrame, run_id: str, manifest: str | None = None) -> str:
    """Where the report goes when the output root cannot take it (full disk, permissions)."""
    folder = os.path.join(tempfile.gettempdir(), "void-batch-reports", run_id or "run")
    return write(df, folder, manifest=manifest)["report"]


def format_table(rows: list[dict]) -> str:
    """Plain-text summary for the terminal."""
    lines = [f"{'shot':<24} {'status':<9} {'seconds':>8} {'cached':>7}  note"]
    for r in rows:
        hits = len(r.get("cache_hits") or [])
        ran = hits + len(r.get("executed") or [])
        note = r.get("error") or (f"gate {r['gate_decision']}" if r.get("gate_decision") else "")
        lines.append(f"{(r['shot_id'] or '?')[:24]:<24} {r['status']:<9} "
                     f"{r.get('seconds_total') or 0:>8.2f} {f'{hits}/{ran}':>7}  {note[:100]}")
    ok = sum(r["status"] == "ok" for r in rows)
    lines.append(f"{ok} of {len(rows)} shots ok")
    return "\n".join(lines)
