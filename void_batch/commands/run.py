"""`void-batch run MANIFEST --out DIR`: the nightly batch, from the command line."""
from __future__ import annotations

import argparse
import sys


def add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("manifest", help="Parquet manifest (local path or fsspec URI)")
    p.add_argument("--out", required=True, help="output root: <out>/<shot_id>/ + report.parquet")
    p.add_argument("--engine", help="engine for every shot (overrides the manifest's engine "
                   "column; default: the column, else 'void')")
    p.add_argument("--weights", help="weights folder for the engine (void)")
    p.add_argument("--cache", help="stage cache store URI (default ~/.cache/void-batch/store "
                   "or $VOID_BATCH_CACHE)")
    p.add_argument("--ray-address", help="join this Ray cluster (default: $RAY_ADDRESS, else "
                   "the local Ray head that void-batch starts in the background and keeps "
                   "running between runs, like the local Prefect server: see `void-batch "
                   "server`)")
    p.add_argument("--shots", help="comma-separated shot ids to run")
    p.add_argument("--tags", help="comma-separated tags: run shots carrying any of them")
    p.add_argument("--no-review", action="store_true", help="skip review movie/contact sheet")
    p.add_argument("--engine-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="engine constructor option, repeatable (see `void-batch remove -h`)")
    p.add_argument("--gate-threshold", type=float, help="morphing-gate threshold override")
    p.add_argument("--plugin", action="append", default=[],
                   help="module to import (in the driver and the engine actors) that registers "
                        "extra engines")


def split(v: str | None) -> list[str] | None:
    return [s.strip() for s in v.split(",") if s.strip()] if v else None


def flow_params(args: argparse.Namespace) -> dict:
    from void_batch.commands.remove import parse_engine_opts

    return dict(engine_kwargs=parse_engine_opts(args.engine_opt) or None,
                manifest=args.manifest, output_root=args.out, engine=args.engine,
                weights=args.weights, cache=args.cache, ray_address=args.ray_address,
                tags=split(args.tags), plugins=args.plugin or None,
                review=not args.no_review, gate_threshold=args.gate_threshold)


def register(sub) -> None:
    p = sub.add_parser("run", help="run a manifest through the batch flow (Prefect + Ray)")
    add_run_options(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    import importlib

    from void_batch.commands import _signals

    _signals.install()  # before anything slow: Ctrl-C/SIGTERM stop the run cleanly
    from manifests.loader import load_manifest
    from void_batch.commands._prefect import run_flow, start_local_services
    from void_engine.errors import InputError

    try:
        params = flow_params(args)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    start_local_services(args.ray_address)

    for mod in args.plugin:
        importlib.import_module(mod)
    m = load_manifest(args.manifest)  # fail fast on an unreadable file; rows are checked again
    shots = split(args.shots)
    total = len(shots) if shots else len(m.shots) + len({e.row for e in m.errors})
    from flows.nightly_batch import nightly_batch

    return run_flow(nightly_batch, total, shots=shots, **params)
