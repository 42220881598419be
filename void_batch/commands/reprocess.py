"""`void-batch reprocess MANIFEST --out DIR --shots|--tags|--failed-from REPORT`."""
from __future__ import annotations

import argparse

from void_batch.commands.run import add_run_options, flow_params, split


def register(sub) -> None:
    p = sub.add_parser("reprocess", help="re-run chosen shots (ids, tags, or the failed ones of "
                       "a report), reusing the stage cache")
    add_run_options(p)
    p.add_argument("--failed-from", help="report.parquet (or its folder): rerun its failed shots")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    import importlib

    from void_batch.commands import _signals

    _signals.install()  # before anything slow: Ctrl-C/SIGTERM stop the run cleanly
    from void_batch.commands._prefect import run_flow, start_local_services

    start_local_services(args.ray_address)
    from flows.reprocess import failed_shots, reprocess

    for mod in args.plugin:
        importlib.import_module(mod)
    shots = split(args.shots) or []
    if not (shots or args.tags or args.failed_from):
        print("reprocess: give --shots, --tags or --failed-from")
        return 2
    total = len(shots) + (len(failed_shots(args.failed_from)) if args.failed_from else 0)
    return run_flow(reprocess, total, shots=shots or None, failed_from=args.failed_from,
                    **flow_params(args))
