"""`void-batch eval`: measured removal quality on counterfactual clips with ground truth.

  void-batch eval generate SET                      make the default set (8 clips, 24 frames)
  void-batch eval run SET --engine propagate --out EVAL
  void-batch eval score SET --results DIR --label void-gpu --out EVAL
  void-batch eval gate SET --out EVAL                 the morphing gate's ROC on the set

`run` removes the object from every clip with the engine (through the library's stages, no
Prefect) and scores the result; `score` scores results made elsewhere (e.g. `void-batch run
SET/manifest.parquet --out DIR` on a GPU machine). Both add their rows to EVAL/eval.parquet
and rewrite EVAL/eval.html (per-engine summary, per-clip rows, plots).
"""
from __future__ import annotations

import argparse
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "eval", help="measure removal quality on generated clips with ground truth",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="eval_command", metavar="ACTION", required=True)

    g = sub.add_parser("generate", help="write a set of counterfactual clips + manifest")
    g.add_argument("set", help="folder to write the set into")
    g.add_argument("--clips", type=int, default=8, help="number of clips (default 8)")
    g.add_argument("--frames", type=int, default=24, help="frames per clip (default 24)")
    g.add_argument("--seed", type=int, default=0, help="the same seed gives the same set")
    g.add_argument("--sizes", metavar="WxH,...", help="clip sizes, width x height, "
                   "comma-separated, used in turn (default 672x384,640x360,1280x720,"
                   "1920x1080)")
    g.set_defaults(func=run_generate)

    r = sub.add_parser("run", help="run an engine over a set and score it")
    r.add_argument("set", help="a folder made by `eval generate`")
    r.add_argument("--engine", default="propagate", help="engine name (propagate, void)")
    r.add_argument("--engine-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="engine constructor option, repeatable (as for `remove`)")
    r.add_argument("--weights", help="weights folder (engines that take weights)")
    r.add_argument("--passes", choices=("1", "2"), default="1")
    r.add_argument("--model-size", metavar="WxH", help="engine working size, width x height "
                   "(default: the engine's)")
    r.add_argument("--label", help="name of this engine/setting in the table "
                   "(default: the engine name)")
    r.add_argument("--keep-results", action="store_true",
                   help="keep the result videos in OUT/results/LABEL/")
    r.add_argument("--out", required=True, help="evaluation folder (table, page, plots)")
    r.set_defaults(func=run_engine)

    s = sub.add_parser("score", help="score existing results against a set's ground truth")
    s.add_argument("set", help="a folder made by `eval generate`")
    s.add_argument("--results", required=True, help="folder with one result per clip "
                   "(<clip>.mkv, or <clip>/<clip>.mkv as `void-batch run` writes)")
    s.add_argument("--label", required=True, help="name of these results in the table")
    s.add_argument("--out", required=True, help="evaluation folder (table, page, plots)")
    s.set_defaults(func=run_score)

    c = sub.add_parser("gate", help="measure how well the morphing gate's threshold "
                       "separates pass-1 results that need pass 2 (rigid vs morphing "
                       "objects synthesized in each clip's change region)")
    c.add_argument("set", help="a folder made by `eval generate`")
    c.add_argument("--model-size", metavar="WxH", help="working size the gate sees, width x "
                   "height (default 672x384)")
    c.add_argument("--out", required=True, help="folder for gate.parquet and the plot")
    c.set_defaults(func=run_gate)


class _Bar:
    """One tqdm bar per clip stage."""

    def __init__(self):
        from tqdm import tqdm

        self.bar = tqdm(total=1, unit="frame", file=sys.stderr)
        self.key = None

    def __call__(self, clip: str, stage: str, done: int, total: int) -> None:
        if self.key != (clip, stage):
            self.key = (clip, stage)
            self.bar.reset(total=total)
            self.bar.set_description_str(f"{clip}: {stage}")
        self.bar.update(done - self.bar.n)

    def close(self):
        self.bar.close()


def run_generate(args: argparse.Namespace) -> int:
    from void_engine.eval.generator import DEFAULT_SIZES, SetOptions, generate_set

    bar = _Bar()
    try:
        sizes = tuple(_clip_size(s) for s in args.sizes.split(",")) if args.sizes \
            else DEFAULT_SIZES
        path = generate_set(args.set, SetOptions(clips=args.clips, frames=args.frames,
                                                 seed=args.seed, sizes=sizes),
                            progress=lambda clip, d, t: bar(clip, "render", d, t))
    finally:
        bar.close()
    print(f"wrote {args.clips} clips and {path}")
    return 0


def _clip_size(text: str) -> tuple[int, int]:
    """'640x360' (width x height, like --model-size) -> (360, 640): any size (clips need not
    be model-sized)."""
    from void_engine.errors import InputError

    try:
        w, h = (int(v) for v in text.strip().lower().split("x"))
    except ValueError:
        raise InputError(f"--sizes: {text!r} is not WIDTHxHEIGHT (e.g. 640x360)") from None
    return h, w


def run_engine(args: argparse.Namespace) -> int:
    from void_batch.commands.remove import _make_engine, parse_engine_opts
    from void_engine.config import parse_size
    from void_engine.errors import InputError
    from void_engine.eval import runner

    bar = _Bar()
    try:
        model_size = parse_size(args.model_size) if args.model_size else None
        engine = _make_engine(args.engine, args.weights, model_size,
                              parse_engine_opts(args.engine_opt))
        if args.passes == "2" and not engine.supports_pass2:
            raise InputError(f"engine {engine.name!r} has no pass 2 (use --passes 1)")
        label = args.label or engine.name
        keep = f"{args.out}/results/{label}" if args.keep_results else None
        rows = runner.run_engine(args.set, engine, label=label, passes=args.passes,
                                 model_size=model_size, results_dir=keep, progress=bar)
    finally:
        bar.close()
    return _write(rows, args.out)


def run_score(args: argparse.Namespace) -> int:
    from void_engine.eval import runner

    bar = _Bar()
    try:
        rows = runner.score_results(args.set, args.results, label=args.label, progress=bar)
    finally:
        bar.close()
    return _write(rows, args.out)


def _write(rows: list[dict], out: str) -> int:
    import pandas as pd

    from void_engine.eval import report

    df = report.merge(report.read_table(out), pd.DataFrame(rows))
    paths = report.write_outputs(df, out)
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(report.summary(df).round(3).to_string())
    failed = [r for r in rows if r.get("error")]
    for r in failed:
        print(f"{r['clip']}: {r['error']}", file=sys.stderr)
    print(f"wrote {paths['table']} and {paths['page']}")
    return 1 if failed else 0


def run_gate(args: argparse.Namespace) -> int:
    from void_engine.config import DEFAULT_MODEL_SIZE, parse_size
    from void_engine.eval import gate_calibration as gc
    from void_engine.masks.gate import DEFAULT_THRESHOLD

    bar = _Bar()
    try:
        size = parse_size(args.model_size) if args.model_size else DEFAULT_MODEL_SIZE
        df = gc.score_set(args.set, size, progress=bar)
    finally:
        bar.close()
    summary = gc.roc(df, DEFAULT_THRESHOLD)
    paths = gc.write_outputs(df, summary, args.out)
    print(df.groupby("kind")["score"].describe()[["min", "50%", "max"]].round(2).to_string())
    for key, value in summary.items():
        print(f"{key}: {value:.3f}" if isinstance(value, float) else f"{key}: {value}")
    print(f"wrote {paths['table']} and {paths['plot']}")
    return 0
