"""report.html: the report table for a browser, with thumbnails."""
from __future__ import annotations

import base64
import html
import os

from tasks.graph import stage_names


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
    head = ["shot", "status", "error", "engine", *stage_names(), "total s", "cache hits", "gate",
            "result", "thumbnail"]
    out = ["<!doctype html><meta charset='utf-8'><title>void-batch report</title>",
           "<style>body{font:13px sans-serif}td,th{border:1px solid #ccc;padding:3px 6px;"
           "vertical-align:top}.failed{background:#fdd}.ok{background:#dfd}</style>",
           f"<h1>void-batch report</h1><p>{ok} of {len(rows)} shots ok</p><table><tr>",
           "".join(f"<th>{html.escape(h)}</th>" for h in head), "</tr>"]
    columns = [f"seconds_{s}" for s in stage_names()]
    for r in rows:
        e = html.escape
        gate = (f"{r['gate_score']:.3f} / {r['gate_threshold']} → {r['gate_decision']}"
                if r.get("gate_score") is not None else e(r.get("gate_decision") or ""))
        cells = [e(r["shot_id"] or "?"), e(r["status"]), e(r.get("error") or ""),
                 e(r.get("engine") or ""),
                 *[f"{r[c]:.2f}" if _num(r.get(c)) else "" for c in columns],
                 f"{r.get('seconds_total') or 0:.2f}", e(", ".join(r.get("cache_hits") or [])),
                 gate, e(r.get("result_uri") or ""), _thumb_tag(r.get("thumbnail"))]
        out.append(f"<tr class='{e(r['status'])}'>" + "".join(f"<td>{c}</td>" for c in cells)
                   + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _num(v) -> bool:
    return v is not None and v == v  # not None, not NaN
