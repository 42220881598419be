"""Generic stage mechanics over tasks.graph.STAGES: cache keys, skip decisions, store lookups,
and running a stage into a staging folder that is committed to the store.

`resolve` answers what can be known without running a stage (skipped, or already in the store):
the flow calls it for every stage of every shot, so an unchanged re-run creates no task run.
`execute` runs a stage where it is placed (a Prefect task thread, or a resident actor) and
commits its entry. A stage whose result is degraded (tasks.graph.Stage.degraded: the VLM failed
and a fallback mask stood in) is committed beside the real key, never under it: a later run
looks up the real key, misses, and asks the VLM again; if the VLM fails again, the same
degraded entry (and everything cached downstream of it) is reused.
"""
from __future__ import annotations

import os
import socket
import time

from tasks import cache
from tasks.context import StageContext
from tasks.graph import Stage
from tasks.records import Outcome

DEGRADED = "-degraded"  # suffix of the key a degraded result is committed under


def key_of(stage: Stage, ctx: StageContext) -> str:
    """`<stage>-<hex>` over the stage's version, its KeyParts and its upstream entries' keys
    (an entry's files are a pure function of its key, so chaining keys invalidates exactly the
    stages downstream of a change)."""
    parts = stage.key(ctx)
    inputs = dict(parts.inputs)
    for name in stage.upstream:
        up = ctx.up[name]
        inputs[f"up:{name}"] = up.key if up.status == "done" else f"skipped: {up.note}"
    return cache.stage_key(stage.name, stage.version, inputs=inputs, params=parts.params,
                           weights=ctx.engine_spec.model_id if parts.model else None)


def resolve(stage: Stage, ctx: StageContext) -> Outcome | None:
    """Skipped or found in the store; None: the stage must run."""
    t0 = time.perf_counter()
    reason = stage.skip(ctx)
    if reason:
        return Outcome(stage.name, "skipped", note=reason)
    entry = ctx.store.lookup(stage.name, key_of(stage, ctx))
    if entry is None:
        return None
    return Outcome(stage.name, "done", entry=entry, seconds=time.perf_counter() - t0)


def execute(stage: Stage, ctx: StageContext, flow_run_id: str = "") -> Outcome:
    """Run `stage` for ctx's shot and commit it (a no-op when a retry, or a concurrent run,
    finds the entry already there)."""
    t0 = time.perf_counter()
    reason = stage.skip(ctx)
    if reason:
        return Outcome(stage.name, "skipped", note=reason)
    store, key = ctx.store, key_of(stage, ctx)
    entry = store.lookup(stage.name, key)
    if entry is not None:
        return Outcome(stage.name, "done", entry=entry, seconds=time.perf_counter() - t0)
    with store.staging(stage.name, key) as tmp:
        meta = stage.run(ctx, tmp) or {}
        compute = time.perf_counter() - t0
        degraded = stage.degraded(meta)
        meta = {**meta, "version": stage.version, "compute_seconds": compute,
                "host": socket.gethostname(), "pid": os.getpid(), "flow_run_id": flow_run_id,
                "degraded": degraded}
        entry = store.commit(stage.name, key + DEGRADED if degraded else key, tmp, meta)
    return Outcome(stage.name, "done", entry=entry, executed=True,
                   seconds=time.perf_counter() - t0, note=degraded or "")


def dry_run(stage: Stage, ctx: StageContext) -> str:
    """What a run would do with this stage: "skip: why", "cached <key>" or "run"."""
    reason = stage.skip(ctx)
    if reason:
        return f"skip ({reason})"
    key = key_of(stage, ctx)
    return f"cached {key}" if ctx.store.has(stage.name, key) else f"run -> {key}"
