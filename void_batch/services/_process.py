"""Process plumbing shared by the local services: a JSON record per service, a lock so two
commands starting at once start one service, detached spawning, and stopping by recorded pid
(never by process name: `ray stop` / pkill would hit other users' processes on a shared host)."""
from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil


def read_record(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_record(path: Path, record: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, path)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Exclusive lock on `path` (flock: released by the kernel if the holder is killed)."""
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def process_of(record: dict | None) -> psutil.Process | None:
    """The live process a record names, or None. The start time is compared too, so a pid
    reused by an unrelated process after a reboot is not mistaken for the service."""
    if not record or not record.get("pid"):
        return None
    try:
        proc = psutil.Process(int(record["pid"]))
        if abs(proc.create_time() - float(record.get("create_time", 0))) > 1.0:
            return None
        return proc if alive(proc) else None
    except (psutil.Error, ValueError):
        return None


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def free_port(preferred: int | None = None) -> int:
    """`preferred` when nothing listens on it, else any free loopback port."""
    candidates = [preferred] if preferred else []
    for port in [*candidates, 0]:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise OSError("no free port on 127.0.0.1")


def spawn_detached(cmd: list[str], env: dict, log_path: Path) -> psutil.Process:
    """Start `cmd` in its own session (terminal Ctrl-C and the caller's death do not reach it),
    output appended to `log_path`, nothing inherited from the caller's stdio (a caller whose
    output is piped must not wait on a service holding the pipe)."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                close_fds=True)
    return psutil.Process(proc.pid)


_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """preexec_fn for per-command children: the kernel sends SIGTERM when the parent dies,
    kill -9 included (Linux prctl; elsewhere a no-op)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def session_members(proc: psutil.Process) -> list[psutil.Process]:
    """`proc` and every process in its session: a service started by spawn_detached leads
    its own session, and what it starts (Ray's GCS, raylet, dashboard, workers and the actors
    of every job) stays in it unless it calls setsid itself."""
    try:
        sid = os.getsid(proc.pid)
    except OSError:
        return []
    members = [proc]
    for p in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if p.pid != proc.pid and os.getsid(p.pid) == sid:
                members.append(p)
    return members


def stop_tree(proc: psutil.Process, timeout: float) -> bool:
    """Stop a service started by spawn_detached: SIGTERM to it and to every process of its
    session at once (a `ray start --block` alone takes ~30 s to walk its children down one by
    one), SIGKILL to whatever is left after `timeout`. True if something had to be killed."""
    return bool(terminate(session_members(proc), timeout))


def terminate(procs: list[psutil.Process], grace: float) -> list[psutil.Process]:
    """SIGTERM to every process of `procs` at once, SIGKILL to those still running after
    `grace` seconds; the ones that had to be killed."""
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    _, alive = psutil.wait_procs(procs, grace)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, 5)
    return alive


def alive(proc: psutil.Process) -> bool:
    """Running and not a zombie (a child that exited and was not reaped yet)."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def wait_for(check, timeout: float, proc: psutil.Process | None = None,
             what: str = "service", log: Path | None = None, interval: float = 0.1) -> None:
    """Poll `check()` until true; fail early if `proc` exits (with the log's last lines)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc is not None and not alive(proc):
            raise RuntimeError(f"{what} exited during start-up{_tail(log)}")
        time.sleep(interval)
    raise RuntimeError(f"{what} not ready after {timeout:.0f} s{_tail(log)}")


def _tail(log: Path | None, lines: int = 8) -> str:
    if not log:
        return ""
    try:
        text = log.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return ""
    return f" (log {log}):\n  " + "\n  ".join(text) if text else f" (log {log})"


class RecordedService:
    """A local service that outlives the command that started it, found again through its
    record (`<state dir>/<name>.json`: pid, start time, address), started under a lock (two
    commands starting at once start one) with its output in `<name>.log`. A subclass sets
    `name`, `what` (for messages) and `address_key` (the record field `ensure` answers), and
    starts the process in `_start` through `_spawn`."""

    name = what = address_key = ""

    def __init__(self) -> None:
        from void_batch.services import state_dir

        d = state_dir()
        self.record_path = d / f"{self.name}.json"
        self.lock_path = d / f"{self.name}.lock"
        self.log_path = d / f"{self.name}.log"

    def running(self) -> tuple[dict | None, psutil.Process | None]:
        """(record, live process) of the service; the process is None when it does not run."""
        rec = read_record(self.record_path)
        return rec, process_of(rec)

    def ensure(self) -> tuple[str, bool]:
        """(address, started_now) of the running service, starting it in the background when
        none runs. Does not wait for it to answer (the subclass's wait_* does)."""
        with locked(self.lock_path):
            rec, proc = self.running()
            if proc is not None:
                return rec[self.address_key], False
            return self._start()[self.address_key], True

    def stop(self, timeout: float = 15) -> bool:
        """Stop the service (and everything in its session) if it runs; True if one was."""
        with locked(self.lock_path):
            _, proc = self.running()
            if proc is not None:
                stop_tree(proc, timeout)
            self.record_path.unlink(missing_ok=True)
            return proc is not None

    def _start(self) -> dict:
        raise NotImplementedError

    def _spawn(self, cmd: list[str], env: dict, where: str, **record) -> dict:
        """Start `cmd` detached, logging where it starts; write and return its record."""
        with open(self.log_path, "ab") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting on {where}\n"
                      .encode())
        proc = spawn_detached(cmd, env, self.log_path)
        rec = {"pid": proc.pid, "create_time": proc.create_time(), **record,
               "started": time.time()}
        write_record(self.record_path, rec)
        return rec

    def _running_or_fail(self) -> tuple[dict, psutil.Process]:
        rec, proc = self.running()
        if proc is None:
            raise RuntimeError(f"{self.what} is not running (log: {self.log_path})")
        return rec, proc
