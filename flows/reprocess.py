"""Re-run chosen shots of a manifest (by id, by tag, or those that failed in a previous report),
reusing the stage cache: only what changed, or what failed, executes again. The rerun shots'
rows replace theirs in the output root's report; the other shots' rows stay."""
from __future__ import annotations

from prefect import flow
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from flows.batch import MAX_WORKERS, run_shots
from flows.finish import finish
from flows.report import read_report
from manifests.loader import select
from tasks.options import RunOptions
from void_engine.errors import InputError


def failed_shots(report: str) -> list[str]:
    return [r["shot_id"] for r in read_report(report) if r["status"] != "ok" and r["shot_id"]]


@flow(name="reprocess", task_runner=ThreadPoolTaskRunner(max_workers=MAX_WORKERS),
      validate_parameters=True)
def reprocess(options: RunOptions):
    """Run the shots picked by options.shots / tags / the failures in options.failed_from (a
    report file or the output folder holding report.parquet)."""
    run = options.resolved()
    ids = list(run.shots or [])
    if run.failed_from:
        ids += failed_shots(run.failed_from)
        if not ids:
            raise InputError(f"no failed shots in {run.failed_from}: nothing to reprocess")
    if not ids and not run.tags:
        raise InputError("reprocess needs shots, tags or failed_from")
    m = run.load_manifest()
    picked, invalid = select(m, ids or None, run.tags)
    rows = run_shots(m, picked, invalid, run)
    return finish(rows, run, f"reprocess: {options.manifest} ({len(rows)} shots)",
                  str(flow_run.id or ""))
