"""Running the real `void-batch` CLI in a subprocess, as a user would: its environment (no
PREFECT_API_URL / RAY_ADDRESS of the test process), its process tree, and loopback ports."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

from testkit.flows import REPO, TESTS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli_env(prefect_home: Path, **extra: str) -> dict[str, str]:
    """The environment of a user's shell: nothing inherited from this test process's Prefect
    or Ray, the checkout and tests/ importable (the test engines are a --plugin)."""
    drop = ("PREFECT_API_URL", "PREFECT_API_KEY", "RAY_ADDRESS", "RAY_AUTH_TOKEN",
            "RAY_AUTH_TOKEN_PATH", "RAY_RUNTIME_ENV_HOOK", "VOID_BATCH_LOCAL_SERVICES")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(PREFECT_HOME=str(prefect_home), PYTHONPATH=os.pathsep.join([str(REPO), str(TESTS)]),
               VOID_BATCH_PREFECT_PORT="0", VOID_BATCH_RAY_PORT="0", PYTHONUNBUFFERED="1",
               # one logical GPU (Ray does not check it exists), small object store: a test box
               VOID_BATCH_RAY_HEAD_ARGS="--num-cpus=2 --num-gpus=1 "
                                        "--object-store-memory=150000000")
    env.update(extra)
    return env


def void_batch(*args: str, env: dict, timeout: float = 300,
               check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "void_batch.cli", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"void-batch {' '.join(args)} -> {proc.returncode}\n"
                             f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def start_void_batch(*args: str, env: dict, log: Path) -> subprocess.Popen:
    """`void-batch ARGS` in the background, output to `log` (read it with log.read_text())."""
    f = open(log, "w")  # noqa: SIM115 (the child writes to it until it exits)
    return subprocess.Popen([sys.executable, "-m", "void_batch.cli", *args], env=env, cwd=REPO,
                            stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def services_status(env: dict) -> dict:
    return json.loads(void_batch("server", "status", "--json", env=env).stdout)


def wait_until(check, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def still_running(procs: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p)
        except psutil.NoSuchProcess:
            pass
    return alive
