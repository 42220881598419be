"""Where a VOID run spends its time, for benchmarks/gpu_e2e.py (off unless asked for).

    with profiling.collect() as events:      # in-process
        engine.pass1(...)
    VOID_PROFILE=/tmp/events.jsonl void-batch run ...   # any process, Ray actors included

Each event is {"name", "seconds", "pid", ...extra}. Timing a GPU section needs a device
synchronisation on both ends, so the sections cost a little when profiling is on and
nothing when it is off.
"""
from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import torch

ENV = "VOID_PROFILE"
_local = threading.local()


def _sinks() -> list[list[dict]]:
    if not hasattr(_local, "sinks"):
        _local.sinks = []
    return _local.sinks


def enabled() -> bool:
    return bool(_sinks()) or bool(os.environ.get(ENV))


@contextlib.contextmanager
def collect() -> Iterator[list[dict]]:
    """Collect this thread's events into the yielded list."""
    events: list[dict] = []
    _sinks().append(events)
    try:
        yield events
    finally:
        _sinks().remove(events)


def _sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def record(name: str, seconds: float, **extra: Any) -> None:
    event = {"name": name, "seconds": seconds, "pid": os.getpid(), **extra}
    for sink in _sinks():
        sink.append(event)
    path = os.environ.get(ENV)
    if path:
        with open(path, "a") as f:  # one short line per event: appends do not interleave
            f.write(json.dumps(event) + "\n")


@contextlib.contextmanager
def timed(name: str, **extra: Any) -> Iterator[None]:
    """Time the block (with device synchronisation) when profiling is on."""
    if not enabled():
        yield
        return
    _sync()
    t0 = time.perf_counter()
    try:
        yield
    finally:
        _sync()
        record(name, time.perf_counter() - t0, **extra)
