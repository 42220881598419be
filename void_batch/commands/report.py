"""`void-batch report DIR`: a run folder's report, filtered and sorted (pandas)."""
from __future__ import annotations

import argparse

from void_engine.errors import InputError


def register(sub) -> None:
    p = sub.add_parser("report", help="show the report of an output folder",
                       description="Show <DIR>/report.parquet (the current state of every "
                       "shot) or one run's own report (--run).")
    p.add_argument("dir", help="output folder of a run (or a report.parquet)")
    p.add_argument("--status", action="append", choices=("ok", "failed", "cancelled"),
                   help="only shots with this status (repeatable)")
    p.add_argument("--failed", action="store_true",
                   help="only shots that did not finish ok, with their full errors")
    p.add_argument("--shots", help="comma-separated shot ids")
    p.add_argument("--sort", default="row", metavar="COLUMN",
                   help="sort by this report column, e.g. seconds_total (default: row)")
    p.add_argument("--desc", action="store_true", help="sort descending")
    p.add_argument("--run", metavar="FLOW_RUN_ID",
                   help="the report of one past run (runs/<id>/ under DIR)")
    p.add_argument("--csv", metavar="FILE", help="also write the selected rows as CSV")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from flows import report

    where = args.dir if not args.run else f"{args.dir.rstrip('/')}/{report.RUNS}/{args.run}"
    try:
        df = report.load(where)
    except FileNotFoundError:
        raise InputError(f"no report in {where}") from None
    if args.sort not in df.columns:
        raise InputError(f"no report column {args.sort!r} (have: {', '.join(df.columns)})")
    if args.failed:
        df = df[df["status"] != "ok"]
    if args.status:
        df = df[df["status"].isin(args.status)]
    if args.shots:
        df = df[df["shot_id"].isin([s.strip() for s in args.shots.split(",")])]
    df = df.sort_values(args.sort, ascending=not args.desc, kind="stable", na_position="last")
    rows = report.records(df)
    if args.csv:
        df.to_csv(args.csv, index=False)
    if args.failed:
        for r in rows:
            print(f"{r['shot_id']} (row {r['row']}, stage {r.get('failed_stage')}): "
                  f"{r['error']}")
    else:
        print(report.format_table(rows))
        for r in rows:
            if r["status"] == "ok" and r.get("skipped"):
                print(f"  {r['shot_id']}: {r['skipped']}")
    return 1 if any(r["status"] != "ok" for r in rows) else 0
