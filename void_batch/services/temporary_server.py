"""A per-command Prefect server (VOID_BATCH_LOCAL_SERVICES=temporary): no UI, history kept in
the Prefect home's database, ended with the command, kill -9 of the command included."""
from __future__ import annotations

import atexit
import os
import subprocess
import sys

from void_batch.services import _process
from void_batch.services.prefect_server import SERVER_SETTINGS, _healthy

# No UI, so the event feed is not worth the SQLite write lock it takes from the run's own API
# calls (see SERVER_SETTINGS for the write batching).
TEMPORARY_SERVER_SETTINGS = {**SERVER_SETTINGS,
                             "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED": "false"}


class TemporaryPrefectServer:
    """Started by the CLI as its very first step, before any Prefect import, so the server's
    boot (6-10 s) overlaps the CLI's own imports and manifest checks; PREFECT_API_URL then points
    the client at it. Same command and environment as Prefect's SubprocessASGIServer (UI off,
    ephemeral services). The kernel sends it SIGTERM when the command dies (prctl
    PDEATHSIG); a normal exit stops it after Prefect's own exit handlers have flushed."""

    def __init__(self) -> None:
        self.port = _process.free_port(None)
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_")}
        for k, v in TEMPORARY_SERVER_SETTINGS.items():
            env.setdefault(k, v)
        env.update(PREFECT_UI_ENABLED="0", PREFECT__SERVER_EPHEMERAL="1",
                   PREFECT__SERVER_FINAL="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "prefect.server.api.server:create_app",
             "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "error",
             "--lifespan", "on"], env=env, stdin=subprocess.DEVNULL,
            preexec_fn=_process.die_with_parent)
        atexit.register(self.stop)  # registered before Prefect's: runs after them

    def wait_healthy(self) -> None:
        timeout = float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS")
                        or 90)
        proc = _process.psutil.Process(self.proc.pid)
        _process.wait_for(lambda: _healthy(self.api_url), timeout, proc,
                          f"temporary Prefect server (port {self.port})")

    def stop(self, timeout: float = 10) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
