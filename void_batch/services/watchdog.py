"""A watchdog for a command's own child processes: after kill -9 of `void-batch run`, nothing it
started for itself keeps running.

A SIGKILLed process cleans nothing up, and its children are re-parented to init, so they can no
longer be found by ancestry; some ignore their parent's death (Ray's dashboard and runtime-env
agents of a per-command `ray.init` were still running minutes later). So a small separate
process watches the command: every half second it notes the command's descendants; once the
command is gone (however it ended) it sends SIGTERM to those still running, then SIGKILL. The
persistent local services (void_batch.services) and everything in their sessions are excluded:
they are meant to outlive the command.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time

import psutil

from void_batch.services import _process

POLL_S = 0.5
GRACE_S = 5.0


def start() -> None:
    """Watch the calling process (call once, early)."""
    me = psutil.Process()
    subprocess.Popen([sys.executable, "-m", __name__, str(me.pid), repr(me.create_time())],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)


def _persistent_sessions() -> set[int]:
    from void_batch.services.prefect_server import LocalPrefectServer
    from void_batch.services.ray_head import LocalRayHead

    sids = set()
    for service in (LocalPrefectServer(), LocalRayHead()):
        _, proc = service.running()
        if proc is not None:
            with contextlib.suppress(OSError):
                sids.add(os.getsid(proc.pid))
    return sids


def _sid(p: psutil.Process) -> int | None:
    try:
        return os.getsid(p.pid)
    except OSError:
        return None


def watch(pid: int, create_time: float) -> None:
    try:
        parent = psutil.Process(pid)
        if abs(parent.create_time() - create_time) > 1.0:
            return
    except psutil.NoSuchProcess:
        return
    seen: dict[int, psutil.Process] = {}
    while True:
        try:
            if parent.status() == psutil.STATUS_ZOMBIE:
                break
            for child in parent.children(recursive=True):
                seen.setdefault(child.pid, child)
        except psutil.NoSuchProcess:
            break
        time.sleep(POLL_S)
    keep = _persistent_sessions()
    me = os.getpid()
    left = [p for p in seen.values()
            if p.pid != me and p.is_running() and _sid(p) not in keep]
    _process.terminate(left, GRACE_S)


if __name__ == "__main__":
    watch(int(sys.argv[1]), float(sys.argv[2]))
