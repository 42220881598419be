"""`void-batch report DIR`: print a run's report (DIR/report.parquet)."""
from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("report", help="print the report of a run folder")
    p.add_argument("dir", help="run output folder (or a report.parquet)")
    p.add_argument("--failed", action="store_true", help="only failed shots, with full errors")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from flows.report import format_table, read_report

    try:
        rows = read_report(args.dir)
    except FileNotFoundError:
        print(f"no report.parquet in {args.dir}")
        return 2
    if args.failed:
        rows = [r for r in rows if r["status"] != "ok"]
        for r in rows:
            print(f"{r['shot_id']} (row {r['row']}, stage {r.get('failed_stage')}): {r['error']}")
        return 1 if rows else 0
    print(format_table(rows))
    for r in rows:
        if r["status"] == "ok" and r.get("skipped"):
            print(f"  {r['shot_id']}: {r['skipped']}")
    return 1 if any(r["status"] != "ok" for r in rows) else 0
