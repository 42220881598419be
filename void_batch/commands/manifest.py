"""`void-batch manifest init FOLDER -o M.parquet` and `void-batch manifest check M`."""
from __future__ import annotations

import argparse
import os
import sys


def register(sub) -> None:
    p = sub.add_parser("manifest", help="build or check a shot manifest")
    msub = p.add_subparsers(dest="manifest_cmd", metavar="ACTION", required=True)
    init = msub.add_parser("init", help="build a manifest from folders laid out like "
                           "../shared/samples (input_video.mp4, quadmask, prompt.json)")
    init.add_argument("folder")
    init.add_argument("-o", "--output", required=True, help="manifest to write (.parquet)")
    init.add_argument("--absolute", action="store_true",
                      help="write absolute paths (default: relative to the manifest's folder)")
    init.set_defaults(func=init_main)
    check = msub.add_parser("check", help="validate a manifest; prints every row-level error")
    check.add_argument("manifest")
    check.add_argument("--no-files", action="store_true", help="skip the file-exists checks")
    check.add_argument("--deep", action="store_true",
                       help="also open every plate and quadmask: sizes, frame counts and "
                            "ranges, interlacing, quadmask values on a few frames (what the "
                            "run's decode would refuse)")
    check.add_argument("--output-root", action="append", default=[], metavar="DIR",
                       help="a root rows' absolute output_uri may point into (as `run "
                            "--out`/`--output-root` will allow), repeatable")
    check.set_defaults(func=check_main)


def init_main(args: argparse.Namespace) -> int:
    from manifests.loader import rows_from_folder, write_manifest

    out_dir = os.path.dirname(os.path.abspath(args.output))
    rows = rows_from_folder(args.folder, relative_to=None if args.absolute else out_dir)
    if not rows:
        print(f"no shot folders (input_video.mp4 + quadmask) under {args.folder}", file=sys.stderr)
        return 1
    write_manifest(rows, args.output)
    print(f"wrote {args.output}: {len(rows)} shots ({', '.join(r.shot_id for r in rows)})")
    return 0


def check_main(args: argparse.Namespace) -> int:
    import time

    from manifests.loader import load_manifest

    t0 = time.perf_counter()
    m = load_manifest(args.manifest, check_files=not args.no_files,
                      output_roots=args.output_root)
    if args.deep:
        deep = _deep_errors(m)
        bad_rows = {e.row for e in deep}
        m.shots = [s for s, r in zip(m.shots, m.rows, strict=True) if r not in bad_rows]
        m.rows = [r for r in m.rows if r not in bad_rows]
        m.errors = sorted(m.errors + deep, key=lambda e: e.row)
    for e in m.errors:
        print(e)
    bad = len({e.row for e in m.errors})
    print(f"{_n(len(m.shots), 'good row')}, {_n(bad, 'bad row')} "
          f"({_n(len(m.errors), 'error')}) "
          f"in {time.perf_counter() - t0:.2f} s")
    return 1 if m.errors else 0


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _deep_errors(m) -> list:
    """Open each good row's plate and quadmask the way the run's decode stage will."""
    from tqdm import tqdm

    from manifests.loader import RowError
    from void_engine.preflight import check_shot_inputs

    errors = []
    for shot, row in tqdm(list(zip(m.shots, m.rows, strict=True)), desc="deep check",
                          unit="shot", file=sys.stderr):
        for problem in check_shot_inputs(shot.plate_uri, shot.quadmask_uri,
                                         frame_range=shot.frame_range, fps=shot.fps):
            errors.append(RowError(row, shot.shot_id, problem))
    return errors
