"""The end of a flow run: the report (merged into the output root's), the Prefect artifacts a
TD reads in the UI, and the flow's final state (Failed if any shot failed, decided only now,
after every shot ran)."""
from __future__ import annotations

import logging
from collections import Counter

from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.states import Cancelled, Failed

from flows import control, report
from tasks.errors import one_line
from tasks.options import RunOptions

log = logging.getLogger(__name__)


def flow_run_url(run_id: str) -> str | None:
    from prefect.settings import PREFECT_UI_URL

    base = PREFECT_UI_URL.value()
    return f"{base.rstrip('/')}/runs/flow-run/{run_id}" if base and run_id else None


def finish(rows: list[dict], options: RunOptions, title: str, run_id: str):
    url = flow_run_url(run_id)
    for r in rows:
        r["flow_run_id"], r["flow_run_url"] = run_id, url
    df = report.frame(rows)
    try:
        where = report.write(df, options.output_root, run_id, options.manifest)["report"]
    except Exception as exc:  # the run's account is never lost: write it elsewhere, say where
        why = f"report not written to {options.output_root} ({one_line(exc)})"
        try:
            fallback = report.write_fallback(df, run_id, options.manifest)
        except Exception as exc2:
            log.error("%s; nor to the fallback folder (%s):\n%s", why, one_line(exc2),
                      report.format_table(rows))
            return Failed(message=f"{why}; nor to a fallback folder ({one_line(exc2)}): "
                                  f"the shots' results are in the log")
        log.error("%s; it is in %s", why, fallback)
        return Failed(message=f"{why}; it is in {fallback}")
    _artifacts(rows, title, where)
    failed = [r for r in rows if r["status"] == "failed"]
    cancelled = [r for r in rows if r["status"] == "cancelled"]
    if control.stop_requested():
        return Cancelled(message=f"stopped ({control.stop_reason()}): {len(cancelled)} of "
                                 f"{len(rows)} shots cancelled (report: {where})")
    if failed:
        return Failed(message=f"{len(failed)} of {len(rows)} shots failed (report: {where})")
    return {"shots": len(rows), "failed": 0, "report": where}


def _qc_cell(r: dict) -> str:
    if r.get("qc_flicker_ratio") is None and r.get("qc_seam") is None:
        return ""
    flag = f"FLAGGED: {r['qc_reasons']}" if r.get("qc_flagged") else "ok"
    return f"flicker {_fmt(r.get('qc_flicker_ratio'))}x, seam {_fmt(r.get('qc_seam'))}x: {flag}"


def _fmt(v) -> str:
    return "n/a" if v is None or v != v else f"{v:.2f}"


def _link(uri: str | None, text: str) -> str:
    return f"[{text}]({_href(uri)})" if uri else ""


def _artifacts(rows: list[dict], title: str, report_path: str) -> None:
    table = [{"shot": r["shot_id"], "status": r["status"],
              "failed stage": r.get("failed_stage") or "",
              "error": (r.get("error") or "")[:200],
              "seconds": round(r.get("seconds_total") or 0.0, 2),
              "cache hits": ",".join(r.get("cache_hits") or []),
              "mask": r.get("mask_path") or "", "gate": r.get("gate_decision") or "",
              "QC": _qc_cell(r),
              "result": _link(r.get("result_uri"), "result"),
              "matte": _link(r.get("matte_uri"), "matte"),
              "review": _link(r.get("review_uri"), "review")} for r in rows]
    create_table_artifact(table=table, key="void-batch-shots", description=title)
    counts = Counter(r["status"] for r in rows)
    executed = Counter(s for r in rows for s in r.get("executed") or [])
    lines = [f"### {title}", "",
             " · ".join(f"**{n}** {status}" for status, n in sorted(counts.items())), "",
             f"stages executed: {dict(executed) or 'none (all cached)'}; "
             f"total wall seconds of the shots: "
             f"{sum(r.get('seconds_total') or 0.0 for r in rows):.1f}", ""]
    flagged = [r["shot_id"] for r in rows if r.get("qc_flagged")]
    if flagged:
        lines += [f"QC flags {len(flagged)} shot(s) for a supervisor's look: "
                  f"{', '.join(flagged)}", ""]
    failures = [r for r in rows if r["status"] != "ok"]
    if failures:
        lines += ["| shot | status | stage | error |", "|---|---|---|---|"]
        lines += [f"| {r['shot_id']} | {r['status']} | {r.get('failed_stage') or ''} | "
                  f"{(r.get('error') or '').replace('|', '/')[:200]} |" for r in failures]
    lines += ["", f"report: `{report_path}`"]
    create_markdown_artifact(markdown="\n".join(lines), key="void-batch-summary")
    for r in rows:
        if r.get("review_uri"):
            create_link_artifact(link=_href(r["review_uri"]),
                                 link_text=f"{r['shot_id']} review movie",
                                 description=f"review media of shot {r['shot_id']}")


def _href(uri: str) -> str:
    return uri if "://" in uri else f"file://{uri}"
