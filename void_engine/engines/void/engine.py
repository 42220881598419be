"""The `void` engine: VOID pass 1 (+ optional pass 2) on model-space uint8 clips.

    create_engine("void", weights=DIR)               # DIR: void_pass{1,2}.safetensors (+ base)
    create_engine("void", weights=DIR, base=HUB_ID_OR_FOLDER, memory_mode="fp8")
    create_engine("void", weights=DIR, lora="style.safetensors", lora_scale=0.8)

Clips arrive at model size, padded by void_engine.modelspace to this engine's FrameRules
(4k+1 frames, k odd, at least one window). Any length works: windows of `window_frames` overlap
by 4 latents (memory bounded by one window), and pass 2 covers every latent with warped noise.

Fixes of reference bugs, each a named option (defaults keep the fixture-pinned behaviour where a
fixture pins it):
  uint8          "round" (default) | "truncate" (reference save_videos_grid)
  pass2_mask     "binary" (reference pass 2, affected joins remove) | "trimask" (training levels)
  noise_mode     "aligned" (default: noise on the exact pass-1 frames, every latent, unit variance)
                 | "faithful" (reference: 72 frames, 480x720 crop, one window only)
  seeds          always: latents, noise augmentation and warped noise come from RemovalParams.seed

Other options: lora / lora_scale (LoRA adapters fused into the transformer, void.lora),
compile (torch.compile every transformer block), memory_mode, dtype, model_size,
window_frames, base, raft_weights (all validated up front in void.settings).
"""
from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from void_engine.engines.base import Engine, RemovalParams, check_clip, register_engine
from void_engine.errors import InputError

from . import loading, profiling
from .reference_prep import engine_arrays_to_tensors
from .settings import FULL_WINDOW, SETTINGS_OPTIONS, VoidSettings, frame_rules_for, void_settings

log = logging.getLogger(__name__)


def to_uint8(frames: torch.Tensor, mode: str = "round") -> np.ndarray:
    """The pipeline's "pt" frames (1, T, 3, H, W) in [0,1] -> uint8 (T, H, W, 3); round, or
    truncate like the reference."""
    x = frames[0].permute(0, 2, 3, 1).clamp(0, 1).float().cpu().numpy() * 255.0
    if mode == "round":
        return np.rint(x).astype(np.uint8)
    if mode == "truncate":
        return x.astype(np.uint8)
    raise InputError(f"uint8 mode must be 'round' or 'truncate', got {mode!r}")


def _step_callback(progress, keep: dict | None = None):
    """A callback_on_step_end reporting (done steps, total steps) to `progress` and keeping the
    video condition's latents in `keep` (asked for with callback_on_step_end_tensor_inputs)."""
    def callback(pipe, step, timestep, tensors):
        if keep is not None and step == 0:
            keep["masked_video_latents"] = tensors["masked_video_latents"]
        if progress:
            progress(step + 1, pipe.num_timesteps)
        return {}
    return callback


class _Recent:
    """The last few values by key (least recently used dropped first)."""

    def __init__(self, size: int):
        self.size, self.items = size, OrderedDict()

    def get(self, key):
        if key in self.items:
            self.items.move_to_end(key)
        return self.items.get(key)

    def put(self, key, value) -> None:
        self.items[key] = value
        self.items.move_to_end(key)
        while len(self.items) > self.size:
            self.items.popitem(last=False)


@register_engine("void")
class VoidEngine(Engine):
    name = "void"
    supports_pass2 = True
    frame_rules = frame_rules_for(FULL_WINDOW)
    model_size = None  # the default model size (engine_facts), or the weights' own
    description = ("VOID (Netflix) video object + interaction removal on CogVideoX-Fun 5B: pass 1 "
                   "quadmask inpainting (30 DDIM steps), optional pass 2 warped-noise refinement "
                   "(50 steps, CFG 6). Any shot length (temporal multidiffusion windows).")

    def __init__(self, weights: str | Path | None = None, device: str | None = None,
                 dtype: str | None = None, memory_mode: str = "full",
                 model_size: tuple[int, int] | None = None, window_frames: int | None = None,
                 base: str | None = None, noise_mode: str = "aligned",
                 raft_weights: str | Path | None = None, pass2_mask: str = "binary",
                 uint8: str = "round", lora: str | Path | list | None = None,
                 lora_scale: float | list[float] = 1.0, compile: bool = False):
        s: VoidSettings = void_settings(
            weights=weights, base=base, model_size=model_size, window_frames=window_frames,
            memory_mode=memory_mode, noise_mode=noise_mode, pass2_mask=pass2_mask, uint8=uint8,
            lora=lora, lora_scale=lora_scale, compile=compile)
        self.settings = s
        self.weights, self.base, self.memory_mode = s.weights, s.base, s.memory_mode
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = loading.parse_dtype(dtype, self.device)
        self.noise_mode, self.pass2_mask, self.uint8 = s.noise_mode, s.pass2_mask, s.uint8
        self.raft_weights = raft_weights
        self.random_weight = s.random_weight
        if s.random_weight:
            log.warning("VOID weights at %s are a tiny RANDOM-WEIGHT test model: outputs are "
                        "not real removals", self.weights)
            self.description = "RANDOM-WEIGHT test model. " + self.description
        self.model_size, self.window_frames = s.model_size, s.window_frames
        self.frame_rules = s.frame_rules
        self._pipes: dict[int, Any] = {}
        self._flow_fn = None
        # Work both passes of a shot repeat, kept between calls: T5 states per prompt (pass 2
        # re-encodes pass 1's prompt, and "" every time) and the video condition's VAE latents
        # (pass 2 encodes the same frames with the same seeded noise as pass 1).
        self._prompt_embeds = _Recent(16)
        self._video_latents = _Recent(4)

    @classmethod
    def facts(cls, **options):
        """Pass 2, model size and frame rules from the options and the base model's config
        file (no weights read): see void_engine.engines.void.settings."""
        from void_engine.engines.base import EngineFacts

        s = void_settings(**{k: v for k, v in options.items() if k in SETTINGS_OPTIONS})
        loading.parse_dtype(options.get("dtype"), torch.device("cpu"))  # as the engine would
        return EngineFacts(cls.name, cls.supports_pass2, s.model_size, s.frame_rules)

    # ---- models (loaded on first use, kept resident) -------------------------------------------
    def pipeline(self, pass_no: int):
        if pass_no in self._pipes:
            return self._pipes[pass_no]
        t0 = time.perf_counter()
        pipe = self._load_pipeline(pass_no)
        pipe.set_progress_bar_config(disable=True)
        if self.settings.compile:
            loading.compile_blocks(pipe.transformer)
        self._pipes[pass_no] = pipe
        if profiling.enabled():
            profiling.record(f"load.pass{pass_no}", time.perf_counter() - t0)
        return pipe

    def _load_pipeline(self, pass_no: int):
        from .lora import fuse_loras
        from .pipeline_void import VOIDPipeline

        if not (pass_no == 2 and 1 in self._pipes):
            return VOIDPipeline.from_void_checkpoint(
                self.weights, pass_no, base=self.base, dtype=self.dtype, device=self.device,
                memory_mode=self.memory_mode, loras=self.settings.loras)
        p1 = self._pipes[1]  # share T5, tokenizer and VAE with pass 1
        base_dir = loading.resolve_base_folder(self.base)
        raw_cfg = loading.read_json(base_dir / "transformer" / "config.json")
        with profiling.timed("load.transformer", pass_no=2):
            transformer = loading.load_transformer(
                raw_cfg, loading.find_checkpoint(self.weights, 2), self.dtype)
        pipe = VOIDPipeline(tokenizer=p1.tokenizer, text_encoder=p1.text_encoder, vae=p1.vae,
                            transformer=transformer,
                            scheduler=loading.load_scheduler(base_dir, 2),
                            add_noise_in_inpaint_model=p1.add_noise_in_inpaint_model)
        fuse_loras(pipe, self.settings.loras)
        loading.apply_memory_mode(pipe, self.memory_mode, self.device)
        return pipe

    def flow_fn(self):
        """RAFT-large from a local file when given, else OpenCV DIS on the CPU."""
        if self._flow_fn is None:
            from void_engine import optical_flow as flow

            if self.raft_weights:
                model = flow.load_raft_large(self.raft_weights, self.device)
                self._flow_fn = lambda a, b: flow.raft_flow(a, b, model)
            else:
                self._flow_fn = lambda a, b: flow.dis_flow(a, b, "medium")
        return self._flow_fn

    # ---- passes ---------------------------------------------------------------------------------
    def _check(self, clip: np.ndarray, quadmask: np.ndarray) -> None:
        check_clip(clip, quadmask)
        t, h, w = quadmask.shape
        if (t - 1) % 4 or ((t - 1) // 4) % 2 == 0 or t < self.window_frames:
            raise InputError(f"VOID needs 4k+1 frames with k odd and at least "
                             f"{self.window_frames} (pad with void_engine.modelspace), got {t}")
        if h % 16 or w % 16:
            raise InputError(f"VOID needs a model size divisible by 16, got {h}x{w}")

    def _generators(self, seed: int):
        """(start latents, noise augmentation, warped noise): CPU generators, so a seed gives
        the same numbers on any machine."""
        return (torch.Generator("cpu").manual_seed(seed),
                torch.Generator("cpu").manual_seed(seed + 1),
                torch.Generator("cpu").manual_seed(seed + 2))

    def _inputs(self, clip, quadmask):
        with profiling.timed("host.to_tensors", frames=clip.shape[0]):
            return engine_arrays_to_tensors(clip, quadmask)

    def _embeds(self, pipe, prompt: str) -> torch.Tensor:
        key = (prompt, id(pipe.text_encoder))
        embeds = self._prompt_embeds.get(key)
        if embeds is None:
            embeds, _ = pipe.encode_prompt(prompt, do_classifier_free_guidance=False)
            self._prompt_embeds.put(key, embeds)
        return embeds

    @staticmethod
    def _clip_key(clip: np.ndarray, seed: int) -> tuple[str, int]:
        return hashlib.blake2b(np.ascontiguousarray(clip).data, digest_size=16).hexdigest(), seed

    def pass1(self, clip, quadmask, prompt, params: RemovalParams, progress=None):
        self._check(clip, quadmask)
        pipe = self.pipeline(1)
        video, mask = self._inputs(clip, quadmask)
        latents_gen, aug_gen, _ = self._generators(params.seed)
        kept: dict = {}
        with profiling.timed("pass1", frames=clip.shape[0]):
            out = pipe(video, mask, prompt_embeds=self._embeds(pipe, prompt),
                       num_inference_steps=params.steps or 30, guidance_scale=1.0,
                       mask_mode="trimask", window_frames=self.window_frames,
                       generator=latents_gen, noise_aug_generator=aug_gen,
                       callback_on_step_end=_step_callback(progress, kept),
                       callback_on_step_end_tensor_inputs=["masked_video_latents"])
        self._video_latents.put(self._clip_key(clip, params.seed), kept["masked_video_latents"])
        return to_uint8(out.frames, self.uint8)

    def warped_noise(self, pass1: np.ndarray, seed: int, num_latents: int) -> torch.Tensor:
        from .noise_warp import aligned_warped_noise, faithful_warped_noise

        h, w = pass1.shape[1:3]
        gen = torch.Generator("cpu").manual_seed(seed + 2)
        dev = self.device if self.device.type == "cuda" else "cpu"
        flow_fn = _TimedFlow(self.flow_fn())
        with profiling.timed("pass2.flow_and_noise", frames=pass1.shape[0]):
            if self.noise_mode == "faithful":
                lat_window = (self.window_frames - 1) // 4 + 1
                if num_latents > lat_window:
                    raise InputError(f"noise_mode 'faithful' (the reference geometry) covers one "
                                     f"{self.window_frames}-frame window; this clip has "
                                     f"{pass1.shape[0]} frames: use noise_mode 'aligned'")
                noise = faithful_warped_noise(pass1, num_latents, (h // 8, w // 8), flow_fn,
                                              gen, dev)
            else:
                noise = aligned_warped_noise(pass1, (h // 8, w // 8), flow_fn, gen, dev)
        if profiling.enabled():
            profiling.record("pass2.flow", flow_fn.seconds, pairs=flow_fn.calls)
        return noise

    def pass2(self, clip, quadmask, prompt, pass1, params: RemovalParams, progress=None):
        self._check(clip, quadmask)
        if pass1.shape != clip.shape or pass1.dtype != np.uint8:
            raise InputError(f"pass-1 frames {pass1.dtype} {pass1.shape} do not match the clip "
                             f"{clip.shape}")
        pipe = self.pipeline(2)
        video, mask = self._inputs(clip, quadmask)
        num_latents = (clip.shape[0] - 1) // 4 + 1
        start = self.warped_noise(pass1, params.seed, num_latents)
        _, aug_gen, _ = self._generators(params.seed)
        guidance = params.guidance_scale if params.guidance_scale is not None else 6.0
        with profiling.timed("pass2.sampling", frames=clip.shape[0]):
            out = pipe(video, mask, prompt_embeds=self._embeds(pipe, prompt),
                       negative_prompt_embeds=self._embeds(pipe, ""),
                       num_inference_steps=params.pass2_steps or 50, guidance_scale=guidance,
                       mask_mode="binary" if self.pass2_mask == "binary" else "trimask_pass2",
                       window_frames=self.window_frames, latents=start,
                       noise_aug_generator=aug_gen,
                       masked_video_latents=self._video_latents.get(
                           self._clip_key(clip, params.seed)),
                       callback_on_step_end=_step_callback(progress))
        return to_uint8(out.frames, self.uint8)


class _TimedFlow:
    """Wraps a flow function and adds up the seconds spent in it."""

    def __init__(self, fn):
        self.fn, self.seconds, self.calls = fn, 0.0, 0

    def __call__(self, a, b):
        t0 = time.perf_counter()
        try:
            return self.fn(a, b)
        finally:
            self.seconds += time.perf_counter() - t0
            self.calls += 1
