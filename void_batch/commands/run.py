"""`void-batch run MANIFEST --out DIR`: the nightly batch, from the command line."""
from __future__ import annotations

import argparse

from void_engine.config import DEFAULT_ENGINE


def add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("manifest", help="Parquet manifest (local path or fsspec URI)")
    p.add_argument("--out", required=True,
                   help="output root: <out>/<shot_id>/ per shot, <out>/report.parquet/.html")
    p.add_argument("--engine", help="engine for every shot, overriding the manifest's engine "
                   f"column (default: the column, else {DEFAULT_ENGINE!r})")
    p.add_argument("--weights", help="weights folder of the engine (void: see README)")
    p.add_argument("--engine-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="engine option, repeatable (see `void-batch remove -h`)")
    p.add_argument("--cache", help="stage cache store: a folder or s3://, gs:// URI "
                   "(default $VOID_BATCH_CACHE, else ~/.cache/void-batch/store)")
    p.add_argument("--ray-address", help="Ray cluster to join (default $RAY_ADDRESS, else the "
                   "local Ray head that void-batch starts in the background and keeps running "
                   "between runs, like the local Prefect server: see `void-batch server`)")
    p.add_argument("--shots", help="comma-separated shot ids to run")
    p.add_argument("--tags", help="comma-separated tags: run the shots carrying any of them")
    p.add_argument("--no-review", action="store_true",
                   help="no review movie or contact sheet")
    p.add_argument("--gate-threshold", type=float,
                   help="morphing-gate threshold for passes=auto (higher: pass 2 less often)")
    p.add_argument("--qc-flicker-max", type=float, metavar="RATIO",
                   help="flag a shot whose change region flickers more than RATIO times the "
                        "plate's own flicker (default $VOID_QC_FLICKER_MAX, else 3)")
    p.add_argument("--qc-seam-max", type=float, metavar="RATIO",
                   help="flag a shot whose change-region edge is RATIO times sharper than "
                        "its surroundings (default $VOID_QC_SEAM_MAX, else 1.5)")
    p.add_argument("--output-root", action="append", default=[], metavar="DIR",
                   help="an extra folder a manifest row's output_uri may point into, "
                        "repeatable (rows can never name a root themselves)")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="Python module to import (here and in the engine actors) that "
                        "registers extra engines")
    p.add_argument("--dry-run", action="store_true",
                   help="show, per shot, which stages would run and which are cached; run "
                        "nothing")


def split(v: str | None) -> list[str] | None:
    return [s.strip() for s in v.split(",") if s.strip()] if v else None


def options_from(args: argparse.Namespace, **extra):
    """The RunOptions of a run/reprocess command line."""
    from tasks.options import RunOptions
    from void_batch.commands.remove import parse_engine_opts

    return RunOptions(manifest=args.manifest, output_root=args.out, engine=args.engine,
                      weights=args.weights, engine_opts=parse_engine_opts(args.engine_opt),
                      cache=args.cache, ray_address=args.ray_address, shots=split(args.shots),
                      tags=split(args.tags), plugins=args.plugin, review=not args.no_review,
                      gate_threshold=args.gate_threshold, output_roots=args.output_root,
                      qc_flicker_max=args.qc_flicker_max, qc_seam_max=args.qc_seam_max,
                      **extra)


def register(sub) -> None:
    p = sub.add_parser("run", help="run a manifest through the batch (Prefect + Ray)",
                       description="Run every shot of a manifest: masks, VOID passes, "
                       "compositing into the plate, deliverables and a report.")
    add_run_options(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    return launch("nightly_batch", options_from(args), dry_run=args.dry_run)


def launch(flow_name: str, options, *, dry_run: bool = False) -> int:
    """Load the manifest (a bad file fails here, in one line), then run the flow (or print
    the dry-run plan)."""
    import importlib

    from void_batch.commands import _signals

    if not dry_run:
        _signals.install()  # before anything slow: Ctrl-C/SIGTERM stop the run cleanly
    from manifests.loader import select

    m = options.load_manifest()
    if dry_run:
        from flows.plan import print_plan

        return print_plan(m, options)
    from void_batch.commands._prefect import run_flow, start_local_services

    start_local_services(options.ray_address)  # their boot overlaps the imports below
    picked, invalid = select(m, options.shots, options.tags)

    flow = importlib.import_module(f"flows.{flow_name}")
    return run_flow(getattr(flow, flow_name), len(picked) + len(invalid), options)
