"""`void-batch remove`: one shot, plate in, plate-resolution result out.

Chains the library's stages in a temporary work folder:
decode_shot -> run_pass1 (-> run_pass2 with --passes 2) -> encode_shot.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from void_engine.config import DEFAULT_ENGINE, DEFAULT_MODEL_SIZE, parse_size
from void_engine.errors import InputError, OutputError
from void_engine.io.codecs import ALL_CODECS as CODECS
from void_engine.io.codecs import CODEC_BY_EXT


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "remove", help="remove the quadmask's object from one shot",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--video", required=True, help="plate: video file or PNG/EXR sequence")
    p.add_argument("--quadmask", help="quadmask video/sequence (default: quadmask_0.mp4, "
                   "quadmask_*.mp4 or trimask_quadmask.mp4 next to the video)")
    p.add_argument("--prompt", help="the scene after removal (default: prompt.json 'bg' "
                   "next to the video)")
    p.add_argument("--engine", default=DEFAULT_ENGINE,
                   help=f"engine: void (the VOID model, needs --weights) or propagate (CPU, "
                        f"appearance only); default {DEFAULT_ENGINE}")
    p.add_argument("--out", required=True, help="result file (.mp4/.mov/.mkv) or folder "
                   "for png/exr")
    p.add_argument("--frames", help="inclusive plate frame range FIRST-LAST, e.g. 10-40")
    p.add_argument("--codec", choices=CODECS, help="default: from --out's extension")
    p.add_argument("--model-size", metavar="WxH",
                   help="size the engine works at, width x height like ffmpeg (default: the "
                        f"engine's own, else {DEFAULT_MODEL_SIZE[1]}x{DEFAULT_MODEL_SIZE[0]})")
    p.add_argument("--weights", help="weights folder (engines that take weights)")
    p.add_argument("--passes", choices=("1", "2"), default="1")
    p.add_argument("--engine-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="engine option, repeatable (void: memory_mode=fp8, dtype=bf16, "
                   "window_frames=85, noise_mode=aligned, pass2_mask=trimask, "
                   "raft_weights=PATH, base=DIR, uint8=truncate, lora=PATH, lora_scale=0.8, "
                   "compile=true)")
    p.add_argument("--shot-id", help="name used in messages and output names")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--fps", type=float, help="frame rate of an image-sequence plate "
                   "(default 24)")
    p.add_argument("--dilate-px", type=int, default=8, help="grow the change region")
    p.add_argument("--feather-px", type=int, default=8, help="soft edge width")
    p.add_argument("--workdir", help="keep intermediate files here (default: temp, removed)")
    p.add_argument("--no-review", action="store_true", help="skip review movie/contact sheet")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    result = remove(args)
    print(f"wrote {result.result_uri} ({result.frames} frames, {result.size[1]}x"
          f"{result.size[0]}, {result.fps_rational} fps)")
    return 0


def parse_frames(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    parts = text.strip().split("-")
    try:
        a, b = (int(parts[0]), int(parts[-1])) if len(parts) in (1, 2) else (None, None)
    except ValueError:
        a = b = None
    if a is None or b is None or a < 0 or b < a:
        raise InputError(f"--frames {text!r} is not a range FIRST-LAST with "
                         "0 <= FIRST <= LAST (e.g. 10-40)")
    return a, b


def resolve_output(out: str, codec: str | None) -> tuple[str, str]:
    """(result path, codec) from --out and --codec."""
    ext = os.path.splitext(out.rstrip("/"))[1].lower()
    if codec is None:
        if ext not in CODEC_BY_EXT:
            raise InputError(f"cannot tell the codec from --out {out!r}: give --codec or an "
                             ".mp4/.mov/.mkv name")
        return out, CODEC_BY_EXT[ext]
    if codec in ("png", "exr"):
        if ext in CODEC_BY_EXT:
            raise InputError(f"--codec {codec} writes a folder of frames; --out {out!r} "
                             "names a video file")
        return out.rstrip("/"), codec
    want = next(e for e, c in CODEC_BY_EXT.items() if c == codec)
    if not ext:
        return out + want, codec
    if ext != want:
        raise InputError(f"--out {out!r} does not match --codec {codec} (needs {want})")
    return out, codec


def default_prompt(video: str) -> str:
    path = Path(video).parent / "prompt.json" if not os.path.isdir(video) else \
        Path(video) / "prompt.json"
    if path.is_file():
        try:
            return str(json.loads(path.read_text()).get("bg", ""))
        except (json.JSONDecodeError, AttributeError):
            raise InputError(f"{path} is not valid JSON with a 'bg' prompt") from None
    return ""


def parse_engine_opts(items: list[str]) -> dict:
    """KEY=VALUE pairs; VALUE is read as JSON when it parses (numbers, true/false), else text."""
    opts = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--engine-opt {item!r} is not KEY=VALUE")
        try:
            opts[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            opts[key.strip()] = value
    return opts


def _make_engine(name: str, weights: str | None, model_size: tuple[int, int] | None,
                 options: dict | None = None):
    from void_engine.engines.base import available_engines, create_engine, engine_accepts

    if name not in available_engines():
        return create_engine(name)  # raises the "unknown engine" error
    kwargs = dict(options or {})
    if weights:
        if not engine_accepts(name, "weights"):
            raise InputError(f"engine {name!r} takes no --weights")
        kwargs["weights"] = weights
    # Engines that work at a configurable size take it; others just get the clip at that size.
    if model_size is not None and engine_accepts(name, "model_size"):
        kwargs["model_size"] = model_size
    return create_engine(name, **kwargs)


def remove(args: argparse.Namespace):
    from tqdm import tqdm

    from void_engine import stages
    from void_engine.engines.base import RemovalParams
    from void_engine.io import check_writable
    from void_engine.quadmask import MASK_NAMES, find_quadmask

    # Cheap checks first: nothing heavy starts before the output is known to be writable.
    out, codec = resolve_output(args.out, args.codec)
    for suffix in ("", "_matte.mkv") + (() if args.no_review else ("_review.mp4",)):
        target = out if not suffix else stages.result_stem(out) + suffix
        check_writable(target, "output")
    frame_range = parse_frames(args.frames)
    model_size = parse_size(args.model_size) if args.model_size else None
    video = args.video
    if not os.path.exists(video) and "://" not in video:
        raise InputError(f"plate not found: {video}")
    quadmask = args.quadmask
    if quadmask is None:
        folder = video if os.path.isdir(video) else os.path.dirname(os.path.abspath(video))
        quadmask = find_quadmask(folder)
        if quadmask is None:
            raise InputError(f"no --quadmask given and none next to the video "
                             f"({', '.join(MASK_NAMES)})")
    elif not os.path.exists(quadmask) and "://" not in quadmask:
        raise InputError(f"quadmask not found: {quadmask}")
    shot_id = args.shot_id or _shot_name(video)
    prompt = args.prompt if args.prompt is not None else default_prompt(video)

    engine = _make_engine(args.engine, args.weights, model_size,
                          parse_engine_opts(args.engine_opt))
    if args.passes == "2" and not engine.supports_pass2:
        raise InputError(f"engine {engine.name!r} has no pass 2 (use --passes 1)")
    size = model_size or engine.model_size or DEFAULT_MODEL_SIZE
    params = RemovalParams(seed=args.seed, passes=args.passes)

    with tempfile.TemporaryDirectory(prefix="void-remove-") as tmp:
        work = Path(args.workdir or tmp)
        bar = tqdm(total=1, unit="frame", desc=f"{shot_id}: decode", file=sys.stderr)
        current = {"stage": None}

        def progress(stage: str):
            def update(done: int, total: int) -> None:
                if current["stage"] != stage or bar.total != total:
                    current["stage"] = stage
                    bar.reset(total=total)
                    bar.set_description_str(f"{shot_id}: {stage}")
                bar.update(done - bar.n)
            return update

        try:
            decoded = stages.decode_shot(video, quadmask, work, shot_id=shot_id,
                                         frame_range=frame_range, model_size=size,
                                         frame_rules=engine.frame_rules, fps=args.fps,
                                         progress=progress("decode"))
            result = stages.run_pass1(decoded, engine, prompt, params, work / "pass1.npy",
                                      progress=progress(f"{engine.name} pass 1"))
            if args.passes == "2":
                result = stages.run_pass2(decoded, result, engine, prompt, params,
                                          work / "pass2.npy",
                                          progress=progress(f"{engine.name} pass 2"))
            composite = stages.CompositeParams(dilate_px=args.dilate_px,
                                               feather_px=args.feather_px)
            return stages.encode_shot(decoded, result, os.path.dirname(out) or ".",
                                      codec=codec, composite=composite,
                                      review=not args.no_review, progress=progress("encode"),
                                      result_uri=out)
        finally:
            bar.close()


def _shot_name(video: str) -> str:
    p = Path(video.rstrip("/"))
    return p.parent.name if p.stem in ("input_video", "plate") and p.parent.name else p.stem


__all__ = ["register", "run", "remove", "OutputError"]
