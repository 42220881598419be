"""VOIDPipeline: VOID pass 1 / pass 2 as a diffusers pipeline.

One forward of the 48-channel CogVideoX transformer sees
    [noisy latents 16 | VAE(1 - mask) 16 | VAE(video) 16]
and predicts v. Pass 1: DDIM, 30 steps, no CFG, 3-level mask. Pass 2: CogVideoX DDIM from the
warped-noise latents, 50 steps, CFG 6 with an empty negative prompt, binary mask.

Clips longer than one window use the reference's temporal multidiffusion: windows of W latents
overlapping by 4, each denoised on its own for one step, blended with 0.2..0.8 ramps. Memory on
the accelerator is bounded by one window (the VAE encodes 8 frames and decodes 2 latents at a
time), not by the shot.

Loading: `VOIDPipeline.from_void_checkpoint(weights_dir, pass_no)` builds it from a
CogVideoX-Fun base folder + a VOID checkpoint (void_engine.engines.void.loading);
`from_pretrained` keeps its diffusers meaning (a folder written by `save_pretrained`).
LoRA adapters load through diffusers' PEFT integration (CogVideoXLoraLoaderMixin).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import DiffusionPipeline
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.loaders import CogVideoXLoraLoaderMixin
from diffusers.utils import BaseOutput
from diffusers.video_processor import VideoProcessor

from . import profiling
from .conditioning import (
    MASK_MODES,
    NOISE_AUG_STRENGTH,
    OVERLAP_LATENTS,
    augment_video,
    mask_condition,
    window_latents_for,
    window_plan,
)
from .pipeline_steps import Denoising, VOIDPipelineSteps, per_sample_embeds

__all__ = ["VOIDPipeline", "VOIDPipelineOutput", "augment_video", "mask_condition",
           "window_latents_for", "window_plan"]
OUTPUT_TYPES = ("pt", "np", "pil", "latent")


@dataclass
class VOIDPipelineOutput(BaseOutput):
    """frames: the decoded video as `output_type` asks ("pt": (b, T, 3, H, W) float in [0, 1],
    "np": (b, T, H, W, 3), "pil": lists of images; "latent": the latents);
    latents: the final latents (b, T_lat, 16, H/8, W/8)."""

    frames: torch.Tensor | np.ndarray | list
    latents: torch.Tensor


class VOIDPipeline(DiffusionPipeline, CogVideoXLoraLoaderMixin, VOIDPipelineSteps):
    """Quadmask-conditioned video inpainting with CogVideoX (VOID).

    Components: a T5 tokenizer and encoder, the CogVideoX VAE (with the reference decode
    schedule), the 48-channel CogVideoX transformer and a DDIM scheduler.
    `add_noise_in_inpaint_model` (the base model's VideoX-Fun config key) turns on the noise
    augmentation of the conditioning video.
    """

    model_cpu_offload_seq = "text_encoder->transformer->vae"
    _optional_components: list[str] = []
    # Tensors a callback_on_step_end may ask for. Per-window ones are tuples, one entry per
    # temporal window, in window order: the window's input latents (before the step), the
    # transformer's raw output (the CFG batch when guidance > 1) and the scheduler's output
    # (before blending).
    _callback_tensor_inputs = ["latents", "prompt_embeds", "inpaint_latents", "mask_condition",
                               "mask_latents", "masked_video_latents", "conditioning_pixels",
                               "window_latents", "window_model_outputs", "window_steps"]

    def __init__(self, tokenizer, text_encoder, vae, transformer, scheduler,
                 add_noise_in_inpaint_model: bool = True):
        super().__init__()
        self.register_modules(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae,
                              transformer=transformer, scheduler=scheduler)
        self.register_to_config(add_noise_in_inpaint_model=bool(add_noise_in_inpaint_model))
        self.vae_scale_factor_spatial = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.vae_scale_factor_temporal = self.vae.config.temporal_compression_ratio
        self.video_processor = VideoProcessor(vae_scale_factor=self.vae_scale_factor_spatial)

    @property
    def add_noise_in_inpaint_model(self) -> bool:
        return bool(self.config.add_noise_in_inpaint_model)

    @property
    def guidance_scale(self) -> float:
        return self._guidance_scale

    @property
    def do_classifier_free_guidance(self) -> bool:
        return self._guidance_scale > 1.0

    @property
    def num_timesteps(self) -> int:
        return self._num_timesteps

    @property
    def attention_kwargs(self) -> dict[str, Any] | None:
        return self._attention_kwargs

    @property
    def current_timestep(self):
        return self._current_timestep

    @property
    def interrupt(self) -> bool:
        return self._interrupt

    # ---- loading ------------------------------------------------------------------------------
    @classmethod
    def from_void_checkpoint(cls, weights: str | Path, pass_no: int = 1, *,
                             base: str | Path | None = None,
                             checkpoint: str | Path | None = None, dtype=None, device=None,
                             memory_mode: str = "full", loras=(),
                             notice: bool = True) -> VOIDPipeline:
        """The pipeline of VOID pass `pass_no` from a CogVideoX-Fun base + a VOID checkpoint.

        weights      folder holding void_pass1.safetensors / void_pass2.safetensors (and, like
                     the tiny test model, the base model in diffusers layout)
        base         the base model: a folder, a Hugging Face cache entry or a hub id
                     (default: `weights` itself)
        checkpoint   another VOID transformer checkpoint instead of void_pass{pass_no}
        dtype        "fp32" | "bf16" (default bf16 on CUDA, fp32 on the CPU)
        memory_mode  "full" | "model_cpu_offload" | "fp8" (FP8 weight storage, bf16 compute)
        loras        LoRA adapters fused into the transformer: (path, scale) pairs
        notice       print the base model's licence notice
        """
        from . import loading
        from .lora import fuse_loras, parse_loras

        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        dtype = loading.parse_dtype(dtype, device)
        weights = Path(weights)
        base_dir = loading.resolve_base_folder(base if base is not None else weights)
        ckpt = Path(checkpoint) if checkpoint else loading.find_checkpoint(weights, pass_no)
        raw_cfg = loading.read_json(base_dir / "transformer" / "config.json")
        with profiling.timed("load.transformer", pass_no=pass_no):
            transformer = loading.load_transformer(raw_cfg, ckpt, dtype)
        with profiling.timed("load.text_encoder"):
            tokenizer, text_encoder = loading.load_text_stack(base_dir, dtype)
        with profiling.timed("load.vae"):
            vae = loading.load_vae(base_dir, dtype)
        pipe = cls(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae,
                   transformer=transformer, scheduler=loading.load_scheduler(base_dir, pass_no),
                   add_noise_in_inpaint_model=raw_cfg.get("add_noise_in_inpaint_model", True))
        if loras:  # validated like the engine's lora / lora_scale options
            fuse_loras(pipe, parse_loras([p for p, _ in loras], [s for _, s in loras]))
        loading.apply_memory_mode(pipe, memory_mode, device)
        if notice:
            loading.print_licence_notice()
        return pipe

    # ---- steps --------------------------------------------------------------------------------
    def check_inputs(self, video, mask, prompt, negative_prompt, prompt_embeds,
                     negative_prompt_embeds, latents, mask_mode, window_frames, overlap_latents,
                     num_inference_steps, noise_aug_strength, output_type,
                     callback_on_step_end_tensor_inputs,
                     masked_video_latents=None) -> list[tuple[int, int]]:
        """Raise ValueError on anything the pipeline cannot run; return the latent windows."""
        self._check_clip(video, mask)
        self._check_prompt(video.shape[0], prompt, negative_prompt, prompt_embeds,
                           negative_prompt_embeds)
        if mask_mode not in MASK_MODES:
            raise ValueError(f"unknown mask_mode {mask_mode!r} (choose {', '.join(MASK_MODES)})")
        if num_inference_steps < 1 or noise_aug_strength < 0:
            raise ValueError("num_inference_steps must be >= 1 and noise_aug_strength >= 0")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {', '.join(OUTPUT_TYPES)}")
        unknown = [k for k in callback_on_step_end_tensor_inputs or ()
                   if k not in self._callback_tensor_inputs]
        if unknown:
            raise ValueError(f"callback_on_step_end_tensor_inputs {unknown} are not in "
                             f"{self._callback_tensor_inputs}")
        b, _, num_frames, height, width = video.shape
        num_latents = (num_frames - 1) // self.vae_scale_factor_temporal + 1
        p_t = self.transformer.config.patch_size_t or 1
        windows = window_plan(num_latents, window_latents_for(window_frames, p_t),
                              overlap_latents)
        if any((e - s) % p_t for s, e in windows):
            raise ValueError(f"{num_frames} frames give {num_latents} latents: every window needs "
                             f"an even latent count (pad to 4k+1 frames with k odd)")
        shape = self.latents_shape(b, num_latents, height, width)
        for name, given in (("start latents", latents),
                            ("masked_video_latents", masked_video_latents)):
            if given is not None and tuple(given.shape) != shape:
                raise ValueError(f"{name} {tuple(given.shape)} do not match {shape}")
        return windows

    def _check_clip(self, video, mask) -> None:
        if not isinstance(video, torch.Tensor) or video.ndim != 5 or video.shape[1] != 3:
            raise ValueError(f"video must be a (b, 3, T, H, W) tensor, got "
                             f"{getattr(video, 'shape', type(video).__name__)}")
        b, _, num_frames, height, width = video.shape
        want = (b, 1, num_frames, height, width)
        if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != want:
            raise ValueError(f"mask {tuple(getattr(mask, 'shape', ()))} does not match video "
                             f"{tuple(video.shape)}: it must be (b, 1, T, H, W)")
        if (num_frames - 1) % self.vae_scale_factor_temporal:
            raise ValueError(f"{num_frames} frames: VOID needs 4k+1 frames")
        if height % 16 or width % 16:
            raise ValueError(f"size {height}x{width} must be divisible by 16")

    @staticmethod
    def _check_prompt(batch, prompt, negative_prompt, prompt_embeds,
                      negative_prompt_embeds) -> None:
        if (prompt is None) == (prompt_embeds is None):
            raise ValueError("give exactly one of `prompt` and `prompt_embeds`")
        if prompt is not None and not isinstance(prompt, str | list):
            raise ValueError(f"prompt must be a str or a list of str, got {type(prompt)}")
        count = 1 if isinstance(prompt, str) else len(prompt if prompt is not None
                                                       else prompt_embeds)
        if count not in (1, batch):
            raise ValueError(f"{count} prompts for a batch of {batch} clips")
        if negative_prompt is not None and negative_prompt_embeds is not None:
            raise ValueError("give at most one of `negative_prompt` and `negative_prompt_embeds`")

    # ---- the call -------------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(
        self,
        video: torch.Tensor,
        mask: torch.Tensor,
        prompt: str | list[str] | None = None,
        negative_prompt: str | list[str] | None = None,
        *,
        num_inference_steps: int = 30,
        guidance_scale: float = 1.0,
        mask_mode: str = "trimask",
        window_frames: int = 85,
        overlap_latents: int = OVERLAP_LATENTS,
        generator: torch.Generator | None = None,
        latents: torch.Tensor | None = None,
        noise_aug_strength: float = NOISE_AUG_STRENGTH,
        noise_aug_generator: torch.Generator | None = None,
        conditioning_pixels: torch.Tensor | None = None,
        masked_video_latents: torch.Tensor | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        max_sequence_length: int = 226,
        output_type: str = "pt",
        return_dict: bool = True,
        attention_kwargs: dict[str, Any] | None = None,
        callback_on_step_end: Callable[..., dict] | PipelineCallback | MultiPipelineCallbacks
        | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
    ) -> VOIDPipelineOutput | tuple:
        """Remove the masked object (and what it caused) from a model-space clip.

        Args:
            video: float (b, 3, T, H, W) in [0, 1]; T = 4k+1 with k odd (an even latent count),
                H and W multiples of 16.
            mask: float (b, 1, T, H, W), the reference loader's inverted quadmask: 1 remove,
                192/255 overlap, 128/255 affected, 0 keep.
            prompt: the scene after the removal. Or give `prompt_embeds`.
            negative_prompt: the unconditional prompt of CFG (default ""); used only when
                guidance_scale > 1.
            num_inference_steps: denoising steps (pass 1: 30, pass 2: 50 in the reference).
            guidance_scale: classifier-free guidance; 1 turns CFG off (pass 1), pass 2 uses 6.
            mask_mode: "trimask" (pass 1: 3 levels), "binary" (the reference's pass 2: the
                affected region joins the object) or "trimask_pass2" (pass 2, training levels).
            window_frames: temporal window in frames (85 for the real model); longer clips are
                denoised in windows overlapping by `overlap_latents` and blended.
            overlap_latents: latent frames shared by consecutive windows (4 in the reference).
            generator: draws the start latents when `latents` is not given.
            latents: start latents (b, T_lat, 16, H/8, W/8), e.g. pass 2's warped noise.
            noise_aug_strength: sigma of the noise added to the conditioning video (0 = none).
            noise_aug_generator: draws that noise; None uses the global torch RNG exactly as
                the reference does (parity only: it is not reproducible across processes).
            conditioning_pixels: the exact (noise-augmented) pixels to VAE-encode as the video
                condition, (b, 3, T, H, W) in [-1, 1] (parity with stored reference inputs).
            masked_video_latents: the video condition's VAE latents (b, T_lat, 16, H/8, W/8),
                e.g. kept from pass 1 of the same clip and seed: its VAE encode is skipped.
            prompt_embeds / negative_prompt_embeds: precomputed T5 states (b, 226, D).
            max_sequence_length: T5 tokens (226, as the model was trained).
            output_type: "pt" (default), "np", "pil", or "latent" (skip the VAE decode).
            return_dict: return a VOIDPipelineOutput (default) or the tuple (frames, latents).
            attention_kwargs: passed to the transformer's attention processors (e.g.
                {"scale": s} for a LoRA loaded but not fused).
            callback_on_step_end: called after every denoising step as
                `callback(pipe, step, timestep, callback_kwargs) -> dict`; the dict may replace
                "latents" or "prompt_embeds".
            callback_on_step_end_tensor_inputs: which of `_callback_tensor_inputs` go into
                callback_kwargs (default ["latents"]).

        Returns:
            VOIDPipelineOutput(frames, latents), or (frames, latents) with return_dict=False.
            The decoded clip has (T_lat - 1) * 4 + 1 = T frames.
        """
        if isinstance(callback_on_step_end, PipelineCallback | MultiPipelineCallbacks):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        tensor_inputs = list(callback_on_step_end_tensor_inputs or ["latents"])

        # 1. Check inputs
        windows = self.check_inputs(
            video, mask, prompt, negative_prompt, prompt_embeds, negative_prompt_embeds,
            latents, mask_mode, window_frames, overlap_latents, num_inference_steps,
            noise_aug_strength, output_type, tensor_inputs, masked_video_latents)
        self._guidance_scale = guidance_scale
        self._attention_kwargs = attention_kwargs
        self._current_timestep = None
        self._interrupt = False
        device, dtype = self._execution_device, self.transformer.dtype
        b, _, num_frames, height, width = video.shape

        # 2. Encode the prompt ([negative "", prompt] for CFG, as the reference)
        prompt_embeds, negative_prompt_embeds = self.encode_prompt(
            prompt, negative_prompt, self.do_classifier_free_guidance, prompt_embeds,
            negative_prompt_embeds, max_sequence_length, device, dtype)
        prompt_embeds = per_sample_embeds(prompt_embeds, b)
        if self.do_classifier_free_guidance:
            prompt_embeds = torch.cat([per_sample_embeds(negative_prompt_embeds, b), prompt_embeds])

        # 3. Timesteps (trailing spacing from the scheduler config)
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        self._num_timesteps = len(timesteps)

        # 4. Start latents for the whole clip
        num_latents = (num_frames - 1) // self.vae_scale_factor_temporal + 1
        latents = self.prepare_latents(b, num_latents, height, width, dtype, device, generator,
                                       latents)

        # 5. Conditioning: VAE(1 - mask) in [0,1] and VAE(noise-augmented video) in [-1,1]
        mask_cond, mask_latents = self.prepare_mask_latents(mask, mask_mode)
        if masked_video_latents is None:
            conditioning_pixels, masked_video_latents = self.prepare_video_latents(
                video, noise_aug_strength, noise_aug_generator, conditioning_pixels)
        inpaint_latents = torch.cat([mask_latents, masked_video_latents], dim=2).to(device,
                                                                                     dtype)

        # 6. RoPE per window length (positions restart at 0 in every window)
        rope = {e - s: self.rotary_embeddings(height, width, e - s, device) for s, e in windows}
        d = Denoising(inpaint_latents, prompt_embeds, windows, rope, overlap_latents,
                       attention_kwargs)

        # 7. Denoising loop with temporal multidiffusion
        step_state = {"mask_condition": mask_cond, "mask_latents": mask_latents,
                      "masked_video_latents": masked_video_latents,
                      "conditioning_pixels": conditioning_pixels,
                      "inpaint_latents": inpaint_latents}
        with self.progress_bar(total=len(timesteps)) as bar:
            for i, t in enumerate(timesteps):
                if self.interrupt:
                    continue
                self._current_timestep = t
                latents, per_window = self.denoise_step(latents, t, d)
                if callback_on_step_end is not None:
                    state = {**step_state, **per_window, "latents": latents,
                             "prompt_embeds": d.prompt_embeds}
                    out = callback_on_step_end(self, i, t, {k: state[k] for k in tensor_inputs})
                    latents = out.pop("latents", latents)
                    d.prompt_embeds = out.pop("prompt_embeds", d.prompt_embeds)
                bar.update()
        self._current_timestep = None

        # 8. Decode: latent 0 alone, then pairs -> (T_lat - 1) * 4 + 1 frames
        if output_type == "latent":
            frames = latents
        else:
            frames = self.video_processor.postprocess_video(self.decode_latents(latents),
                                                            output_type=output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return frames, latents
        return VOIDPipelineOutput(frames=frames, latents=latents)
