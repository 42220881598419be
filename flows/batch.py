"""What both flows share: walk every shot through tasks.graph.STAGES, run what must run as
task runs, deliver, and account for every shot in the report.

Per shot, the flow walks the stages in order (tasks.runner.resolve): a stage the shot skips, or
whose entry is already in the store, is answered right here with no task run; the first stage
that must execute becomes a task run named `<stage>-<shot_id>`, and the next stage is decided
only when it has finished. So a failed stage is the last task run of its shot (no NotReady
runs hanging in the graph), an unchanged re-run creates no stage task runs, and a changed
pass-2 parameter creates pass2 + encode + publish. Shots whose every stage is in the store
are delivered in batches by one `publish-cached` task run each.

Shots start in priority order, WINDOW of them executing at a time, so one shot can decode or
encode on the CPU while another is on the GPU. A shot's failure only stops that shot. A stop
request (flows.control: SIGINT/SIGTERM in the CLI) starts no new stage, cancels the calls on
the resident actors and leaves every shot accounted for ("cancelled").
A cache entry found corrupt while a stage reads it, or while it is delivered, has been taken
out of the store (tasks.cache.CorruptEntry): the shot is planned again once, recomputing it.
"""
from __future__ import annotations

import concurrent.futures as cf
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from flows import control
from flows.rows import invalid_row, shot_row
from manifests.loader import Manifest, RowError
from manifests.schema import ShotRow
from tasks.actors import RESIDENTS
from tasks.cache import CorruptEntry
from tasks.context import StageContext
from tasks.errors import one_line
from tasks.graph import STAGES
from tasks.options import RunOptions
from tasks.prefect_tasks import publish, publish_cached, stage_task
from tasks.records import Outcome
from tasks.runner import resolve

# Shots executing at once: at least WINDOW, and two per GPU of the Ray cluster once the flow
# has joined it (one on the GPU, one decoding or encoding beside it; measured: 4 actors on
# a window of 3 reached 73 shots/min, on a window of 8, 105 of an ideal 120).
WINDOW = int(os.environ.get("VOID_BATCH_WINDOW", 3))
MAX_WORKERS = 64  # the thread pool's bound; the window limits what runs
SHOTS_PER_GPU = 2
CACHED_BATCH = 50  # fully cached shots delivered per publish-cached task run
PROGRESS_EVERY_S = 2.0

# Called with each finished shot's report row (the CLI's progress bar hangs here).
SHOT_LISTENERS: list[Callable[[dict], None]] = []


@dataclass
class ShotRun:
    """One shot in this flow run."""

    index: int
    shot: ShotRow
    known: dict[str, Outcome] = field(default_factory=dict)
    running: str | None = None  # the stage (or "publish") whose task run is in flight
    future: object = None
    delivered: dict | None = None
    failed: tuple[str, str] | None = None  # (stage, one-line error)
    status: str = ""  # "", "ok", "failed", "cancelled"
    notes: list[str] = field(default_factory=list)
    replanned: bool = False

    @property
    def fully_cached(self) -> bool:
        return not any(o.executed for o in self.known.values()) and not self.replanned


@task(name="manifest", task_run_name="manifest-{shot_id}", retries=0, cache_policy=NO_CACHE,
      persist_result=False)
def reject(shot_id: str, error: str) -> None:
    """A row the manifest validation rejected, as a failed task run of its own, so the shot
    is found in the run graph like every other."""
    from void_engine.errors import InputError

    raise InputError(error)


def advance(sr: ShotRun, options: RunOptions) -> str:
    """Answer the shot's next stages from the store; submit the first that must run.
    Returns "running" (a task run is in flight), or "cached" (every stage answered and
    nothing ran: deliver in a batch)."""
    for s in STAGES:
        if s.name in sr.known:
            continue
        up = {u: sr.known[u] for u in s.upstream}
        try:
            out = resolve(s, StageContext(sr.shot, options, up))
        except Exception:  # e.g. an unreadable input: the task reports it like any failure
            out = None
        if out is not None:
            sr.known[s.name] = out
            continue
        sr.running, sr.future = s.name, stage_task(s.name).submit(s.name, sr.shot, options, up)
        return "running"
    if sr.fully_cached:
        return "cached"
    sr.running = "publish"
    sr.future = publish.submit(sr.shot, options, sr.known["encode"].entry)
    return "running"


def _task_error(fut) -> BaseException | str:
    fut.wait()
    state = fut.state
    try:
        exc = state.result(raise_on_failure=False)
    except Exception as e:  # the result cannot be read back: the message is what we have
        return state.message or repr(e)
    return exc if isinstance(exc, BaseException) else (state.message or "failed")


def _corrupt(error) -> bool:
    return isinstance(error, CorruptEntry) or (
        isinstance(getattr(error, "cause", None), CorruptEntry))


class Batch:
    """The event loop of one flow run over its shots."""

    def __init__(self, manifest: Manifest, picked: list[int], options: RunOptions):
        self.manifest, self.options = manifest, options
        self.logger = get_run_logger()
        order = sorted(picked, key=lambda i: (-manifest.shots[i].priority, i))
        self.pending = deque(ShotRun(i, manifest.shots[i]) for i in order)
        self.inflight: dict[cf.Future, tuple[object, list[ShotRun]]] = {}
        self.cached: list[ShotRun] = []
        self.rows: list[dict] = []
        self.run_id = str(flow_run.id or "no-flow")
        self.stopping = False
        self.rejected: list = []  # the `manifest-<shot>` task runs of rejected rows

    # ---- the loop -------------------------------------------------------------------------------
    def run(self, invalid: list[list[RowError]]) -> list[dict]:
        total = len(self.pending) + len(invalid)
        progress = create_progress_artifact(0.0, key="void-batch-progress",
                                            description=f"shots finished of {total}")
        last = time.monotonic()
        for errs in invalid:
            self._finish_row(invalid_row(errs))
            self.rejected.append(reject.submit(errs[0].shot_id or f"row{errs[0].row}",
                                               "; ".join(map(str, errs))))
        while self.pending or self.inflight or self.cached:
            if control.stop_requested() and not self.stopping:
                self._stop()
            while self.pending and self._executing() < self._window() and not self.stopping:
                self._start(self.pending.popleft())
            if self.cached and (self._executing() == 0 or len(self.cached) >= CACHED_BATCH
                                or not self.pending):
                self._flush_cached()
            if not self.inflight:
                continue
            done, _ = cf.wait(list(self.inflight), timeout=0.5, return_when=cf.FIRST_COMPLETED)
            for f in done:
                self._completed(*self.inflight.pop(f))
            if len(self.rows) == total or time.monotonic() - last >= PROGRESS_EVERY_S:
                update_progress_artifact(progress, 100.0 * len(self.rows) / max(total, 1))
                last = time.monotonic()
        update_progress_artifact(progress, 100.0)
        for fut in self.rejected:
            fut.wait()
        return self.rows

    def _window(self) -> int:
        if "VOID_BATCH_WINDOW" in os.environ:
            return WINDOW
        return max(WINDOW, SHOTS_PER_GPU * RESIDENTS.gpus())

    def _executing(self) -> int:
        return sum(len(group) for fut, group in self.inflight.values() if fut is None)

    def _start(self, sr: ShotRun) -> None:
        if advance(sr, self.options) == "running":
            self.inflight[sr.future.wrapped_future] = (None, [sr])
        else:
            self.cached.append(sr)

    def _flush_cached(self) -> None:
        batch, self.cached = self.cached[:CACHED_BATCH], self.cached[CACHED_BATCH:]
        ids = [sr.shot.shot_id for sr in batch]
        name = f"publish-cached-{ids[0]}" + (f"+{len(ids) - 1}" if len(ids) > 1 else "")
        fut = publish_cached.with_options(task_run_name=name).submit(
            [(sr.shot, sr.known["encode"].entry) for sr in batch], self.options)
        self.inflight[fut.wrapped_future] = (fut, batch)

    def _completed(self, batch_future, group: list[ShotRun]) -> None:
        if batch_future is not None:
            self._batch_delivered(batch_future, group)
            return
        sr = group[0]
        sr.future.wait()
        state = sr.future.state
        if not state.is_completed():
            self._failed(sr, sr.running, _task_error(sr.future))
            return
        result = state.result()
        if sr.running == "publish":
            sr.delivered = result
            self._done(sr, "ok")
            return
        sr.known[sr.running] = result
        if result.note and result.executed:
            sr.notes.append(f"{sr.running}: {result.note}")
        self._continue(sr)

    def _continue(self, sr: ShotRun) -> None:
        if self.stopping:
            self._cancelled(sr)
        elif advance(sr, self.options) == "running":
            self.inflight[sr.future.wrapped_future] = (None, [sr])
        else:
            self.cached.append(sr)

    def _batch_delivered(self, fut, group: list[ShotRun]) -> None:
        fut.wait()
        state = fut.state
        results = state.result() if state.is_completed() else {}
        err = None if state.is_completed() else f"publish: {one_line(_task_error(fut))}"
        for sr in group:
            r = results.get(sr.shot.shot_id) or {"error": err or "not delivered"}
            if "corrupt" in r and not sr.replanned:
                self._replan(sr, r["corrupt"])
            elif "error" in r or "corrupt" in r:
                sr.failed = ("publish", r.get("error") or r["corrupt"])
                self._done(sr, "failed")
            else:
                sr.delivered = r
                self._done(sr, "ok")

    def _failed(self, sr: ShotRun, stage: str, error) -> None:
        if _corrupt(error) and not sr.replanned:
            self._replan(sr, str(getattr(error, "cause", None) or error))
            return
        if self.stopping:
            self._cancelled(sr)
            return
        self.logger.error("shot %s: %s failed: %s", sr.shot.shot_id, stage, error)
        sr.failed = (stage, one_line(error))
        self._done(sr, "failed")

    def _replan(self, sr: ShotRun, why: str) -> None:
        """A corrupt entry was taken out of the store: walk the shot again (it recomputes)."""
        self.logger.warning("shot %s: %s; recomputing", sr.shot.shot_id, why)
        sr.notes.append(f"{one_line(why)}: recomputed")
        sr.known, sr.replanned = {}, True
        self._continue(sr)

    def _cancelled(self, sr: ShotRun) -> None:
        sr.failed = (sr.running or "start", f"cancelled: {control.stop_reason()}")
        self._done(sr, "cancelled")

    def _stop(self) -> None:
        self.stopping = True
        self.logger.warning("stop requested (%s): no new stages; cancelling actor calls",
                            control.stop_reason())
        while self.pending:
            sr = self.pending.popleft()
            sr.running = None
            self._cancelled(sr)
        for sr in self.cached:
            self._cancelled(sr)
        self.cached = []
        RESIDENTS.cancel_all()

    def _done(self, sr: ShotRun, status: str) -> None:
        sr.status = status
        row = shot_row(sr, self.manifest.rows[sr.index], self.options, self.run_id)
        (self.logger.info if status == "ok" else self.logger.error)(
            "shot %s %s%s", sr.shot.shot_id, status,
            f": {row.get('error')}" if row.get("error") else "")
        self._finish_row(row)

    def _finish_row(self, row: dict) -> None:
        self.rows.append(row)
        for fn in list(SHOT_LISTENERS):
            fn(row)


def tag_flow_run(shots: list[ShotRow], rejected: list[list[RowError]]) -> None:
    """Shot ids (and the rows' tags) as tags of this flow run, rejected rows included: one
    API call per run."""
    run_id = flow_run.id
    if not run_id:
        return
    from prefect.client.orchestration import get_client

    wanted = {s.shot_id for s in shots} | {t for s in shots for t in s.tags}
    wanted |= {e.shot_id for errs in rejected for e in errs if e.shot_id}
    if not wanted:
        return
    with get_client(sync_client=True) as client:
        client.update_flow_run(run_id, tags=sorted(set(flow_run.tags or ()) | wanted))


def run_shots(manifest: Manifest, picked: list[int], invalid: list[list[RowError]],
              options: RunOptions) -> list[dict]:
    """Run manifest.shots[i] for i in `picked`; report rows for those and the `invalid` ones."""
    tag_flow_run([manifest.shots[i] for i in picked], invalid)
    return Batch(manifest, picked, options).run(invalid)
