"""`void-batch server status|start|stop`: the local Prefect server and Ray head."""
from __future__ import annotations

import argparse
import json
import sys
import time

HELP = """\
The local services of this workstation. Without PREFECT_API_URL, `void-batch run` starts a
Prefect server in the background on first use (UI and run history, database in the Prefect
home: $PREFECT_HOME, else ~/.prefect), and without --ray-address / RAY_ADDRESS a Ray head
(token auth), so the engine models stay loaded between runs. Both keep running after the
command that started them, by design, until `void-batch server stop` (or a reboot).
VOID_BATCH_LOCAL_SERVICES=temporary gives per-command ones instead."""


def register(sub) -> None:
    p = sub.add_parser("server", help="status, start or stop the local Prefect server and Ray "
                       "head that `void-batch run` keeps running in the background",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=("status", "start", "stop"), nargs="?", default="status",
                   help="status (default): what runs, where, its log; start: start both now "
                        "(and wait until they answer); stop: stop both (the resident engine "
                        "models are unloaded with Ray)")
    p.add_argument("--only", choices=("prefect", "ray"), help="act on one of the two")
    p.add_argument("--json", action="store_true", help="status as JSON")
    p.set_defaults(func=main)


def _since(t: float | None) -> str:
    if not t:
        return ""
    s = int(time.time() - t)
    return f", up {s // 3600}h{s % 3600 // 60:02d}m" if s >= 60 else f", up {s}s"


def _status(which: set[str], as_json: bool) -> int:
    from dataclasses import asdict

    from void_batch.services.prefect_server import LocalPrefectServer
    from void_batch.services.ray_head import LocalRayHead

    out = {}
    if "prefect" in which:
        out["prefect"] = asdict(LocalPrefectServer().status())
    if "ray" in which:
        out["ray"] = asdict(LocalRayHead().status())
    if as_json:
        print(json.dumps(out, indent=1))
        return 0
    p, r = out.get("prefect"), out.get("ray")
    if p is not None:
        if p["running"]:
            health = "answering" if p["healthy"] else "NOT answering yet"
            print(f"prefect server: running (pid {p['pid']}{_since(p['started'])}), {health}\n"
                  f"  UI  {p['ui_url']}\n  API {p['api_url']}\n  log {p['log']}")
        else:
            print("prefect server: not running (the next `void-batch run` starts it)")
    if r is not None:
        if r["running"]:
            print(f"ray head: running (pid {r['pid']}{_since(r['started'])})\n"
                  f"  address   {r['address']}  (RAY_AUTH_MODE=token, "
                  f"RAY_AUTH_TOKEN_PATH={r['token_path']})\n"
                  f"  dashboard {r['dashboard_url']}\n  log {r['log']}\n"
                  "  resident engine actors: `void-batch actors list`")
        else:
            print("ray head: not running (the next `void-batch run` starts it)")
    return 0


def _start(which: set[str]) -> int:
    from void_batch.services.prefect_server import LocalPrefectServer
    from void_batch.services.ray_head import LocalRayHead

    services = []
    if "prefect" in which:
        services.append(("prefect server", LocalPrefectServer()))
    if "ray" in which:
        services.append(("ray head", LocalRayHead()))
    for name, svc in services:
        started = svc.ensure()[1]
        print(f"{name}: {'starting' if started else 'already running'}", file=sys.stderr)
    try:
        for _, svc in services:
            (svc.wait_healthy if hasattr(svc, "wait_healthy") else svc.wait_ready)()
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return _status(which, False)


def _stop(which: set[str]) -> int:
    from void_batch.services.prefect_server import LocalPrefectServer
    from void_batch.services.ray_head import LocalRayHead

    if "ray" in which:
        print("ray head: " + ("stopped" if LocalRayHead().stop() else "was not running"))
    if "prefect" in which:
        print("prefect server: " + ("stopped" if LocalPrefectServer().stop()
                                    else "was not running"))
    return 0


def main(args: argparse.Namespace) -> int:
    which = {args.only} if args.only else {"prefect", "ray"}
    if args.action == "start":
        return _start(which)
    if args.action == "stop":
        return _stop(which)
    return _status(which, args.json)
