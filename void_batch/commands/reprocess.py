"""`void-batch reprocess MANIFEST --out DIR --shots|--tags|--failed-from REPORT`."""
from __future__ import annotations

import argparse

from void_batch.cli import UsageError
from void_batch.commands.run import add_run_options, launch, options_from
from void_engine.errors import InputError


def register(sub) -> None:
    p = sub.add_parser("reprocess", help="re-run chosen shots (ids, tags, or the failed ones "
                       "of a report), reusing the stage cache")
    add_run_options(p)
    p.add_argument("--failed-from", metavar="REPORT",
                   help="a report.parquet (or the folder holding it): rerun its failed shots")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if not (args.shots or args.tags or args.failed_from):
        raise UsageError("give --shots, --tags or --failed-from")
    options = options_from(args, failed_from=args.failed_from)
    if args.failed_from and not args.dry_run:
        from flows.reprocess import failed_shots

        ids = list(options.shots or []) + failed_shots(args.failed_from)
        if not ids:
            raise InputError(f"no failed shots in {args.failed_from}: nothing to reprocess")
        options = options.model_copy(update={"shots": ids, "failed_from": None})
    return launch("reprocess", options, dry_run=args.dry_run)
