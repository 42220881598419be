"""One report row per shot, built from what the flow knows about it (generic over the stages
of tasks.graph; the columns are flows.report.schema())."""
from __future__ import annotations

import socket

from manifests.loader import RowError
from tasks.graph import STAGES
from tasks.options import RunOptions


def shot_row(sr, row_index: int, options: RunOptions, run_id: str) -> dict:
    """`sr` is a flows.batch.ShotRun that has finished (ok, failed or cancelled)."""
    from tasks.context import StageContext

    shot = sr.shot
    ctx = StageContext(shot, options)
    row = {"shot_id": shot.shot_id, "row": row_index, "status": sr.status,
           "engine": ctx.engine_name, "model_id": _safe(lambda: ctx.engine_spec.model_id),
           "priority": shot.priority, "tags": list(shot.tags), "flow_run_id": run_id,
           "host": socket.gethostname(), "cache_hits": [], "executed": [], "notes": sr.notes}
    if sr.failed:
        row["failed_stage"], row["error"] = sr.failed
    skipped = []
    for s in STAGES:
        out = sr.known.get(s.name)
        if out is None:
            continue
        if out.status == "skipped":
            skipped.append(f"{s.name}: {out.note}")
            continue
        row[f"seconds_{s.name}"] = out.seconds
        row[f"compute_{s.name}"] = out.compute_seconds
        row["model_load_seconds"] = (row.get("model_load_seconds") or 0.0) + out.load_seconds
        (row["executed"] if out.executed else row["cache_hits"]).append(s.name)
    row["skipped"] = "; ".join(skipped)
    row["seconds_total"] = sum(row.get(f"seconds_{s.name}") or 0.0 for s in STAGES)
    row |= _mask_facts(sr) | _gate_facts(sr) | _delivery(sr) | _qc_facts(sr, options)
    decode = sr.known.get("decode")
    if decode is not None and decode.status == "done":
        row["display_note"] = decode.meta.get("display_note") or ""
    return row


def _safe(fn):
    try:
        return fn()
    except Exception:  # a report row is never worth failing over an unreadable weights folder
        return None


def _mask_facts(sr) -> dict:
    """Which mask path the shot took: given / vlm / fallback (with the reason)."""
    mode = sr.shot.mask_mode
    if mode == "quadmask":
        return {"mask_path": "given"}
    qm = sr.known.get("vlm_quadmask")
    if qm is None or qm.status != "done":
        return {"mask_path": None}
    m = qm.meta
    path = m.get("path") or "?"
    if m.get("error"):
        path += f" ({m['error']})"
    return {"mask_path": path, "mask_degraded": bool(m.get("degraded"))}


def _gate_facts(sr) -> dict:
    gate, p2 = sr.known.get("gate"), sr.known.get("pass2")
    facts: dict = {}
    if gate is not None and gate.status == "done":
        m = gate.meta
        facts = {"gate_score": m.get("score"), "gate_threshold": m.get("threshold"),
                 "gate_decision": "pass 2" if m.get("run_pass2") else "pass 1 only"}
    elif gate is not None:
        facts = {"gate_decision": f"not run ({gate.note})"}
    if sr.status == "ok":
        facts["passes_run"] = 2 if p2 is not None and p2.status == "done" else 1
    return facts


def _qc_facts(sr, options: RunOptions) -> dict:
    """The encode stage's QC figures (kept in its entry: a cached re-run still shows them),
    flagged against this run's thresholds."""
    enc = sr.known.get("encode")
    qc = enc.meta.get("qc") if enc is not None and enc.status == "done" else None
    if not qc:
        return {}
    ratio, seam = qc.get("flicker_ratio"), qc.get("seam")
    reasons = options.qc_thresholds().reasons(_num(ratio), _num(seam))
    return {"qc_flicker_ratio": ratio, "qc_seam": seam, "qc_flagged": bool(reasons),
            "qc_reasons": "; ".join(reasons)}


def _num(v) -> float:
    return float("nan") if v is None else float(v)


def _delivery(sr) -> dict:
    d = sr.delivered or {}
    return {"result_uri": d.get("result_uri"), "matte_uri": d.get("matte_uri"),
            "review_uri": d.get("review_movie_uri"), "thumbnail": d.get("contact_sheet_uri"),
            "output_dir": d.get("output_dir")}


def invalid_row(errs: list[RowError]) -> dict:
    """A manifest row that failed validation."""
    e = errs[0]
    return {"shot_id": str(e.shot_id) if e.shot_id is not None else None, "row": e.row,
            "status": "failed", "failed_stage": "manifest",
            "error": "; ".join(err.message for err in errs), "cache_hits": [], "executed": [],
            "seconds_total": 0.0, "tags": [], "host": socket.gethostname()}
