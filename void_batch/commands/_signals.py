"""SIGINT / SIGTERM for the commands that run a flow (`run`, `reprocess`).

First signal: ask the flow to stop (`flows.control.request_stop`: no new shots, cancel what
can be, write the report of what finished) and give it VOID_BATCH_STOP_GRACE_S seconds
(default 30). Second signal, or the grace period over: abort now: mark the flow run Crashed on
the server (best effort, a few seconds), stop what this command started for itself (a
temporary Prefect server), exit. Either way the exit code is 128 + the signal number (130 for
Ctrl-C, 143 for SIGTERM).

The flow runs in a worker thread and the main thread only waits on it: Python delivers
signals to the main thread, and a flow in the main thread gets Prefect's own SIGTERM handler
installed around it, which turns SIGTERM into a crash of the whole process (exit 134 seen).
The persistent local Prefect server and Ray head are not stopped: they are meant to outlive
the command (`void-batch server stop`). After kill -9, which no handler sees, a watchdog
process (void_batch.services.watchdog) ends what the command started for itself.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

_handler: StopHandler | None = None


class StopHandler:
    def __init__(self) -> None:
        self.signum: int | None = None
        self.deadline: float | None = None
        self.flow: tuple | None = None  # (flow name, output_root, started after)
        self.previous: dict = {}
        self.cleanups: list[Callable[[], None]] = []  # run on abort, most recent first

    @property
    def stopping(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or signal.SIGTERM)

    def install(self) -> None:
        import flows.control  # noqa: F401  (imported now, not inside a signal handler)

        # Ray's core worker in this (driver) process installs absl's failure signal handler,
        # which catches SIGTERM, prints a stack dump and aborts the process (exit 134) before
        # Python's handler can run. Crash dumps of the driver come from Python here anyway.
        os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")

        for s in (signal.SIGINT, signal.SIGTERM):
            self.previous[s] = signal.signal(s, self._on_signal)
        if _running_as_program():  # not when a test calls the command in-process
            from void_batch.services import watchdog

            watchdog.start()

    def _on_signal(self, signum: int, frame) -> None:
        name = signal.Signals(signum).name
        if self.signum is not None:
            self.abort(f"second signal ({name})")
        from flows.control import request_stop

        self.signum = signum
        grace = float(os.environ.get("VOID_BATCH_STOP_GRACE_S", 30))
        self.deadline = time.monotonic() + grace
        print(f"\nvoid-batch: {name}: stopping: no new shots, writing the report of what "
              f"finished (up to {grace:.0f} s; send it again to abort now)",
              file=sys.stderr, flush=True)
        request_stop(f"stopped by {name}")

    def run_in_thread(self, fn: Callable[[], object]) -> object:
        """Run `fn` in a worker thread, handling signals here; its result (or exception)."""
        box: dict = {}

        def target() -> None:
            try:
                box["value"] = fn()
            except BaseException as exc:  # handed to the main thread below
                box["error"] = exc

        # In the caller's context: Prefect keeps its settings (e.g. a test harness's API URL)
        # in context variables, which a new thread would not see.
        ctx = contextvars.copy_context()
        t = threading.Thread(target=ctx.run, args=(target,), name="void-batch-flow",
                             daemon=True)
        t.start()
        while t.is_alive():
            t.join(0.2)
            if self.deadline is not None and time.monotonic() > self.deadline:
                self.abort("the flow did not stop within the grace period")
        if "error" in box:
            raise box["error"]
        return box.get("value")

    def abort(self, why: str) -> None:
        print(f"void-batch: aborting: {why}", file=sys.stderr, flush=True)
        self._mark_crashed(why)
        for fn in reversed(self.cleanups):
            with contextlib.suppress(Exception):
                fn()
        sys.stderr.flush()
        os._exit(self.exit_code)

    def _mark_crashed(self, why: str) -> None:
        """Leave no flow run shown as Running forever on the server (bounded: 5 s)."""
        if self.flow is None:
            return

        def mark() -> None:
            from prefect.client.orchestration import get_client
            from prefect.client.schemas.filters import (
                FlowFilter,
                FlowFilterName,
                FlowRunFilter,
                FlowRunFilterStartTime,
                FlowRunFilterState,
                FlowRunFilterStateType,
            )
            from prefect.client.schemas.objects import StateType
            from prefect.states import Crashed

            name, output_root, since = self.flow
            with get_client(sync_client=True) as client:
                runs = client.read_flow_runs(
                    flow_filter=FlowFilter(name=FlowFilterName(any_=[name])),
                    flow_run_filter=FlowRunFilter(
                        state=FlowRunFilterState(type=FlowRunFilterStateType(
                            any_=[StateType.RUNNING])),
                        start_time=FlowRunFilterStartTime(after_=since)))
                for run in runs:  # this command's run: same output root, started after it
                    params = run.parameters or {}
                    if (params.get("options") or params).get("output_root") == output_root:
                        client.set_flow_run_state(
                            run.id, Crashed(message=f"void-batch: {why}"), force=True)

        def quietly() -> None:
            with contextlib.suppress(Exception):
                mark()

        t = threading.Thread(target=quietly, daemon=True)
        t.start()
        t.join(5)

    def watch_flow(self, name: str, output_root: str) -> None:
        """The flow run this command is about to start (found on the server on abort)."""
        from datetime import UTC, datetime, timedelta

        self.flow = (name, output_root, datetime.now(UTC) - timedelta(seconds=5))

    def uninstall(self) -> None:
        for s, h in self.previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(s, h)


def _running_as_program() -> bool:
    main = sys.modules.get("__main__")
    spec_name = getattr(getattr(main, "__spec__", None), "name", "")
    return spec_name == "void_batch.cli" or os.path.basename(sys.argv[0]) == "void-batch"


def install() -> StopHandler:
    """Install the handlers once per process (call first thing in the command)."""
    global _handler
    if _handler is None:
        _handler = StopHandler()
        _handler.install()
    return _handler


def uninstall() -> None:
    """Restore the previous handlers (a command run in-process, e.g. by a test)."""
    global _handler
    if _handler is not None:
        _handler.uninstall()
        _handler = None
