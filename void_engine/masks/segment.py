"""Primary-object segmentation: clicks/boxes on any frames -> SAM2 video predictor -> a
lossless black mask at plate size (0 = object, 255 = background), one frame per plate frame.

Differences from the reference's segmentation step (docs/masks.md), on purpose:
- negative clicks, boxes and several object ids (merged into one mask at the end);
- propagation runs forward from the earliest prompted frame AND backward from it, so frames
  before the first click get a mask too (the reference only propagates forward, which makes
  the mask start late and shifts it against the plate);
- SAM2 sees frames downscaled to `work_long_side`; logits are upscaled to plate size;
- the output always has the plate's frame count (frames outside frame_range stay 255).
"""
from __future__ import annotations

import logging
import os
import tempfile
import threading
import warnings
from dataclasses import dataclass

import cv2
import numpy as np

from void_engine.errors import InputError, ModelLoadError
from void_engine.masks import maskio
from void_engine.masks.prompts import ObjectPrompts, parse_prompts
from void_engine.stages import resolve_range

log = logging.getLogger(__name__)

# part of the stage cache key (tasks read it): bump when the output for the same input changes
__version__ = "sam2-seg-1"


@dataclass(frozen=True)
class Sam2Config:
    """Which SAM2 to run: a SAM 2.1 checkpoint file and the matching config name inside the
    `sam2` package. checkpoint=None is refused unless allow_random_weights=True, which builds
    RANDOM WEIGHTS: only for tests of the plumbing (the masks are meaningless)."""

    checkpoint: str | None = None
    model_config: str = "configs/sam2.1/sam2.1_hiera_l.yaml"
    image_size: int | None = None  # None: the config's (1024); tests use 256
    device: str = "auto"  # "auto" -> cuda when available, else cpu
    work_long_side: int = 1024  # frames handed to SAM2 are at most this long
    dilate_px: int = 0  # grow the final mask (plate pixels)
    allow_random_weights: bool = False

    @property
    def random_weights(self) -> bool:
        return self.checkpoint is None

    @classmethod
    def from_env(cls) -> Sam2Config:
        """VOID_SAM2_CHECKPOINT, VOID_SAM2_CONFIG, VOID_SAM2_DEVICE (what workers use)."""
        env = os.environ
        return cls(checkpoint=env.get("VOID_SAM2_CHECKPOINT") or None,
                   model_config=env.get("VOID_SAM2_CONFIG", cls.model_config),
                   device=env.get("VOID_SAM2_DEVICE", cls.device))


RANDOM_WEIGHTS_SEED = 0
_BUILD_LOCK = threading.Lock()  # hydra's global state is not thread-safe


def load_predictor(config: Sam2Config):
    """Build the SAM2 video predictor for `config`. Callers keep it (masks.models.MaskModels
    loads it once per process or actor and serves every shot with it)."""
    import torch

    device = config.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if config.checkpoint is None and not config.allow_random_weights:
        raise ModelLoadError("no SAM2 checkpoint: set VOID_SAM2_CHECKPOINT or pass "
                             "--sam2-checkpoint (a SAM 2.1 .pt file)")
    if config.checkpoint is not None and not os.path.isfile(config.checkpoint):
        raise ModelLoadError(f"SAM2 checkpoint not found: {config.checkpoint}")
    from sam2.build_sam import build_sam2_video_predictor

    overrides = [f"++model.image_size={config.image_size}"] if config.image_size else []
    if config.random_weights:
        log.warning("SAM2 with RANDOM WEIGHTS (no checkpoint): masks are meaningless")
    try:
        # random weights are seeded so test runs are reproducible (without touching the
        # caller's RNG state)
        with _BUILD_LOCK, torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_WEIGHTS_SEED)
            predictor = build_sam2_video_predictor(
                config.model_config, ckpt_path=config.checkpoint, device=device,
                hydra_overrides_extra=overrides)
    except (RuntimeError, KeyError) as exc:
        raise ModelLoadError(f"SAM2 checkpoint {config.checkpoint} does not match "
                             f"{config.model_config}: {exc}") from exc
    except Exception as exc:  # hydra: unknown config name
        if type(exc).__name__ in ("MissingConfigException", "ConfigCompositionException"):
            raise ModelLoadError(f"unknown SAM2 config {config.model_config!r}") from exc
        raise
    if device == "cpu":
        _fp32_memory_on_cpu(predictor)
    return predictor


def _fp32_memory_on_cpu(predictor) -> None:
    """SAM2 stores its memory bank in bfloat16 and relies on CUDA autocast to mix it with
    fp32 weights; without autocast the memory attention fails with a dtype mismatch. Cast
    its inputs back to fp32 instead of running the whole model in slow CPU bf16."""
    import torch

    def to_fp32(_module, args, kwargs):
        def cast(v):
            return (v.float() if isinstance(v, torch.Tensor) and v.is_floating_point()
                        else v)
        return tuple(cast(a) for a in args), {k: cast(v) for k, v in kwargs.items()}

    predictor.memory_attention.register_forward_pre_hook(to_fp32, with_kwargs=True)


@dataclass
class Sam2Run:
    logits: dict[int, np.ndarray]  # frame -> max logit over objects, (h, w) float32, work size
    tracked: list[int]  # frames SAM2 produced output for, in order of processing


def run_sam2(predictor, frames_dir: str, prompts: dict[tuple[int, int], ObjectPrompts], *,
             scale: tuple[float, float], progress=None, sink=None) -> Sam2Run:
    """Prompt `predictor` on a folder of JPEG frames (00000.jpg ...) and propagate both ways.

    scale = (sx, sy) from plate pixels to the JPEG frames' pixels. sink(frame, obj_ids,
    logits (K, h, w)) sees every object's logits (the start frame twice: once per direction)."""
    import torch

    sx, sy = scale
    logits: dict[int, np.ndarray] = {}
    tracked: list[int] = []
    # on CUDA run under bf16 autocast as upstream does (its memory bank is stored in bf16);
    # on CPU stay in fp32 (bf16 matmuls are ~20x slower there), see _fp32_memory_on_cpu
    cuda = predictor.device.type == "cuda"
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda), \
            warnings.catch_warnings():
        # pip builds of sam2 lack its CUDA extension `_C`, used only to fill small holes in
        # the masks; it warns on every frame otherwise
        warnings.filterwarnings("ignore", message="cannot import name '_C'")
        state = predictor.init_state(video_path=frames_dir, offload_video_to_cpu=True)
        total = state["num_frames"]
        for (frame, obj), p in sorted(prompts.items()):
            points = [(x * sx, y * sy) for x, y in p.points] or None
            box = None if p.box is None else [p.box[0] * sx, p.box[1] * sy, p.box[2] * sx,
                                              p.box[3] * sy]
            predictor.add_new_points_or_box(
                state, frame_idx=frame, obj_id=obj, points=points,
                labels=p.labels if points else None, box=box)
        start = min(f for f, _ in prompts)
        # forward from the earliest prompt, then backward from it (frames before the first
        # prompt; the reference pipeline never produced these)
        for reverse in (False, True):
            for idx, obj_ids, masks in predictor.propagate_in_video(
                    state, start_frame_idx=start, reverse=reverse):
                per_object = masks.float()[:, 0].cpu().numpy()
                if sink is not None:
                    sink(idx, list(obj_ids), per_object)
                m = per_object.max(axis=0)
                logits[idx] = m if idx not in logits else np.maximum(logits[idx], m)
                tracked.append(idx)
                if progress:
                    progress(len(set(tracked)), total)
        predictor.reset_state(state)
    return Sam2Run(logits=logits, tracked=tracked)


def work_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    """(h, w) SAM2 frames are written at: plate size capped at long_side."""
    s = min(1.0, long_side / max(width, height))
    return max(1, round(height * s)), max(1, round(width * s))


def segment_shot(plate_uri: str, prompts_json: dict, out_uri: str, *, shot_id: str,
                 frame_range: tuple[int, int] | None = None, config: Sam2Config | None = None,
                 progress=None) -> str:
    """Segment the primary object(s) of a shot; write the black mask to out_uri; return it.

    prompts_json frames are plate frame indices; frame_range=(first, last) is inclusive and
    limits segmentation (frames outside it are background). The predictor is loaded once per
    process and config (masks.models.shared_models); resident workers hold a MaskModels."""
    from void_engine.masks.models import shared_models

    return shared_models(sam2=config or Sam2Config.from_env()).segment_shot(
        plate_uri, prompts_json, out_uri, shot_id=shot_id, frame_range=frame_range,
        progress=progress)


def segment_with(get_predictor, config: Sam2Config, plate_uri: str, prompts_json: dict,
                 out_uri: str, *, shot_id: str, frame_range: tuple[int, int] | None = None,
                 progress=None) -> str:
    """segment_shot with the predictor from get_predictor() (called only once the inputs
    are known to be good)."""
    try:
        with maskio.opened(plate_uri, "plate") as info:
            first, count = resolve_range(frame_range, info.frames)
            last = first + count - 1
            prompts = parse_prompts(prompts_json, width=info.width, height=info.height,
                                    num_frames=info.frames, shot_id=shot_id)
            outside = sorted({f for f, _ in prompts if not first <= f <= last})
            if outside:
                raise InputError(f"prompts on frame(s) {outside} lie outside the frame range "
                                 f"{first}..{last}")
            local = {(f - first, o): p for (f, o), p in prompts.items()}
            h, w = work_size(info.width, info.height, config.work_long_side)
            predictor = get_predictor()
            with tempfile.TemporaryDirectory(prefix="void-sam2-") as tmp:
                for i, frame in enumerate(maskio.vio.read_frames(
                        info, first=first, count=last - first + 1, size=(h, w), uint8=True)):
                    cv2.imwrite(os.path.join(tmp, f"{i:05d}.jpg"),
                                cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                                [cv2.IMWRITE_JPEG_QUALITY, 95])
                if i + 1 != last - first + 1:
                    raise InputError(f"plate decoded {i + 1} frames, expected {last - first + 1}")
                run = run_sam2(predictor, tmp, local, scale=(w / info.width, h / info.height),
                               progress=progress)
            frames = _plate_masks(run, info, first, last, config.dilate_px)
            return maskio.write_mask(out_uri, frames, fps=info.fps,
                                     size=(info.height, info.width))
    except InputError as exc:
        raise exc.for_shot(shot_id) from None


def _plate_masks(run: Sam2Run, info, first: int, last: int, dilate_px: int):
    kernel = (cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilate_px + 1,) * 2)
              if dilate_px > 0 else None)
    empty = np.full((info.height, info.width), 255, np.uint8)
    for t in range(info.frames):
        lg = run.logits.get(t - first) if first <= t <= last else None
        if lg is None:
            yield empty
            continue
        # upscale logits (not the binary mask) so edges follow the object, then threshold
        up = cv2.resize(lg, (info.width, info.height), interpolation=cv2.INTER_LINEAR) > 0
        if kernel is not None:
            up = cv2.dilate(up.astype(np.uint8), kernel).astype(bool)
        yield np.where(up, 0, 255).astype(np.uint8)

