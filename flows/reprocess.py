"""Re-run chosen shots of a manifest (by id, by tag, or those that failed in a previous report),
reusing the stage cache: only what changed, or what failed, executes again. The rerun shots'
rows replace theirs in output_root/report.parquet + report.html; the other shots' rows stay."""
from __future__ import annotations

import contextlib

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from flows.common import MAX_WORKERS, finish, run_shots
from flows.nightly_batch import make_run_config, select
from flows.report import merge_rows, read_report
from manifests.loader import load_manifest
from void_engine.errors import InputError


def failed_shots(report: str) -> list[str]:
    return [r["shot_id"] for r in read_report(report) if r["status"] != "ok" and r["shot_id"]]


@flow(name="reprocess", task_runner=ThreadPoolTaskRunner(max_workers=MAX_WORKERS))
def reprocess(manifest: str, output_root: str, shots: list[str] | None = None,
              tags: list[str] | None = None, failed_from: str | None = None,
              engine: str | None = None, weights: str | None = None, cache: str | None = None,
              ray_address: str | None = None, plugins: list[str] | None = None,
              engine_kwargs: dict | None = None, review: bool = True,
              gate_threshold: float | None = None):
    """Run the shots picked by ids / tags / failures in `failed_from` (a report file or the
    output folder holding report.parquet)."""
    ids = list(shots or [])
    if failed_from:
        ids += failed_shots(failed_from)
        if not ids:
            raise InputError(f"no failed shots in {failed_from}: nothing to reprocess")
    if not ids and not tags:
        raise InputError("reprocess needs shots, tags or failed_from")
    run = make_run_config(output_root, engine=engine, weights=weights, cache=cache,
                          ray_address=ray_address, plugins=plugins, engine_kwargs=engine_kwargs,
                          review=review, gate_threshold=gate_threshold)
    m = load_manifest(manifest)
    picked, invalid = select(m, ids or None, tags)
    rows, failed = run_shots(m, picked, invalid, run)
    title = f"reprocess: {manifest} ({len(rows)} shots)"
    with contextlib.suppress(FileNotFoundError):  # no earlier report in this output folder
        rows = merge_rows(read_report(run.output_root), rows)
    # Failed only if a *rerun* shot failed; the report and artifacts show every shot.
    return finish(rows, failed, run, title)
