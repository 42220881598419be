"""Shared by run/reprocess: the Prefect API and Ray cluster the command uses (the persistent
local services unless PREFECT_API_URL / RAY_ADDRESS / --ray-address say otherwise), and running
a flow with a progress bar, a summary table and SIGINT/SIGTERM handling."""
from __future__ import annotations

import os
import sys

from void_batch.services import temporary_mode

# What start_local_services chose, for announce/wait: ("persistent", server, started_now),
# ("temporary", server, True) or None (a configured API).
_prefect: tuple | None = None
_ray: tuple | None = None  # (LocalRayHead, started_now) when the local head is used


def _profile_api_url() -> str | None:
    """PREFECT_API_URL of the active Prefect profile, read without importing Prefect."""
    import tomllib

    from void_batch.services import prefect_home

    path = os.environ.get("PREFECT_PROFILES_PATH") or str(prefect_home() / "profiles.toml")
    try:
        with open(os.path.expanduser(path), "rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError):
        return None
    active = os.environ.get("PREFECT_PROFILE") or data.get("active") or "ephemeral"
    return (data.get("profiles", {}).get(active) or {}).get("PREFECT_API_URL")


def tune_local_server() -> bool:
    """For Prefect's own ephemeral server (benchmarks calling flows in-process): the temporary
    server's write batching, when no PREFECT_API_URL is set; True if it applies. Call before the
    first Prefect client."""
    from prefect.settings import PREFECT_API_URL

    from void_batch.services.temporary_server import TEMPORARY_SERVER_SETTINGS

    if PREFECT_API_URL.value():
        return False
    for k, v in TEMPORARY_SERVER_SETTINGS.items():
        os.environ.setdefault(k, v)
    return True


def start_local_services(ray_address: str | None = None) -> None:
    """Call first, before Prefect is imported. Without PREFECT_API_URL (environment or Prefect
    profile): start the local Prefect server in the background, or find the running one, and
    point PREFECT_API_URL at it. Without `ray_address` / RAY_ADDRESS: the same for the local Ray
    head (RAY_ADDRESS + its token in the environment). Nothing waits here: the boots overlap the
    command's own imports; run_flow waits. VOID_BATCH_LOCAL_SERVICES=temporary instead starts a
    per-command server (and lets the flow start a per-command Ray) that end with the command."""
    global _prefect, _ray
    if _prefect is None and not (os.environ.get("PREFECT_API_URL") or "prefect" in sys.modules
                                 or _profile_api_url()):
        if temporary_mode():
            from void_batch.services.temporary_server import TemporaryPrefectServer

            srv = TemporaryPrefectServer()
            _prefect = ("temporary", srv, True)
            os.environ["PREFECT_API_URL"] = srv.api_url
        else:
            from void_batch.services.prefect_server import LocalPrefectServer

            srv = LocalPrefectServer()
            url, started = srv.ensure()
            _prefect = ("persistent", srv, started)
            os.environ["PREFECT_API_URL"] = url
    if _ray is None and not (ray_address or os.environ.get("RAY_ADDRESS") or temporary_mode()
                             or _ray_initialized()):
        from void_batch.services.ray_head import LocalRayHead

        head = LocalRayHead()
        address, started = head.ensure()
        os.environ.update(head.driver_env(address))
        _ray = (head, started)


def _ray_initialized() -> bool:
    """A caller (a test, a notebook) that already joined or started Ray keeps it."""
    ray = sys.modules.get("ray")
    return bool(ray is not None and ray.is_initialized())


def announce_services() -> None:
    """Say which Prefect API and Ray this command uses, and that the local ones persist."""
    from prefect.settings import PREFECT_API_URL

    say = lambda msg: print(msg, file=sys.stderr)  # noqa: E731
    if _prefect is None:
        say(f"Prefect API: {PREFECT_API_URL.value()}")
    elif _prefect[0] == "temporary":
        say("Prefect: temporary local server for this command (VOID_BATCH_LOCAL_SERVICES="
            "temporary); run history kept in the Prefect home.")
    else:
        srv = _prefect[1].status()
        verb = "starting the" if _prefect[2] else "using the"
        say(f"Prefect: {verb} local Prefect server, UI at {srv.ui_url} (it keeps running "
            "after this command: `void-batch server status|stop`; set PREFECT_API_URL to use "
            "another server)")
    if _ray is not None:
        head = _ray[0].status()
        verb = "starting the" if _ray[1] else "using the"
        say(f"Ray: {verb} local Ray head at {head.address} (it keeps running, with the engine "
            "models loaded, after this command: `void-batch server status|stop`)")


def _wait_for_services() -> None:
    if _prefect is not None:
        srv = _prefect[1]
        srv.wait_healthy()
    if _ray is not None:
        _ray[0].wait_ready()


def run_flow(flow_fn, total_hint: int, options) -> int:
    """Call a flow with a tqdm bar fed by finished shots; print the summary, every file the run
    wrote and the run's link in the Prefect UI; exit code (128 + the signal number when
    SIGINT/SIGTERM stopped it)."""
    from tqdm import tqdm

    from flows import batch
    from flows.report import format_table, read_report
    from void_batch.commands import _signals

    stopper = _signals.install()
    if _prefect is not None and _prefect[0] == "temporary":
        stopper.cleanups.append(lambda: _prefect[1].stop(3))
    announce_services()
    stopper.run_in_thread(_wait_for_services)
    if stopper.stopping:
        _signals.uninstall()
        return stopper.exit_code
    bar = tqdm(total=total_hint, unit="shot", desc="shots", file=sys.stderr)

    def on_shot(row: dict) -> None:
        bar.set_postfix_str(f"{row['shot_id']}: {row['status']}")
        bar.update(1)

    stopper.watch_flow(flow_fn.name, options.output_root)
    batch.SHOT_LISTENERS.append(on_shot)
    try:
        state = stopper.run_in_thread(lambda: flow_fn(options=options, return_state=True))
    finally:
        batch.SHOT_LISTENERS.remove(on_shot)
        bar.close()
        _signals.uninstall()
    _print_results(state, options, format_table, read_report)
    if stopper.stopping:
        print(f"run {state.name}: {state.message}", file=sys.stderr)
        return stopper.exit_code
    if not state.is_completed():
        print(f"run {state.name}: {state.message}", file=sys.stderr)
        return 1
    return 0


def _print_results(state, options, format_table, read_report) -> None:
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
