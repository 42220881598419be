"""report.html: the report for a browser, rendered from flows/templates/report.html.j2.

One self-contained file (styles, a small inline script for sorting and filtering by status,
thumbnails embedded as downscaled JPEGs): nothing is fetched from the network, and the page keeps
working when the output folder is moved or served, because media under the output root are
linked relative to the report. Other local files are file:// URLs and remote URIs stay as they
are. The template escapes every value (autoescape): errors and paths may contain anything, and
only known URL schemes become links (never javascript: or data:).

Rows may come from an older report, a DataFrame or a hand-made dict: every column is optional
and NaN counts as empty.
"""
from __future__ import annotations

import base64
import math
import os
from collections import Counter
from datetime import datetime
from functools import cache
from pathlib import Path
from urllib.parse import quote

import jinja2
import pandas as pd

from tasks.graph import stage_names
from void_engine.io.uri import is_local, local_path

TEMPLATE = "report.html.j2"
# Thumbnails fit this box (width, height), encoded at the size they are shown: a 16:9 plate's
# contact sheet (4 slated rows of plate | mask overlay | result) becomes ~265x240, ~20 KB.
THUMB_BOX = (320, 240)
_LINK_SCHEMES = ("http", "https", "file", "s3", "gs", "gcs", "az", "abfs", "abfss")
_STATUS_ORDER = ("ok", "failed", "cancelled")  # then any other status, alphabetically
_MEDIA = (("result", "result_uri"), ("matte", "matte_uri"), ("review", "review_uri"),
          ("folder", "output_dir"))


def render_html(rows: list[dict], *, base: str | None = None, manifest: str | None = None,
                run_id: str | None = None, generated: datetime | None = None,
                title: str = "void-batch report") -> str:
    """The report page of `rows` (report dicts). `base`: the folder report.html is written to
    (the output root), so media under it are linked relative to the page; `manifest` and
    `run_id` (this run, marked among the flow runs) go into the header."""
    root = _local_root(base)
    stages = _stage_columns(rows)
    shots = [_shot(r, i, root, stages) for i, r in enumerate(rows)]
    counts = Counter(s["status"] for s in shots)
    order = [s for s in _STATUS_ORDER if s in counts] + sorted(set(counts) - set(_STATUS_ORDER))
    when = (generated or datetime.now().astimezone()).strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    return _template().render(
        title=title, generated=when, manifest=_text(manifest), rows=shots, stages=stages,
        ok=counts.get("ok", 0), counts=[(s, counts[s]) for s in order],
        hosts=sorted({s["host"] for s in shots if s["host"]}), runs=_runs(rows, run_id),
        failures=[s for s in shots if s["status"] != "ok"], thumb_box=THUMB_BOX,
        display_notes=any(s["display_note"] for s in shots))


@cache
def _template() -> jinja2.Template:
    env = jinja2.Environment(loader=jinja2.PackageLoader("flows", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    return env.get_template(TEMPLATE)


# --- one shot's row ------------------------------------------------------------------------------
def _shot(r: dict, index: int, root: str | None, stages: list[str]) -> dict:
    shot_id = _text(r.get("shot_id")) or "?"
    run = _text(r.get("flow_run_id"))
    thumb = _text(r.get("thumbnail"))
    return {
        "anchor": f"shot-{index}", "shot_id": shot_id,
        "row": _fmt(r.get("row"), "d"), "status": _text(r.get("status")) or "unknown",
        "failed_stage": _text(r.get("failed_stage")), "error": _text(r.get("error")),
        "engine": _text(r.get("engine")), "model_id": _text(r.get("model_id")),
        "tags": _list(r.get("tags")), "mask_path": _text(r.get("mask_path")),
        "mask_degraded": r.get("mask_degraded") in (True,), **_gate(r), **_qc(r),  # np bools
        "passes": _fmt(r.get("passes_run"), "d"),
        "stages": [_stage_cell(r, s) for s in stages],
        "total": _fmt(r.get("seconds_total"), ".2f"), "total_sort": _fmt(r.get("seconds_total")),
        "load": _fmt(r.get("model_load_seconds"), ".2f"),
        "load_sort": _fmt(r.get("model_load_seconds")),
        **_media(r, root),
        "thumb": _thumbnail(thumb) if thumb else None,
        "thumb_href": _href(thumb, root) if thumb else None,
        "run_short": run[:8], "run_id": run,
        "run_href": _web_url(_text(r.get("flow_run_url"))), "host": _text(r.get("host")),
        "display_note": _text(r.get("display_note")), "notes": _list(r.get("notes")),
        "skipped": _text(r.get("skipped")),
    }


def _gate(r: dict) -> dict:
    score, decision = _number(r.get("gate_score")), _text(r.get("gate_decision"))
    if score is None:
        return {"gate": decision, "gate_sort": ""}
    threshold = _fmt(r.get("gate_threshold"), ".3g") or "?"
    text = f"{score:.3f} / {threshold}" + (f" \u2192 {decision}" if decision else "")
    return {"gate": text, "gate_sort": repr(score)}


def _qc(r: dict) -> dict:
    """QC figures: flicker and seam ratios (1 = like the plate), flagged for a supervisor."""
    flicker, seam = _number(r.get("qc_flicker_ratio")), _number(r.get("qc_seam"))
    if flicker is None and seam is None:
        return {"qc": "", "qc_sort": "", "qc_flagged": False, "qc_reasons": ""}
    text = f"flicker {_fmt(flicker, '.2f') or 'n/a'}x, seam {_fmt(seam, '.2f') or 'n/a'}x"
    return {"qc": text, "qc_sort": repr(max(v for v in (flicker, seam) if v is not None)),
            "qc_flagged": r.get("qc_flagged") in (True,), "qc_reasons": _text(r.get("qc_reasons"))}


def _stage_columns(rows: list[dict]) -> list[str]:
    """The stages any row has figures for (a column of blanks tells a reader nothing)."""
    return [s for s in stage_names()
            if any(_number(r.get(f"seconds_{s}")) is not None
                   or _number(r.get(f"compute_{s}")) is not None for r in rows)]


def _stage_cell(r: dict, stage: str) -> dict:
    seconds, compute = _number(r.get(f"seconds_{stage}")), _number(r.get(f"compute_{stage}"))
    cached = stage in _list(r.get("cache_hits"))
    sub = (["cached"] if cached else []) + \
        ([f"compute {compute:.2f}"] if compute is not None else [])
    skipped = next((p for p in _text(r.get("skipped")).split("; ")
                    if p.startswith(f"{stage}: ")), "")
    if cached:
        title = f"{stage}: cache hit this run; the run that produced it computed for " \
                f"{_fmt(compute, '.2f') or '?'} s"
    else:
        title = f"skipped ({skipped})" if skipped and seconds is None else ""
    return {"text": _fmt(seconds, ".2f"), "sort": _fmt(seconds), "sub": " \u00b7 ".join(sub),
            "title": title}


def _media(r: dict, root: str | None) -> dict:
    links, unlinked = [], []
    for label, column in _MEDIA:
        uri = _text(r.get(column))
        if not uri:
            continue
        href = _href(uri, root)
        (links if href else unlinked).append({"label": label, "uri": uri, "href": href})
    return {"links": links, "unlinked": unlinked}


def _runs(rows: list[dict], current: str | None) -> list[dict]:
    """The flow runs that produced the rows (a merged report holds several), in row order."""
    runs: dict[str, dict] = {}
    for r in rows:
        run = _text(r.get("flow_run_id"))
        if not run:
            continue
        entry = runs.setdefault(run, {"id": run, "href": None, "shots": 0,
                                      "current": run == current})
        entry["shots"] += 1
        entry["href"] = entry["href"] or _web_url(_text(r.get("flow_run_url")))
    return list(runs.values())


# --- links and thumbnails -------------------------------------------------------------------------
def _local_root(base: str | None) -> str | None:
    if not base or not is_local(base):
        return None
    return os.path.abspath(local_path(base))


def _href(uri: str, root: str | None) -> str | None:
    """A link to `uri` from the page in `root`: relative under the root, file:// for other
    local paths, the URI itself for known remote schemes, None for anything else."""
    scheme, sep, _ = uri.partition("://")
    if sep and scheme.lower() != "file":
        return uri if scheme.lower() in _LINK_SCHEMES else None
    path = os.path.abspath(local_path(uri))
    if root and os.path.commonpath([path, root]) == root:
        return quote(Path(os.path.relpath(path, root)).as_posix())  # quote: no scheme, no '#'
    return Path(path).as_uri()


def _web_url(url: str) -> str | None:
    return url if url.lower().startswith(("http://", "https://")) else None


def _thumbnail(uri: str) -> str | None:
    """The contact sheet as a small JPEG data: URI (local files only: a report never waits
    on an object store for a picture)."""
    if not is_local(uri):
        return None
    path = local_path(uri)
    if not os.path.isfile(path):
        return None
    try:
        import cv2

        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is None:
            return None
        h, w = img.shape[:2]
        scale = min(THUMB_BOX[0] / w, THUMB_BOX[1] / h)
        if scale < 1:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
    except Exception:  # a thumbnail is never worth failing a report
        return None
    return f"data:image/jpeg;base64,{base64.b64encode(buf).decode()}" if ok else None


# --- values as text (None, NaN, lists and arrays from any report) ---------------------------------
def _number(v) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _fmt(v, spec: str = "r") -> str:
    """`v` formatted as a number ('' when it is none); spec 'r': exact, for sorting."""
    f = _number(v)
    if f is None:
        return ""
    if spec == "r":
        return repr(f)
    return format(int(f), spec) if spec == "d" else format(f, spec)


def _text(v) -> str:
    if hasattr(v, "tolist"):  # numpy scalars and arrays (a DataFrame's cells)
        v = v.tolist()
    if isinstance(v, list | tuple):
        return ", ".join(_list(v))
    if v is None or pd.isna(v):
        return ""
    return v if isinstance(v, str) else str(v)


def _list(v) -> list[str]:
    if hasattr(v, "tolist"):
        v = v.tolist()
    if isinstance(v, list | tuple):
        return [t for t in map(_text, v) if t]
    t = _text(v)
    return [t] if t else []
