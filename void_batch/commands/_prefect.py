"""Shared by run/reprocess: tell the user which Prefect API they get, and run a flow with a
progress bar and a summary table."""
from __future__ import annotations

import os
import sys

# The temporary server records task runs from their events one event per SQLite transaction
# by default (batch size 1): after a run of 200 shots x 5 task runs it was still writing for
# 41 s (measured, 2 busy cores), and every API call of the next steps queued behind it.
# Batching the writes cut that backlog ~3x. The event persister (the events table, read only by
# the UI's event feed, which a temporary server does not serve) is turned off: its writes
# took the SQLite write lock from the next run's API calls (503 "database is locked" and 2 s
# client back-off on creating the next flow run). Flow runs, task runs, logs and artifacts are
# still recorded. Only for the temporary server this CLI starts; a real server is configured
# where it runs (infra/README.md), and explicit settings win.
LOCAL_SERVER_SETTINGS = {
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_READ_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1.0",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED": "false",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # offline boxes log telemetry errors
}


def tune_local_server() -> bool:
    """Batch the temporary server's writes (LOCAL_SERVER_SETTINGS) when no PREFECT_API_URL
    is set; True if a temporary server will be used. Call before the first Prefect client."""
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return False
    for k, v in LOCAL_SERVER_SETTINGS.items():
        os.environ.setdefault(k, v)
    return True


class _TemporaryServer:
    """The temporary Prefect server, started by the CLI itself as its very first step.

    Prefect's own ephemeral mode starts the server only when the flow asks for a client, after
    the CLI has imported Prefect, its server package (~3 s in the client alone) and the flows,
    and loaded the manifest; the server then boots for 6-10 s while the client waits. Started
    here, before any Prefect import, the boot runs in parallel (a separate process) with all
    of that, and PREFECT_API_URL points the client at it, so the client never imports the
    server package. Same command and environment as Prefect's SubprocessASGIServer (UI off,
    ephemeral services); stopped at exit after Prefect's own exit handlers have flushed."""

    def __init__(self) -> None:
        import atexit
        import socket
        import subprocess

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
               "PREFECT__SERVER_FINAL": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "prefect.server.api.server:create_app",
             "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "error",
             "--lifespan", "on"], env=env)
        atexit.register(self.stop)  # registered before Prefect's: runs after them

    def wait_healthy(self) -> None:
        import time
        import urllib.request

        timeout = float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS")
                        or 90)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"temporary Prefect server exited with code "
                                   f"{self.proc.returncode} (port {self.port})")
            try:
                with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"temporary Prefect server not healthy after {timeout:.0f} s "
                           "(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS)")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except Exception:
                self.proc.kill()


_server: _TemporaryServer | None = None


def _profile_api_url() -> str | None:
    """PREFECT_API_URL of the active Prefect profile, read without importing Prefect."""
    import tomllib

    home = os.path.expanduser(os.environ.get("PREFECT_HOME") or "~/.prefect")
    path = os.environ.get("PREFECT_PROFILES_PATH") or os.path.join(home, "profiles.toml")
    try:
        with open(os.path.expanduser(path), "rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError):
        return None
    active = os.environ.get("PREFECT_PROFILE") or data.get("active") or "ephemeral"
    return (data.get("profiles", {}).get(active) or {}).get("PREFECT_API_URL")


def start_local_server_early() -> None:
    """Without PREFECT_API_URL in the environment, and before Prefect is imported: start the
    temporary server now (see _TemporaryServer). Otherwise a no-op: a configured API (also one
    set in a Prefect profile, checked once Prefect is imported) or an already imported Prefect
    gets Prefect's own behaviour."""
    global _server
    if (_server is not None or os.environ.get("PREFECT_API_URL") or "prefect" in sys.modules
            or _profile_api_url()):
        return
    for k, v in LOCAL_SERVER_SETTINGS.items():
        os.environ.setdefault(k, v)
    _server = _TemporaryServer()
    os.environ["PREFECT_API_URL"] = _server.api_url


def announce_prefect() -> None:
    """Prefect without PREFECT_API_URL starts a temporary local server (10-18 s, history kept
    under PREFECT_HOME); say so, since that pause is otherwise a mystery."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if url and not (_server and url == _server.api_url):
        print(f"Prefect API: {url}", file=sys.stderr)
    else:
        home = os.environ.get("PREFECT_HOME", "~/.prefect")
        print("Prefect: no PREFECT_API_URL set, starting a temporary local Prefect server "
              f"(takes 10-20 s; run history in {home}). Set PREFECT_API_URL to use a real "
              "server.", file=sys.stderr)


def run_flow(flow_fn, total_hint: int, options) -> int:
    """Call a flow with a tqdm bar fed by finished shots; print the summary, every file the run
    wrote and the run's link in the Prefect UI; exit code."""
    from tqdm import tqdm

    from flows import batch
    from flows.report import format_table, read_report

    tune_local_server()
    announce_prefect()
    if _server is not None:
        _server.wait_healthy()
    bar = tqdm(total=total_hint, unit="shot", desc="shots", file=sys.stderr)

    def on_shot(row: dict) -> None:
        bar.set_postfix_str(f"{row['shot_id']}: {row['status']}")
        bar.update(1)

    batch.SHOT_LISTENERS.append(on_shot)
    try:
        state = flow_fn(options=options, return_state=True)
    finally:
        batch.SHOT_LISTENERS.remove(on_shot)
        bar.close()
    run_id = str(state.state_details.flow_run_id or "")
    report = f"{options.output_root.rstrip('/')}/report.parquet"
    try:
        rows = [r for r in read_report(report) if r.get("flow_run_id") == run_id]
    except FileNotFoundError:
        rows = []
    if rows:
        print(format_table(rows))
        for r in rows:
            for key in ("result_uri", "matte_uri", "review_uri", "thumbnail"):
                if r.get(key):
                    print(f"  {r['shot_id']}: {r[key]}")
        print(f"report: {report} (+ report.html, runs/{run_id}/)")
    from flows.finish import flow_run_url

    url = flow_run_url(run_id)
    if url:
        print(f"Prefect run: {url}")
    if not state.is_completed():
        print(f"run {state.name}: {state.message}", file=sys.stderr)
        return 1
    return 0
