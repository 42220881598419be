"""The persistent local Prefect server: started in the background by the first `void-batch run`
(or `void-batch server start`), reused by every later command, UI on, history in the Prefect
home's SQLite database (the same `prefect.db` Prefect's own ephemeral mode uses).

It is Prefect's own server app (`prefect.server.api.server:create_app` under uvicorn, as
`prefect server start --background` runs it) started here directly, so that the CLI does not
import Prefect first (~2 s) and its output goes to a log file instead of an unread pipe.
"""
from __future__ import annotations

import os
import sys
import urllib.request
from dataclasses import dataclass

from void_batch.services import _process

DEFAULT_PORT = 4200  # Prefect's usual port; another free port when something else holds it

# Write batching for the server's SQLite database. Task runs are recorded from their events one
# SQLite transaction per event by default (batch size 1): after a run of 200 shots x 5 task
# runs the server was still writing for 41 s (measured, 2 busy cores) and every API call of the
# next run queued behind it; batching cut that ~3x. The event persister (the UI's event feed)
# writes in batches too, flushed every few seconds rather than per event, so its writes do not
# take the SQLite write lock from a running batch's API calls (503 "database is locked" and
# 2 s client back-off were measured with per-event writes). Settings given in the environment
# win; a server on PostgreSQL (infra/README.md) is configured where it runs.
SERVER_SETTINGS = {
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_READ_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1.0",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE": "500",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_READ_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "5",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # offline boxes log telemetry errors
    "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
}


@dataclass
class ServerStatus:
    running: bool
    healthy: bool = False
    pid: int | None = None
    api_url: str | None = None
    ui_url: str | None = None
    log: str | None = None
    started: float | None = None


class LocalPrefectServer(_process.RecordedService):
    """Start / find / stop the persistent server of this Prefect home (`ensure`, `stop`:
    _process.RecordedService)."""

    name, what, address_key = "prefect-server", "the local Prefect server", "api_url"

    def status(self) -> ServerStatus:
        rec, proc = self.running()
        if proc is None:
            return ServerStatus(running=False, log=str(self.log_path))
        return ServerStatus(running=True, healthy=_healthy(rec["api_url"]), pid=proc.pid,
                            api_url=rec["api_url"], ui_url=rec["ui_url"],
                            log=str(self.log_path), started=rec.get("started"))

    def _start(self) -> dict:
        wanted = int(os.environ.get("VOID_BATCH_PREFECT_PORT", DEFAULT_PORT))
        port = _process.free_port(wanted or None)
        base = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_")}
        for k, v in SERVER_SETTINGS.items():
            env.setdefault(k, v)
        env.update(PREFECT_SERVER_API_HOST="127.0.0.1", PREFECT_SERVER_API_PORT=str(port),
                   PREFECT_UI_API_URL=f"{base}/api", PREFECT__SERVER_FINAL="1")
        env.setdefault("PREFECT_SERVER_UI_ENABLED", "true")
        cmd = [sys.executable, "-m", "uvicorn", "--factory",
               "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port",
               str(port), "--log-level", "warning", "--lifespan", "on"]
        return self._spawn(cmd, env, base, port=port, api_url=f"{base}/api", ui_url=base,
                           python=sys.executable)

    def wait_healthy(self, timeout: float | None = None) -> None:
        """Block until the recorded server answers /health (first start: database migrations,
        10-20 s on a busy machine)."""
        rec, proc = self._running_or_fail()
        timeout = timeout or float(os.environ.get(
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS") or 120)
        _process.wait_for(lambda: _healthy(rec["api_url"]), timeout, proc, self.what,
                          self.log_path, interval=0.2)


def _healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False
