"""The nightly flow: manifest in, every shot through the stage graph, report out.

    manifest --load/validate--> good rows (priority order)       bad rows -> report as failed
        per shot: the stages of tasks.graph.STAGES
                  (segmentation -> vlm_quadmask -> decode -> pass1 -> gate -> pass2 -> encode)
                  -> publish into <output_root>/<shot_id>/
    -> <output_root>/report.parquet + report.html (merged), runs/<flow run>/, Prefect artifacts
"""
from __future__ import annotations

from prefect import flow
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from flows.batch import MAX_WORKERS, run_shots
from flows.finish import finish
from manifests.loader import select
from tasks.options import RunOptions


@flow(name="nightly-batch", task_runner=ThreadPoolTaskRunner(max_workers=MAX_WORKERS),
      validate_parameters=True)
def nightly_batch(options: RunOptions):
    """Run every shot of the manifest (or the chosen shots / tags) into the output root."""
    run = options.resolved()
    m = run.load_manifest()
    picked, invalid = select(m, run.shots, run.tags)
    rows = run_shots(m, picked, invalid, run)
    return finish(rows, run, f"nightly-batch: {options.manifest}", str(flow_run.id or ""))
