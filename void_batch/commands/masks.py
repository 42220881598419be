"""`void-batch masks`: clicks/boxes on one shot -> quadmask, no GUI.

    SAM2 (clicks, boxes; forward and backward) -> black mask (or give --black-mask)
    VLM (--vlm-url, any OpenAI-compatible server; or --vlm-backend gemini) -> the objects the
    removal affects, as grid cells; with a grounding model (--grounding-model) the objects it
    names are found by a detector and segmented with SAM2. Without a VLM, or when it fails,
    a deterministic contact+motion rule marks the affected region (the reason is printed).
    -> quadmask, written losslessly (.mp4 = x264 qp 0 4:4:4, .mkv = FFV1), and the VLM's
    description of the scene without the object as prompt.json beside it.

Clicks: JSON list of {"frame", "x", "y", "label" (1 object / 0 not), "obj"} in plate pixels;
boxes: JSON list of {"frame", "box": [x0, y0, x1, y1], "obj"}; either may be @file.json.
The VLM API key is read from $VOID_VLM_API_KEY (Gemini: $GEMINI_API_KEY), never from the
command line.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from void_engine.errors import InputError

ENV = os.environ.get


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "masks", help="build a quadmask from clicks/boxes and an instruction",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--video", required=True, help="plate: video file or PNG/EXR sequence")
    p.add_argument("--clicks", help="JSON list of clicks (or @file)")
    p.add_argument("--boxes", help="JSON list of boxes (or @file)")
    p.add_argument("--black-mask", help="use this mask of the object to remove instead of "
                   "SAM2 (0 = object; a quadmask works too: its removal part is used)")
    p.add_argument("--grey-mask", help="use this grey mask (127 = affected) instead of "
                   "reasoning about it")
    p.add_argument("--instruction", default="", help='what to remove, e.g. "remove the duck"')
    p.add_argument("--out", required=True, help="quadmask file (.mp4 or .mkv)")
    p.add_argument("--black-out", help="where to keep the black mask (default: "
                   "<out>_black.<ext>)")
    p.add_argument("--report", help="write what happened (JSON) here")
    p.add_argument("--frames", help="inclusive plate frame range FIRST-LAST")
    p.add_argument("--shot-id", help="name used in messages")
    g = p.add_argument_group("VLM")
    g.add_argument("--vlm-url", help="OpenAI-compatible base URL, e.g. http://host:8000/v1")
    g.add_argument("--vlm-model", help="model name the server knows")
    g.add_argument("--vlm-backend", choices=("openai", "gemini"), default="openai")
    g.add_argument("--vlm-timeout", type=float, default=120.0, help="seconds per request")
    g.add_argument("--vlm-retries", type=int, default=3, help="retries on 429/5xx/timeout")
    g.add_argument("--vlm-response-format", choices=("json_schema", "json_object", "none"),
                   default="json_schema")
    g.add_argument("--vlm-cache", default=ENV(
        "VOID_VLM_CACHE", str(Path("~/.cache/void-batch/vlm").expanduser())),
        help="answer cache folder ('' disables)")
    s = p.add_argument_group("SAM2 (segmentation of clicks, boxes and named objects)")
    s.add_argument("--sam2-checkpoint", default=ENV("VOID_SAM2_CHECKPOINT"),
                   help="SAM 2.1 checkpoint .pt (default $VOID_SAM2_CHECKPOINT)")
    s.add_argument("--sam2-config", default=ENV(
        "VOID_SAM2_CONFIG", "configs/sam2.1/sam2.1_hiera_l.yaml"),
        help="config name inside the sam2 package matching the checkpoint")
    s.add_argument("--sam2-image-size", type=int, help="override the model's input size")
    s.add_argument("--sam2-device", default=ENV("VOID_SAM2_DEVICE", "auto"))
    s.add_argument("--sam2-dilate-px", type=int, default=0, help="grow the object mask")
    s.add_argument("--sam2-random-weights", action="store_true",
                   help="RANDOM weights instead of a checkpoint: meaningless masks, only to "
                   "try the command without a checkpoint")
    d = p.add_argument_group("Grounding (find the objects the VLM names; needs SAM2)")
    d.add_argument("--grounding-model", default=ENV("VOID_GROUNDING_MODEL"),
                   help="Grounding DINO or OWLv2: a folder or a model in the Hugging Face "
                   "cache (default $VOID_GROUNDING_MODEL)")
    d.add_argument("--grounding-threshold", type=float,
                   default=float(ENV("VOID_GROUNDING_THRESHOLD", "0.3")),
                   help="detection score a name needs (0-1)")
    d.add_argument("--grounding-device", default=ENV("VOID_GROUNDING_DEVICE", "auto"))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    result, black = masks(args)  # errors: one line from the CLI's boundary (void_batch/cli.py)
    print(f"wrote {result.quadmask_uri} (black mask {black}); affected region: "
          f"{result.path} ({result.reason})")
    if result.degraded:
        print("note: degraded result (the VLM failed): run again to ask it again")
    if result.prompt_uri:
        print(f"wrote {result.prompt_uri}: {result.scene_description}")
    return 0


def _json_arg(text: str | None, name: str) -> list:
    if text is None:
        return []
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text()
        except OSError as exc:
            raise InputError(f"{name}: cannot read {text[1:]} ({exc.strerror})") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{name} is not valid JSON ({exc.msg})") from None
    if isinstance(value, dict):  # a whole {"clicks": [...], "boxes": [...]} object
        return value.get(name.lstrip("-"), [])
    if not isinstance(value, list):
        raise InputError(f"{name} must be a JSON list")
    return value


def _vlm_config(args):
    from void_engine.masks.vlm.client import VlmConfig

    if not (args.vlm_url or args.vlm_backend == "gemini" and args.vlm_model):
        return None
    return VlmConfig(backend=args.vlm_backend, base_url=args.vlm_url,
                     timeout_s=args.vlm_timeout, max_retries=args.vlm_retries,
                     response_format=args.vlm_response_format,
                     cache_dir=args.vlm_cache or None,
                     **({"model": args.vlm_model} if args.vlm_model else {}),
                     **({"api_key_env": "GEMINI_API_KEY"}
                        if args.vlm_backend == "gemini" else {}))


def _models(args):
    from void_engine.masks.grounding import GroundingConfig
    from void_engine.masks.models import MaskModels
    from void_engine.masks.segment import Sam2Config

    sam2 = Sam2Config(checkpoint=args.sam2_checkpoint, model_config=args.sam2_config,
                      image_size=args.sam2_image_size, device=args.sam2_device,
                      dilate_px=args.sam2_dilate_px,
                      allow_random_weights=args.sam2_random_weights)
    grounding = (GroundingConfig(model=args.grounding_model, device=args.grounding_device,
                                 threshold=args.grounding_threshold)
                 if args.grounding_model else None)
    return MaskModels(sam2=sam2, grounding=grounding)


def masks(args: argparse.Namespace):
    from tqdm import tqdm

    from void_batch.commands.remove import parse_frames

    video = Path(args.video)
    # the samples' layout names every plate input_video.mp4: its folder is the shot
    shot_id = args.shot_id or (video.parent.name if video.stem == "input_video" and
                               video.parent.name else video.stem)
    ext = os.path.splitext(args.out)[1].lower()
    if ext not in (".mp4", ".mkv"):
        raise InputError(f"--out {args.out}: use .mp4 (lossless H.264) or .mkv (FFV1)")
    frame_range = parse_frames(args.frames)
    models = _models(args)
    black = args.black_mask
    if black is None:
        prompts = {"clicks": _json_arg(args.clicks, "--clicks"),
                   "boxes": _json_arg(args.boxes, "--boxes")}
        if not prompts["clicks"] and not prompts["boxes"]:
            raise InputError("give --clicks and/or --boxes (or --black-mask)")
        black = args.black_out or str(Path(args.out).with_name(Path(args.out).stem
                                                                + "_black" + ext))
        bars: list = []  # the bar appears once SAM2 runs (not before a config error)

        def progress(done: int, total: int) -> None:
            if not bars:
                bars.append(tqdm(total=total, unit="frame", desc=f"{shot_id}: SAM2",
                                 file=sys.stderr))
            bars[0].n = done
            bars[0].refresh()

        try:
            models.segment_shot(args.video, prompts, black, shot_id=shot_id,
                                frame_range=frame_range, progress=progress)
        finally:
            for bar in bars:
                bar.close()
    result = models.build_quadmask(args.video, black, args.out, shot_id=shot_id,
                                   instruction=args.instruction, grey_mask_uri=args.grey_mask,
                                   vlm=_vlm_config(args), frame_range=frame_range)
    if args.report:
        from void_engine.io.atomic import write_json

        write_json(args.report, {
            "shot_id": shot_id, "quadmask": result.quadmask_uri, "black_mask": black,
            **result.summary(), "scene_description": result.scene_description,
            "details": result.details}, what="--report", default=str)
    return result, black
