"""Stopping a running batch from outside the flow (the CLI's SIGINT/SIGTERM handlers).

`request_stop(reason)` asks every flow running in this process to stop: submit no new shot,
cancel what can be cancelled, let the stage that is running finish or cancel it, write the
report of what finished, and end Failed/Cancelled with `reason`. Flows poll `stop_requested()`.
"""
from __future__ import annotations

import threading

_stop = threading.Event()
_reason: list[str] = []


def request_stop(reason: str) -> None:
    """Ask the running flow(s) to stop; safe to call from a signal handler."""
    if not _stop.is_set():
        _reason.append(reason)
        _stop.set()


def stop_requested() -> bool:
    return _stop.is_set()


def stop_reason() -> str | None:
    return _reason[0] if _reason else None


def reset() -> None:
    """Forget an earlier stop request (tests, long-lived processes running several flows)."""
    _stop.clear()
    _reason.clear()
