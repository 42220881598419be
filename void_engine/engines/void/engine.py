"""The `void` engine: VOID pass 1 (+ optional pass 2) on model-space uint8 clips.

    create_engine("void", weights=DIR)               # DIR: void_pass{1,2}.safetensors (+ base)
    create_engine("void", weights=DIR, base=HUB_ID_OR_FOLDER, memory_mode="fp8")

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
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from void_engine.engines.base import Engine, FrameRules, RemovalParams, check_clip, register_engine
from void_engine.errors import InputError, ModelLoadError

from . import loading
from .reference_prep import engine_arrays_to_tensors

log = logging.getLogger(__name__)

FULL_SIZE, FULL_WINDOW = (384, 672), 85
TINY_SIZE, TINY_WINDOW = (64, 112), 21


def to_uint8(video: torch.Tensor, mode: str = "round") -> np.ndarray:
    """(1, 3, T, H, W) in [0,1] -> uint8 (T, H, W, 3); round, or truncate like the reference."""
    x = video[0].permute(1, 2, 3, 0).clamp(0, 1).float().cpu().numpy() * 255.0
    if mode == "round":
        return np.rint(x).astype(np.uint8)
    if mode == "truncate":
        return x.astype(np.uint8)
    raise InputError(f"uint8 mode must be 'round' or 'truncate', got {mode!r}")


def _is_tiny(base_config: dict[str, Any]) -> bool:
    width = base_config.get("num_attention_heads", 48) * base_config.get("attention_head_dim", 64)
    return width < 512


@register_engine("void")
class VoidEngine(Engine):
    name = "void"
    supports_pass2 = True
    frame_rules = FrameRules(temporal_multiple=4, odd_k=True, min_frames=FULL_WINDOW)
    model_size = FULL_SIZE
    description = ("VOID (Netflix) video object + interaction removal on CogVideoX-Fun 5B: pass 1 "
                   "quadmask inpainting (30 DDIM steps), optional pass 2 warped-noise refinement "
                   "(50 steps, CFG 6). Any shot length (temporal multidiffusion windows).")

    def __init__(self, weights: str | Path | None = None, device: str | None = None,
                 dtype: str | None = None, memory_mode: str = "full",
                 model_size: tuple[int, int] | None = None, window_frames: int | None = None,
                 base: str | None = None, noise_mode: str = "aligned",
                 raft_weights: str | Path | None = None, pass2_mask: str = "binary",
                 uint8: str = "round"):
        if weights is None:
            raise InputError("engine 'void' needs --weights DIR (void_pass1.safetensors, "
                             "void_pass2.safetensors and the base model)")
        self.weights = Path(weights)
        if not self.weights.is_dir():
            raise ModelLoadError(f"VOID weights folder {self.weights} does not exist")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = loading.parse_dtype(dtype, self.device)
        self.memory_mode = memory_mode
        self.base = base if base is not None else (
            self.weights if (self.weights / "transformer" / "config.json").exists()
            else loading.DEFAULT_BASE_ID)
        if noise_mode not in ("aligned", "faithful"):
            raise InputError(f"noise_mode must be 'aligned' or 'faithful', got {noise_mode!r}")
        if pass2_mask not in ("binary", "trimask"):
            raise InputError(f"pass2_mask must be 'binary' or 'trimask', got {pass2_mask!r}")
        self.noise_mode, self.pass2_mask, self.uint8 = noise_mode, pass2_mask, uint8
        to_uint8(torch.zeros(1, 3, 1, 1, 1), uint8)  # validate the option early
        self.raft_weights = raft_weights

        # Defaults from the weights folder: a tiny test model gets a tiny size and window.
        self.random_weight = False
        cfg_path = Path(self.base) / "transformer" / "config.json"
        if cfg_path.exists() and _is_tiny(loading.read_json(cfg_path)):
            self.random_weight = True
            log.warning("VOID weights at %s are a tiny RANDOM-WEIGHT test model: outputs are "
                        "not real removals", self.weights)
        size = model_size or (TINY_SIZE if self.random_weight else FULL_SIZE)
        self.model_size = (int(size[0]), int(size[1]))
        if self.model_size[0] % 16 or self.model_size[1] % 16:
            raise InputError(f"VOID model size {self.model_size} must be divisible by 16")
        self.window_frames = int(window_frames or (TINY_WINDOW if self.random_weight
                                                   else FULL_WINDOW))
        if (self.window_frames - 1) % 4 or ((self.window_frames - 1) // 4) % 2 == 0:
            raise InputError(f"window_frames must be 4k+1 with k odd (21, 29, ..., 85), got "
                             f"{self.window_frames}")
        self.frame_rules = FrameRules(temporal_multiple=4, odd_k=True,
                                      min_frames=self.window_frames)
        if self.random_weight:
            self.description = "RANDOM-WEIGHT test model. " + self.description
        self._pipes: dict[int, Any] = {}
        self._flow_fn = None

    # ---- models (loaded on first use, kept resident) -------------------------------------------
    def pipeline(self, pass_no: int):
        if pass_no in self._pipes:
            return self._pipes[pass_no]
        from .pipeline_void import VOIDPipeline

        if pass_no == 2 and 1 in self._pipes:  # share T5, tokenizer and VAE with pass 1
            p1 = self._pipes[1]
            base_dir = loading.resolve_base_folder(self.base)
            raw_cfg = loading.read_json(base_dir / "transformer" / "config.json")
            transformer = loading.load_transformer(
                raw_cfg, loading.find_checkpoint(self.weights, 2), self.dtype)
            pipe = VOIDPipeline(tokenizer=p1.tokenizer, text_encoder=p1.text_encoder,
                                vae=p1.vae, transformer=transformer,
                                scheduler=loading.load_scheduler(base_dir, 2))
            pipe.add_noise_in_inpaint_model = p1.add_noise_in_inpaint_model
            if self.memory_mode == "fp8":
                transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn,
                                                     compute_dtype=torch.bfloat16)
            if self.memory_mode == "model_cpu_offload" and self.device.type != "cpu":
                pipe.enable_model_cpu_offload(device=self.device)
            else:
                transformer.to(self.device)
        else:
            pipe = VOIDPipeline.from_pretrained(self.weights, pass_no, base=self.base,
                                                dtype=self.dtype, device=self.device,
                                                memory_mode=self.memory_mode)
        pipe.set_progress_bar_config(disable=True)
        self._pipes[pass_no] = pipe
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
        return (torch.Generator("cpu").manual_seed(seed),
                torch.Generator("cpu").manual_seed(seed + 1),
                torch.Generator("cpu").manual_seed(seed + 2))

    def pass1(self, clip, quadmask, prompt, params: RemovalParams, progress=None):
        self._check(clip, quadmask)
        video, mask = engine_arrays_to_tensors(clip, quadmask)
        latents_gen, aug_gen, _ = self._generators(params.seed)
        out = self.pipeline(1)(
            video, mask, prompt, num_inference_steps=params.steps or 30, guidance_scale=1.0,
            mask_mode="trimask", window_frames=self.window_frames, generator=latents_gen,
            noise_aug_generator=aug_gen, progress=progress)
        return to_uint8(out["video"], self.uint8)

    def warped_noise(self, pass1: np.ndarray, seed: int, num_latents: int) -> torch.Tensor:
        from .noise_warp import aligned_warped_noise, faithful_warped_noise

        h, w = pass1.shape[1:3]
        gen = torch.Generator("cpu").manual_seed(seed + 2)
        dev = self.device if self.device.type == "cuda" else "cpu"
        if self.noise_mode == "faithful":
            lat_window = (self.window_frames - 1) // 4 + 1
            if num_latents > lat_window:
                raise InputError(f"noise_mode 'faithful' (the reference geometry) covers one "
                                 f"{self.window_frames}-frame window; this clip has "
                                 f"{pass1.shape[0]} frames: use noise_mode 'aligned'")
            return faithful_warped_noise(pass1, num_latents, (h // 8, w // 8), self.flow_fn(),
                                         gen, dev)
        return aligned_warped_noise(pass1, (h // 8, w // 8), self.flow_fn(), gen, dev)

    def pass2(self, clip, quadmask, prompt, pass1, params: RemovalParams, progress=None):
        self._check(clip, quadmask)
        if pass1.shape != clip.shape or pass1.dtype != np.uint8:
            raise InputError(f"pass-1 frames {pass1.dtype} {pass1.shape} do not match the clip "
                             f"{clip.shape}")
        video, mask = engine_arrays_to_tensors(clip, quadmask)
        num_latents = (clip.shape[0] - 1) // 4 + 1
        start = self.warped_noise(pass1, params.seed, num_latents)
        _, aug_gen, _ = self._generators(params.seed)
        guidance = params.guidance_scale if params.guidance_scale is not None else 6.0
        out = self.pipeline(2)(
            video, mask, prompt, negative_prompt="", num_inference_steps=params.pass2_steps or 50,
            guidance_scale=guidance,
            mask_mode="binary" if self.pass2_mask == "binary" else "trimask_pass2",
            window_frames=self.window_frames, latents=start, noise_aug_generator=aug_gen,
            progress=progress)
        return to_uint8(out["video"], self.uint8)
