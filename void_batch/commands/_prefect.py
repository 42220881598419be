"""Shared by run/reprocess: tell the user which Prefect API they get, and run a flow with a
progress bar and a summary table."""
from __future__ import annotations

import os
import sys


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

    announce_prefect()
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
