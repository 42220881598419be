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


_server_thread = None


def start_local_server_early():
    """Without PREFECT_API_URL: start the temporary server in a background thread now, so
    its ~10 s boot (a subprocess: runs on the other core) overlaps the CLI's own imports and
    manifest checks instead of following them. run_flow waits for it before the flow."""
    import threading

    global _server_thread
    if _server_thread is None and tune_local_server():
        from prefect.server.api.server import SubprocessASGIServer

        _server_thread = threading.Thread(target=SubprocessASGIServer().start, daemon=True,
                                          name="prefect-temporary-server")
        _server_thread.start()
    return _server_thread


def announce_prefect() -> None:
    """Prefect without PREFECT_API_URL starts a temporary local server (10-18 s, history kept
    under PREFECT_HOME); say so, since that pause is otherwise a mystery."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if url:
        print(f"Prefect API: {url}", file=sys.stderr)
    else:
        home = os.environ.get("PREFECT_HOME", "~/.prefect")
        print("Prefect: no PREFECT_API_URL set, starting a temporary local Prefect server "
              f"(takes 10-20 s; run history in {home}). Set PREFECT_API_URL to use a real "
              "server.", file=sys.stderr)


def run_flow(flow_fn, total_hint: int, **params) -> int:
    """Call a flow with a tqdm bar fed by finished shots; print the summary; exit code."""
    from tqdm import tqdm

    from flows import common
    from flows.report import format_table, read_report

    tune_local_server()
    announce_prefect()
    if _server_thread is not None:  # SubprocessASGIServer.start marks itself running before
        _server_thread.join()       # it is healthy: never let the flow race it
    bar = tqdm(total=total_hint, unit="shot", desc="shots", file=sys.stderr)

    def on_shot(row: dict) -> None:
        bar.set_postfix_str(f"{row['shot_id']}: {row['status']}")
        bar.update(1)

    common.SHOT_LISTENERS.append(on_shot)
    try:
        state = flow_fn(**params, return_state=True)
    finally:
        common.SHOT_LISTENERS.remove(on_shot)
        bar.close()
    report = os.path.join(params["output_root"], "report.parquet")
    if state.is_completed() or os.path.exists(report):
        try:
            rows = read_report(report)
        except FileNotFoundError:
            rows = []
        if rows:
            print(format_table(rows))
            print(f"report: {report} (+ report.html)")
    if not state.is_completed():
        print(f"run {state.name}: {state.message}", file=sys.stderr)
        return 1
    return 0
