"""What both flows share: submit each shot's stage DAG, collect per-shot results, report.

Shots are submitted in priority order through a sliding window of WINDOW shots, so one shot can
decode/encode on the CPU while another is on the GPU, and no worker thread sits blocked on an
upstream future of a shot far down the list. A shot's failure only stops that shot's chain.
"""
from __future__ import annotations

import concurrent.futures as cf
import os
from collections.abc import Callable

from prefect import get_run_logger, tags
from prefect.artifacts import (create_markdown_artifact, create_progress_artifact,
                               create_table_artifact, update_progress_artifact)
from prefect.runtime import flow_run
from prefect.states import Failed

from flows.report import STAGE_COLUMNS, format_table, write_report
from manifests.loader import Manifest, RowError
from manifests.schema import ShotRow
from tasks.records import LEDGER, STAGES, RunConfig
from tasks.stages import STAGE_TASKS, publish, spec_for

# Upstream stages each stage reads.
DEPS = {"segmentation": (), "vlm_quadmask": ("segmentation",), "decode": ("vlm_quadmask",),
        "pass1": ("decode",), "gate": ("decode", "pass1"), "pass2": ("decode", "pass1", "gate"),
        "encode": ("decode", "pass1", "pass2")}
WINDOW = int(os.environ.get("VOID_BATCH_WINDOW", 3))
MAX_WORKERS = WINDOW * (len(STAGES) + 1)

# Listeners called (row) as each shot finishes: the CLI's progress bar hangs here.
SHOT_LISTENERS: list[Callable[[dict], None]] = []


def submit_shot(shot: ShotRow, run: RunConfig) -> dict:
    futures: dict = {}
    with tags(shot.shot_id, *shot.tags):
        for stage in STAGES:
            futures[stage] = STAGE_TASKS[stage].submit(
                shot, run, {d: futures[d] for d in DEPS[stage]})
        futures["publish"] = publish.submit(shot, run, {"encode": futures["encode"]})
    return futures


def _error_text(state) -> str:
    try:
        exc = state.result(raise_on_failure=False)
    except Exception as e:  # result not retrievable: the message is all we have
        return state.message or repr(e)
    if isinstance(exc, BaseException):
        return f"{type(exc).__name__}: {exc}" if type(exc).__name__ != "InputError" else str(exc)
    return state.message or "failed"


def shot_row(shot: ShotRow, index: int, run: RunConfig, futures: dict, run_id: str) -> dict:
    row = {"shot_id": shot.shot_id, "row": index, "status": "ok",
           "engine": spec_for(shot, run).name, "priority": shot.priority, "tags": list(shot.tags),
           "cache_hits": [], "executed": [], "flow_run_id": run_id}
    skipped, outcomes = [], {}
    for stage in (*STAGES, "publish"):
        state = futures[stage].state
        if state.is_failed() or state.is_crashed() or state.is_cancelled():
            row.update(status="failed", failed_stage=stage, error=_error_text(state))
            break
        if not state.is_completed():  # NotReady: an upstream failed (reported above)
            break
        out = state.result()
        if stage == "publish":
            row.update(result_uri=out.get("result_uri"), matte_uri=out.get("matte_uri"),
                       review_uri=out.get("review_movie_uri"),
                       thumbnail=out.get("contact_sheet_uri"))
            continue
        outcomes[stage] = out
        facts = LEDGER.get(run_id, shot.shot_id, stage)
        if out.status == "skipped":
            skipped.append(f"{stage}: {out.note}")
            continue
        row[f"seconds_{stage}"] = facts["seconds"] if facts else 0.0
        (row["executed"] if facts and facts["executed"] else row["cache_hits"]).append(stage)
    row["skipped"] = "; ".join(skipped)
    row["seconds_total"] = sum(row.get(c) or 0.0 for c in STAGE_COLUMNS)
    gate = outcomes.get("gate")
    if gate and gate.status == "done":
        row.update(gate_score=gate.meta.get("score"), gate_threshold=gate.meta.get("threshold"),
                   gate_decision="pass 2" if gate.meta.get("run_pass2") else "pass 1 only")
    elif gate:
        row["gate_decision"] = f"not run ({gate.note})"
    if row["status"] == "ok":
        p2 = outcomes.get("pass2")
        row["passes_run"] = 2 if p2 is not None and p2.status == "done" else 1
    return row


def invalid_row(err_rows: list[RowError]) -> dict:
    e = err_rows[0]
    return {"shot_id": e.shot_id, "row": e.row, "status": "failed", "failed_stage": "manifest",
            "error": "; ".join(str(x) for x in err_rows), "cache_hits": [], "executed": [],
            "seconds_total": 0.0, "tags": []}


def run_shots(manifest: Manifest, picked: list[int], invalid: list[list[RowError]],
              run: RunConfig) -> tuple[list[dict], int]:
    """Run the shots manifest.shots[i] for i in `picked`; returns (report rows, failures)."""
    logger = get_run_logger()
    run_id = str(flow_run.id or "no-flow")
    order = sorted(picked, key=lambda i: (-manifest.shots[i].priority, i))
    total = len(order) + len(invalid)
    progress = create_progress_artifact(0.0, key="void-batch-progress",
                                        description=f"shots finished of {total}")
    rows = [invalid_row(errs) for errs in invalid]
    for r in rows:
        logger.error("manifest %s", r["error"])
        _notify(r)
    pending = list(order)
    inflight: dict[cf.Future, tuple[int, dict]] = {}
    while pending or inflight:
        while pending and len(inflight) < WINDOW:
            i = pending.pop(0)
            futs = submit_shot(manifest.shots[i], run)
            inflight[futs["publish"].wrapped_future] = (i, futs)
        done, _ = cf.wait(list(inflight), return_when=cf.FIRST_COMPLETED)
        for f in done:
            i, futs = inflight.pop(f)
            for g in futs.values():  # the chain is done once publish is (or is NotReady)
                g.wait()
            shot = manifest.shots[i]
            row = shot_row(shot, manifest.rows[i], run, futs, run_id)
            rows.append(row)
            (logger.info if row["status"] == "ok" else logger.error)(
                "shot %s %s%s", shot.shot_id, row["status"],
                f": {row.get('error')}" if row.get("error") else "")
            update_progress_artifact(progress, 100.0 * len(rows) / max(total, 1))
            _notify(row)
    LEDGER.drop_run(run_id)
    failed = sum(r["status"] != "ok" for r in rows)
    return rows, failed


def _notify(row: dict) -> None:
    for fn in list(SHOT_LISTENERS):
        fn(row)


def finish(rows: list[dict], failed: int, run: RunConfig, title: str):
    """Write report files and artifacts; the flow's final state (Failed if any shot failed,
    decided only now, after every shot ran)."""
    rows.sort(key=lambda r: (r.get("row") if r.get("row") is not None else 1 << 30))
    pq_path, html_path = write_report(rows, run.output_root)
    table = [{"shot": r["shot_id"], "status": r["status"], "error": (r.get("error") or "")[:200],
              "seconds": round(r.get("seconds_total") or 0.0, 2),
              "cache_hits": ",".join(r.get("cache_hits") or []),
              "gate": r.get("gate_decision") or "", "result": r.get("result_uri") or ""}
             for r in rows]
    create_table_artifact(table=table, key="void-batch-shots", description=title)
    create_markdown_artifact(markdown=f"### {title}\n\n```\n{format_table(rows)}\n```\n\n"
                             f"report: `{pq_path}`", key="void-batch-summary")
    summary = {"shots": len(rows), "failed": failed, "report": pq_path, "html": html_path}
    if failed:
        return Failed(message=f"{failed} of {len(rows)} shots failed (report: {pq_path})")
    return summary
