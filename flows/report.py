"""The run report: output_root/report.parquet (one row per shot) and report.html (the same with
thumbnails), both written to a temp name and renamed."""
from __future__ import annotations

import base64
import html
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tasks.records import STAGES

STAGE_COLUMNS = [f"seconds_{s}" for s in STAGES]
REPORT_SCHEMA = pa.schema([
    ("shot_id", pa.string()), ("row", pa.int32()), ("status", pa.string()),
    ("error", pa.string()), ("failed_stage", pa.string()), ("engine", pa.string()),
    ("priority", pa.int32()), ("tags", pa.list_(pa.string())),
    *[(c, pa.float64()) for c in STAGE_COLUMNS],
    ("seconds_total", pa.float64()),
    ("cache_hits", pa.list_(pa.string())), ("executed", pa.list_(pa.string())),
    ("skipped", pa.string()),  # JSON-ish "stage: why; ..." for the human reader
    ("gate_score", pa.float64()), ("gate_threshold", pa.float64()),
    ("gate_decision", pa.string()), ("passes_run", pa.int32()),
    ("result_uri", pa.string()), ("matte_uri", pa.string()), ("review_uri", pa.string()),
    ("thumbnail", pa.string()), ("flow_run_id", pa.string()),
])


def write_report(rows: list[dict], output_root: str | os.PathLike) -> tuple[str, str]:
    root = Path(output_root)
    root.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist([{f.name: r.get(f.name) for f in REPORT_SCHEMA} for r in rows],
                                 schema=REPORT_SCHEMA)
    pq_path = root / "report.parquet"
    tmp = root / ".report.parquet.tmp"
    pq.write_table(table, tmp)
    tmp.replace(pq_path)
    html_path = root / "report.html"
    tmp = root / ".report.html.tmp"
    tmp.write_text(render_html(rows))
    tmp.replace(html_path)
    return str(pq_path), str(html_path)


def merge_rows(old: list[dict], new: list[dict]) -> list[dict]:
    """A previous report's rows with those of the shots in `new` replaced by `new`'s rows
    (every old row of a rerun shot id goes, duplicates included); the others are kept."""
    rerun = {r["shot_id"] for r in new}
    return [r for r in old if r.get("shot_id") not in rerun] + list(new)


def read_report(path: str | os.PathLike) -> list[dict]:
    p = Path(path)
    if p.is_dir():
        p = p / "report.parquet"
    return pq.read_table(p).to_pylist()


def _thumb_tag(path: str | None) -> str:
    if not path or not os.path.isfile(path):
        return ""
    try:
        import cv2

        img = cv2.imread(path)
        if img is None:
            return ""
        h, w = img.shape[:2]
        scale = 240 / max(w, 1)
        img = cv2.resize(img, (240, max(1, int(h * scale))), interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
        if not ok:
            return ""
        return f'<img src="data:image/jpeg;base64,{base64.b64encode(buf).decode()}">'
    except Exception:  # a thumbnail is never worth failing a report
        return ""


def render_html(rows: list[dict]) -> str:
    ok = sum(r["status"] == "ok" for r in rows)
    head = ["shot", "status", "error", "engine", *STAGES, "total s", "cache hits", "gate",
            "result", "thumbnail"]
    out = ["<!doctype html><meta charset='utf-8'><title>void-batch report</title>",
           "<style>body{font:13px sans-serif}td,th{border:1px solid #ccc;padding:3px 6px;"
           "vertical-align:top}.failed{background:#fdd}.ok{background:#dfd}</style>",
           f"<h1>void-batch report</h1><p>{ok} of {len(rows)} shots ok</p><table><tr>",
           "".join(f"<th>{html.escape(h)}</th>" for h in head), "</tr>"]
    for r in rows:
        e = html.escape
        gate = (f"{r['gate_score']:.3f} / {r['gate_threshold']} → {r['gate_decision']}"
                if r.get("gate_score") is not None else e(r.get("gate_decision") or ""))
        cells = [e(r["shot_id"] or "?"), e(r["status"]), e(r.get("error") or ""),
                 e(r.get("engine") or ""),
                 *[f"{r[c]:.2f}" if r.get(c) is not None else "" for c in STAGE_COLUMNS],
                 f"{r.get('seconds_total') or 0:.2f}", e(", ".join(r.get("cache_hits") or [])),
                 gate, e(r.get("result_uri") or ""), _thumb_tag(r.get("thumbnail"))]
        out.append(f"<tr class='{e(r['status'])}'>" + "".join(f"<td>{c}</td>" for c in cells)
                   + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def format_table(rows: list[dict]) -> str:
    """Plain-text summary for the terminal."""
    lines = [f"{'shot':<24} {'status':<8} {'seconds':>8} {'cached':>7}  note"]
    for r in rows:
        hits = len(r.get("cache_hits") or [])
        ran = hits + len(r.get("executed") or [])
        note = r.get("error") or (f"gate {r['gate_decision']}" if r.get("gate_decision") else "")
        lines.append(f"{(r['shot_id'] or '?')[:24]:<24} {r['status']:<8} "
                     f"{r.get('seconds_total') or 0:>8.2f} {f'{hits}/{ran}':>7}  {note[:100]}")
    ok = sum(r["status"] == "ok" for r in rows)
    lines.append(f"{ok} of {len(rows)} shots ok")
    return "\n".join(lines)
