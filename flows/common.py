"""What both flows share: resolve each shot's stages against the cache store, submit task runs
for what must execute, collect per-shot results, report.

Per shot, the flow walks the stages in order (tasks.stages.resolve_in_flow): a stage the shot
skips, or whose entry is already in the store, is answered right here with no task run; the
first stage that must execute and everything after it become task runs. So an unchanged re-run
creates no stage task runs, and a changed pass-2 parameter creates pass2 + encode + publish.
A shot whose every stage is in the store only needs delivering: such shots are delivered in
batches by one `publish-cached` task run each.

Shot ids in the Prefect UI: every task run is named `<stage>-<shot_id>`, and the flow run is
tagged with the ids of its shots (and the rows' tags), so the UI's tag filter finds the run
that processed a shot. No task run is tagged: Prefect 3.8 acquires a tag-concurrency lease for
every tagged task run (a client + TLS context per distinct tag set, an API round trip and a
write transaction on the server, which on the local SQLite server queues behind event
persistence). Measured on 2 busy cores (flow of 40 trivial tasks, one per shot): untagged
30-90 ms/shot, one shot-id-tagged task per shot 510 ms/shot, a shot-id-tagged subflow per shot
2.3 s/shot; in the batch benchmark one tagged publish per shot took the first run from 130 to
880 ms/shot, and a single publish-cached run tagged with 40 ids waited 14 s for its lease.

Shots are submitted in priority order through a sliding window of WINDOW shots that execute
something, so one shot can decode/encode on the CPU while another is on the GPU. A shot's
failure only stops that shot's chain.
"""
from __future__ import annotations

import concurrent.futures as cf
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from prefect import get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.runtime import flow_run
from prefect.states import Failed

from flows.report import STAGE_COLUMNS, format_table, write_report
from manifests.loader import Manifest, RowError
from manifests.schema import ShotRow
from tasks.records import LEDGER, STAGE_DEPS, STAGES, Outcome, RunConfig
from tasks.stages import STAGE_TASKS, publish, publish_cached, resolve_in_flow, spec_for

WINDOW = int(os.environ.get("VOID_BATCH_WINDOW", 3))
# Each submitted stage task holds a worker thread while it waits on its upstream futures.
MAX_WORKERS = WINDOW * (len(STAGES) + 1) + 2
CACHED_BATCH = 50  # fully cached shots delivered per publish-cached task run
PROGRESS_EVERY_S = 2.0  # progress artifact updates at most this often (and at 100 %)

# Listeners called (row) as each shot finishes: the CLI's progress bar hangs here.
SHOT_LISTENERS: list[Callable[[dict], None]] = []


@dataclass
class ShotRun:
    """One shot in this flow run: stages answered in the flow, stage futures, delivery."""

    index: int
    shot: ShotRow
    known: dict[str, Outcome] = field(default_factory=dict)  # answered in the flow
    seconds: dict[str, float] = field(default_factory=dict)  # lookup time of those
    futures: dict = field(default_factory=dict)  # stage -> PrefectFuture (executing stages)
    delivered: dict | None = None  # set by publish-cached for fully cached shots

    @property
    def fully_cached(self) -> bool:
        return not self.futures


def plan_shot(index: int, shot: ShotRow, run: RunConfig) -> ShotRun:
    """Answer what the store can answer; submit task runs for the rest (publish included,
    unless every stage was answered: then the caller batches the delivery)."""
    sr = ShotRun(index, shot)
    for stage in STAGES:
        up = {d: sr.known[d] for d in STAGE_DEPS[stage] if d in sr.known}
        t0 = time.perf_counter()
        out = resolve_in_flow(stage, shot, run, up)
        if out is not None:
            sr.known[stage] = out
            sr.seconds[stage] = time.perf_counter() - t0
            continue
        sr.futures[stage] = STAGE_TASKS[stage].submit(
            shot, run, {d: sr.known[d] if d in sr.known else sr.futures[d]
                        for d in STAGE_DEPS[stage]})
    if sr.futures:
        enc = sr.known.get("encode") or sr.futures["encode"]
        sr.futures["publish"] = publish.submit(shot, run, {"encode": enc})
    return sr


def submit_cached(batch: list[ShotRun], run: RunConfig):
    ids = [sr.shot.shot_id for sr in batch]
    name = f"publish-cached-{ids[0]}" + (f"+{len(ids) - 1}" if len(ids) > 1 else "")
    return publish_cached.with_options(task_run_name=name).submit(
        [(sr.shot, sr.known["encode"].entry) for sr in batch], run)


def tag_flow_run(shots: list[ShotRow]) -> None:
    """Shot ids (and the rows' tags) as tags of this flow run: one API call per run."""
    run_id = flow_run.id
    if not run_id or not shots:
        return
    from prefect.client.orchestration import get_client

    wanted = {s.shot_id for s in shots} | {t for s in shots for t in s.tags}
    with get_client(sync_client=True) as client:
        client.update_flow_run(run_id, tags=sorted(set(flow_run.tags or ()) | wanted))


def _error_text(state) -> str:
    try:
        exc = state.result(raise_on_failure=False)
    except Exception as e:  # result not retrievable: the message is all we have
        return state.message or repr(e)
    if isinstance(exc, BaseException):
        return f"{type(exc).__name__}: {exc}" if type(exc).__name__ != "InputError" else str(exc)
    return state.message or "failed"


def shot_row(sr: ShotRun, row_index: int, run: RunConfig, run_id: str) -> dict:
    shot = sr.shot
    row = {"shot_id": shot.shot_id, "row": row_index, "status": "ok",
           "engine": spec_for(shot, run).name, "priority": shot.priority, "tags": list(shot.tags),
           "cache_hits": [], "executed": [], "flow_run_id": run_id}
    skipped, outcomes = [], {}
    for stage in (*STAGES, "publish"):
        if stage in sr.known:  # answered in the flow: skipped or a store hit
            out, facts = sr.known[stage], {"executed": False, "seconds": sr.seconds[stage]}
        elif stage == "publish" and sr.fully_cached:
            out = sr.delivered or {"error": "not delivered"}
            if out.get("error"):
                row.update(status="failed", failed_stage="publish", error=out["error"])
                break
        else:
            state = sr.futures[stage].state
            if state.is_failed() or state.is_crashed() or state.is_cancelled():
                row.update(status="failed", failed_stage=stage, error=_error_text(state))
                break
            if not state.is_completed():  # NotReady: an upstream failed (reported above)
                break
            out = state.result()
            facts = LEDGER.get(run_id, shot.shot_id, stage)
        if stage == "publish":
            row.update(result_uri=out.get("result_uri"), matte_uri=out.get("matte_uri"),
                       review_uri=out.get("review_movie_uri"),
                       thumbnail=out.get("contact_sheet_uri"))
            continue
        outcomes[stage] = out
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


def run_shots(manifest: Manifest, picked: list[int], invalid: list[list[RowError]],  # noqa: C901
              run: RunConfig) -> tuple[list[dict], int]:
    """Run the shots manifest.shots[i] for i in `picked`; returns (report rows, failures)."""
    logger = get_run_logger()
    run_id = str(flow_run.id or "no-flow")
    order = sorted(picked, key=lambda i: (-manifest.shots[i].priority, i))
    total = len(order) + len(invalid)
    tag_flow_run([manifest.shots[i] for i in order])
    progress = create_progress_artifact(0.0, key="void-batch-progress",
                                        description=f"shots finished of {total}")
    last_progress = time.monotonic()
    rows = [invalid_row(errs) for errs in invalid]
    for r in rows:
        logger.error("manifest %s", r["error"])
        _notify(r)
    pending = deque(order)
    inflight: dict[cf.Future, tuple] = {}  # future -> (prefect future, [ShotRun, ...])
    cached: list[ShotRun] = []

    def flush_cached() -> None:
        fut = submit_cached(cached, run)
        inflight[fut.wrapped_future] = (fut, list(cached))
        cached.clear()

    while pending or inflight or cached:
        # Fully cached shots take no window slot: keep planning until WINDOW shots execute.
        while pending and len(inflight) < WINDOW:
            i = pending.popleft()
            sr = plan_shot(i, manifest.shots[i], run)
            if sr.fully_cached:
                cached.append(sr)
                if len(cached) >= CACHED_BATCH:
                    flush_cached()
            else:
                inflight[sr.futures["publish"].wrapped_future] = (None, [sr])
        if cached:
            flush_cached()
        done, _ = cf.wait(list(inflight), return_when=cf.FIRST_COMPLETED)
        for f in done:
            batch_future, group = inflight.pop(f)
            if batch_future is not None:
                delivered, err = _batch_result(batch_future)
                for sr in group:
                    sr.delivered = delivered.get(sr.shot.shot_id) or {"error": err}
            for sr in group:
                for g in sr.futures.values():  # the chain is done once publish is (or NotReady)
                    g.wait()
                row = shot_row(sr, manifest.rows[sr.index], run, run_id)
                rows.append(row)
                (logger.info if row["status"] == "ok" else logger.error)(
                    "shot %s %s%s", sr.shot.shot_id, row["status"],
                    f": {row.get('error')}" if row.get("error") else "")
                _notify(row)
        now = time.monotonic()
        if len(rows) == total or now - last_progress >= PROGRESS_EVERY_S:
            update_progress_artifact(progress, 100.0 * len(rows) / max(total, 1))
            last_progress = now
    if not order:
        update_progress_artifact(progress, 100.0)
    LEDGER.drop_run(run_id)
    failed = sum(r["status"] != "ok" for r in rows)
    return rows, failed


def _batch_result(fut) -> tuple[dict, str]:
    """Per-shot results of a publish-cached run, and the error for shots it has no result for
    (a crashed batch fails each of its shots, and only them)."""
    fut.wait()  # sets the final state locally (.state alone may still read PENDING from the API)
    state = fut.state
    if state.is_completed():
        return state.result(), "not delivered"
    return {}, f"publish: {_error_text(state)}"


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
