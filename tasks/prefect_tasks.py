"""The Prefect tasks: one per stage of tasks.graph (made from its declaration), plus publish.

A stage task only adds placement and retries around tasks.runner.execute: CPU stages run in
the task's thread, engine and masks stages on their resident Ray actor. Prefect's own result
cache is not used: the store is the one cache, and the flow answers stages that are skipped or
already stored without creating a task run at all (a task run costs ~10-50 ms of engine and
API work; a store lookup is a file read). Tasks return the small Outcome, never arrays.
No task carries tags: Prefect 3.8 takes a tag-concurrency lease per tagged task run (an API
round trip and a write on the server); shot ids are in the task run names `<stage>-<shot>`.
"""
from __future__ import annotations

from functools import cache

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from manifests.schema import ShotRow
from tasks.actors import RESIDENTS
from tasks.cache import CorruptEntry, Entry
from tasks.context import StageContext, store_at
from tasks.deliver import deliver
from tasks.errors import one_line
from tasks.graph import Placement, stage
from tasks.options import RunOptions
from tasks.records import Outcome
from tasks.runner import execute
from void_engine.errors import InputError


def _retry_unless_bad_input(task, task_run, state) -> bool:
    """Retrying cannot fix bad input, a corrupt cache entry (the flow recomputes it) or a stop
    request; anything else gets its retries."""
    try:
        state.result()
    except (InputError, CorruptEntry):
        return False
    except Exception:
        from flows.control import stop_requested

        return not stop_requested()
    return True


def run_stage(stage_name: str, shot: ShotRow, options: RunOptions, up: dict[str, Outcome]
              ) -> Outcome:
    """The body of every stage task."""
    s = stage(stage_name)
    ctx = StageContext(shot, options, up)
    run_id = str(flow_run.id or "")
    if s.placement is Placement.CPU:
        return execute(s, ctx, run_id)
    RESIDENTS.connect(options.ray_address)
    spec = ctx.engine_spec if s.placement is Placement.ENGINE else ctx.masks_spec
    return RESIDENTS.run_stage(spec, stage_name, shot, options, up, run_id)


@cache
def stage_task(stage_name: str) -> Task:
    """The Prefect task of a stage (built once per stage and process)."""
    s = stage(stage_name)
    return task(run_stage, name=s.name, task_run_name=f"{s.name}-{{shot.shot_id}}",
                cache_policy=NO_CACHE, persist_result=False,
                retries=s.retries, retry_delay_seconds=2,
                retry_condition_fn=_retry_unless_bad_input)


@task(name="publish", task_run_name="publish-{shot.shot_id}", retries=1, retry_delay_seconds=2,
      cache_policy=NO_CACHE, persist_result=False, retry_condition_fn=_retry_unless_bad_input)
def publish(shot: ShotRow, options: RunOptions, encode: Entry) -> dict:
    """Deliver the encode entry into the output root (never cached: cheap, and the output
    folder may have been cleaned)."""
    return deliver(shot, options, store_at(options.cache), encode)


@task(name="publish-cached", cache_policy=NO_CACHE, persist_result=False)
def publish_cached(items: list[tuple[ShotRow, Entry]], options: RunOptions
                   ) -> dict[str, dict]:
    """`publish` for a batch of shots whose every stage was in the store: one task run for
    many shots, so an unchanged re-run costs a few task runs in all. A shot whose delivery
    fails gets {"error": ...} (or {"corrupt": ...}) and the others are still delivered."""
    out: dict[str, dict] = {}
    store = store_at(options.cache)
    for shot, entry in items:
        try:
            out[shot.shot_id] = deliver(shot, options, store, entry)
        except CorruptEntry as exc:
            out[shot.shot_id] = {"corrupt": str(exc)}
        except Exception as exc:  # one shot's delivery never stops the batch
            out[shot.shot_id] = {"error": one_line(exc)}
    return out
