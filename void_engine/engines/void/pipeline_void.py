"""VOIDPipeline: VOID pass 1 / pass 2 on diffusers components.

One forward of the 48-channel CogVideoX transformer sees
    [noisy latents 16 | VAE(1 - mask) 16 | VAE(video) 16]
and predicts v. Pass 1: DDIM, 30 steps, no CFG, 3-level mask. Pass 2: CogVideoX DDIM from the
warped-noise latents, 50 steps, CFG 6 with an empty negative prompt, binary mask.

Clips longer than one window use the reference's temporal multidiffusion: windows of W latents
overlapping by 4, each denoised on its own for one step, blended with 0.2..0.8 ramps. Memory on
the accelerator is bounded by one window (the VAE encodes 8 frames and decodes 2 latents at a
time), not by the shot.

The numbered steps in __call__ follow the reference (Netflix/void-model,
pipeline_cogvideox_fun_inpaint.py) so the parity fixtures can be checked step by step.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from diffusers import DiffusionPipeline
from diffusers.models.embeddings import get_3d_rotary_pos_embed
from diffusers.utils.torch_utils import randn_tensor

from .vae_decode import decoded_frame_count

MASK_MODES = ("trimask", "binary", "trimask_pass2")
NOISE_AUG_STRENGTH = 0.0563  # mean of the training log-normal sigma, exp(N(-3, 0.5^2))


# --- small pure helpers (tested on their own) --------------------------------------------------
def window_plan(num_latents: int, window_latents: int, overlap: int = 4) -> list[tuple[int, int]]:
    """Latent windows [begin, end) of the reference's temporal multidiffusion."""
    if num_latents <= window_latents:
        return [(0, num_latents)]
    if window_latents <= overlap:
        raise ValueError(f"window of {window_latents} latents must exceed the overlap {overlap}")
    plans, begin = [], 0
    while True:
        end = min(begin + window_latents, num_latents)
        plans.append((begin, end))
        if end == num_latents:
            return plans
        begin = end - overlap


def window_latents_for(window_frames: int, patch_size_t: int | None = 2) -> int:
    """Latent length of a window of `window_frames` frames; odd counts drop one (patch_size_t 2)."""
    lat = (window_frames - 1) // 4 + 1
    if patch_size_t and lat % patch_size_t:
        lat -= lat % patch_size_t
    return lat


def blend_weights(length: int, first: bool, last: bool, overlap: int, dtype, device):
    """Per-latent blend weights: 1, with 0.2..0.8 ramps into the overlaps (made in `dtype`,
    like the reference, so bf16 runs round them the same way)."""
    w = torch.ones(length, dtype=dtype, device=device)
    ramp = torch.linspace(0, 1, overlap + 2, dtype=dtype, device=device)[1:-1]
    if not first:
        w[:overlap] = ramp
    if not last:
        w[-overlap:] = ramp.flip(0)
    return w.view(1, length, 1, 1, 1)


def mask_condition(mask: torch.Tensor, mode: str) -> torch.Tensor:
    """Pipeline mask levels from the loader's mask (1 remove, 0.75 overlap, 0.5 affected, 0 keep).

    trimask        pass 1 (and training): >0.75 -> 1, [0.25, 0.75] -> 127/255, <0.25 -> 0
    binary         reference pass 2: >0.5 -> 1 (the affected region joins "remove")
    trimask_pass2  pass 2 with the training levels (fixes the reference's binarisation)
    """
    if mode == "binary":
        return (mask > 0.5).to(mask.dtype)
    if mode in ("trimask", "trimask_pass2"):
        out = torch.where(mask > 0.75, torch.ones_like(mask), mask)
        out = torch.where((out >= 0.25) & (out <= 0.75), torch.full_like(mask, 127 / 255), out)
        return torch.where(out < 0.25, torch.zeros_like(mask), out)
    raise ValueError(f"unknown mask mode {mode!r} (choose {', '.join(MASK_MODES)})")


def augment_video(pixels: torch.Tensor, strength: float,
                  generator: torch.Generator | None) -> torch.Tensor:
    """Noise augmentation of the conditioning video (pixels in [-1, 1], (b, c, f, h, w)).

    generator=None reproduces the reference exactly: the global torch RNG, drawn with randn_like
    on a (b,c,f,h,w) view whose memory is (b,f,c,h,w) (the order the values come out of the CPU
    generator depends on that layout). A generator gives seeded, reproducible noise instead.
    """
    if generator is None:
        layout = pixels.permute(0, 2, 1, 3, 4).contiguous().permute(0, 2, 1, 3, 4)
        noise = torch.randn_like(layout)
    else:
        noise = torch.randn(pixels.shape, generator=generator, device=generator.device,
                            dtype=pixels.dtype).to(pixels.device)
    sigma = torch.full((pixels.shape[0],), strength, dtype=pixels.dtype, device=pixels.device)
    noise = noise * sigma[:, None, None, None, None]
    return pixels + torch.where(pixels == -1, torch.zeros_like(noise), noise)


class VOIDPipeline(DiffusionPipeline):
    """Quadmask-conditioned video inpainting with CogVideoX (VOID)."""

    model_cpu_offload_seq = "text_encoder->transformer->vae"
    _optional_components: list[str] = []

    def __init__(self, tokenizer, text_encoder, vae, transformer, scheduler):
        super().__init__()
        self.register_modules(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae,
                              transformer=transformer, scheduler=scheduler)
        self.vae_scale_factor_spatial = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.vae_scale_factor_temporal = self.vae.config.temporal_compression_ratio
        self.add_noise_in_inpaint_model = True  # VideoX-Fun base-config key, see from_pretrained

    # ---- loading ------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, weights: str | Path, pass_no: int = 1, *,
                        base: str | Path | None = None,
                        checkpoint: str | Path | None = None, dtype=None, device=None,
                        memory_mode: str = "full", notice: bool = True, **_: Any) -> VOIDPipeline:
        """Base folder (`base`, default: `weights` itself) + VOID checkpoint of pass `pass_no`.

        `weights` is a folder holding void_pass{1,2}.safetensors (and, like tiny_void, the base
        model in diffusers layout); `base` may be a folder, a cache entry or a hub id.
        """
        from . import loading

        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        dtype = loading.parse_dtype(dtype, device)
        weights = Path(weights)
        base_dir = loading.resolve_base_folder(base if base is not None else weights)
        ckpt = Path(checkpoint) if checkpoint else loading.find_checkpoint(weights, pass_no)
        raw_cfg = loading.read_json(base_dir / "transformer" / "config.json")
        transformer = loading.load_transformer(raw_cfg, ckpt, dtype)
        tokenizer, text_encoder = loading.load_text_stack(base_dir, dtype)
        pipe = cls(tokenizer=tokenizer, text_encoder=text_encoder,
                   vae=loading.load_vae(base_dir, dtype), transformer=transformer,
                   scheduler=loading.load_scheduler(base_dir, pass_no))
        pipe.add_noise_in_inpaint_model = bool(raw_cfg.get("add_noise_in_inpaint_model", True))
        loading.apply_memory_mode(pipe, memory_mode, device)
        if notice:
            loading.print_licence_notice()
        return pipe

    # ---- pieces -------------------------------------------------------------------------------
    def tokenize(self, prompts: list[str]) -> torch.Tensor:
        return self.tokenizer(prompts, padding="max_length", max_length=226, truncation=True,
                              add_special_tokens=True, return_tensors="pt").input_ids

    @torch.no_grad()
    def encode_prompt(self, prompt: str, negative_prompt: str | None, do_cfg: bool,
                      device) -> torch.Tensor:
        """T5 last hidden state over 226 padded tokens, no attention mask (as CogVideoX)."""
        prompts = [negative_prompt or "", prompt] if do_cfg else [prompt]
        ids = self.tokenize(prompts).to(self.text_encoder.device)
        embeds = self.text_encoder(ids)[0]
        return embeds.to(device=device, dtype=self.transformer.dtype)

    def rotary_embeddings(self, height: int, width: int, num_latents: int, device):
        """3-D RoPE of one window: slice grid from 0, t:h:w = D/4 : 3D/8 : 3D/8."""
        cfg = self.transformer.config
        p, p_t = cfg.patch_size, cfg.patch_size_t
        grid_h = height // (self.vae_scale_factor_spatial * p)
        grid_w = width // (self.vae_scale_factor_spatial * p)
        return get_3d_rotary_pos_embed(
            embed_dim=cfg.attention_head_dim, crops_coords=None, grid_size=(grid_h, grid_w),
            temporal_size=(num_latents + p_t - 1) // p_t, grid_type="slice",
            max_size=(cfg.sample_height // p, cfg.sample_width // p), device=device)

    @torch.no_grad()
    def vae_encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """(b,3,f,h,w) pixels -> posterior mean x scaling factor as (b, f_lat, 16, h/8, w/8)."""
        out = [self.vae.encode(x).latent_dist.mode() for x in pixels.split(1)]  # bs 1, as ref
        lat = torch.cat(out) * self.vae.config.scaling_factor
        return lat.permute(0, 2, 1, 3, 4)

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """(b,f,c,h,w) latents -> (b,3,(f-1)*4+1,H,W) float in [0,1] (reference chunking)."""
        z = latents.permute(0, 2, 1, 3, 4) / self.vae.config.scaling_factor
        frames = self.vae.decode(z.to(self.vae.dtype)).sample
        return (frames.float() / 2 + 0.5).clamp(0, 1)

    # ---- the call -------------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(  # noqa: C901 (split into diffusers-style steps: issue 10)
        self,
        video: torch.Tensor,
        mask: torch.Tensor,
        prompt: str,
        negative_prompt: str | None = None,
        *,
        num_inference_steps: int = 30,
        guidance_scale: float = 1.0,
        mask_mode: str = "trimask",
        window_frames: int = 85,
        overlap_latents: int = 4,
        generator: torch.Generator | None = None,
        latents: torch.Tensor | None = None,
        noise_aug_strength: float = NOISE_AUG_STRENGTH,
        noise_aug_generator: torch.Generator | None = None,
        conditioning_pixels: torch.Tensor | None = None,
        prompt_embeds: torch.Tensor | None = None,
        output_type: str = "pt",
        step_callback: Callable[[dict[str, Any]], None] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Remove the masked object.

        video  float (b, 3, T, H, W) in [0, 1], T = 4k+1 (k odd for an even latent count)
        mask   float (b, 1, T, H, W): the loader's inverted quadmask (1 remove, 192/255 overlap,
               128/255 affected, 0 keep)
        latents                 start latents (b, T_lat, 16, H/8, W/8) (pass 2: warped noise)
        noise_aug_generator     seeded noise augmentation; None = the reference's global RNG
        conditioning_pixels     inject the exact (noise-augmented) pixels the VAE encodes as
                                the video condition (parity: the reference RNG cannot always be
                                reproduced)
        step_callback           receives per-window and per-step tensors (parity tests)
        Returns {"latents": (b, T_lat, 16, h, w), "video": (b, 3, T_out, H, W) in [0, 1]}.
        """
        # 1. Check inputs
        device = self._execution_device
        b, _, num_frames, height, width = video.shape
        if mask.shape != (b, 1, num_frames, height, width):
            raise ValueError(f"mask {tuple(mask.shape)} does not match video {tuple(video.shape)}")
        if (num_frames - 1) % self.vae_scale_factor_temporal:
            raise ValueError(f"{num_frames} frames: VOID needs 4k+1 frames")
        if height % 16 or width % 16:
            raise ValueError(f"size {height}x{width} must be divisible by 16")
        num_latents = (num_frames - 1) // self.vae_scale_factor_temporal + 1
        p_t = self.transformer.config.patch_size_t or 1
        window = window_latents_for(window_frames, p_t)
        windows = window_plan(num_latents, window, overlap_latents)
        if any((e - s) % p_t for s, e in windows):
            raise ValueError(f"{num_frames} frames give {num_latents} latents: every window needs "
                             f"an even latent count (pad to 4k+1 frames with k odd)")
        do_cfg = guidance_scale > 1.0
        dtype = self.transformer.dtype

        # 2. Encode the prompt (negative "" first for CFG, as the reference)
        if prompt_embeds is None:
            prompt_embeds = self.encode_prompt(prompt, negative_prompt, do_cfg, device)
        prompt_embeds = prompt_embeds.to(device=device, dtype=dtype)

        # 3. Timesteps (trailing spacing from the scheduler config)
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps

        # 4. Initial latents, (b, T_lat, 16, H/8, W/8) for the whole clip
        shape = (b, num_latents, self.vae.config.latent_channels,
                 height // self.vae_scale_factor_spatial, width // self.vae_scale_factor_spatial)
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        elif tuple(latents.shape) != shape:
            raise ValueError(f"start latents {tuple(latents.shape)} do not match {shape}")
        latents = latents.to(device=device, dtype=dtype) * self.scheduler.init_noise_sigma

        # 5. Conditioning: VAE(1 - mask) in [0,1] and VAE(noise-augmented video) in [-1,1]
        vae_dtype = self.vae.dtype
        cond_mask = mask_condition(mask.float(), mask_mode)
        mask_latents = self.vae_encode((1 - cond_mask).repeat(1, 3, 1, 1, 1).to(vae_dtype))
        if conditioning_pixels is None:
            conditioning_pixels = video.float() * 2 - 1
            if self.add_noise_in_inpaint_model and noise_aug_strength > 0:
                conditioning_pixels = augment_video(conditioning_pixels, noise_aug_strength,
                                                    noise_aug_generator)
        video_latents = self.vae_encode(conditioning_pixels.to(vae_dtype))
        inpaint_latents = torch.cat([mask_latents, video_latents], dim=2).to(device, dtype)
        if step_callback:
            step_callback({"kind": "cond", "mask_condition": cond_mask,
                           "mask_latents": mask_latents, "masked_video_latents": video_latents,
                           "prompt_embeds": prompt_embeds})

        # 6. RoPE per window length (positions restart at 0 in every window)
        rope = {e - s: self.rotary_embeddings(height, width, e - s, device) for s, e in windows}

        # 7. Denoising loop with temporal multidiffusion
        total = len(timesteps) * len(windows)
        with self.progress_bar(total=total) as bar:
            for step, t in enumerate(timesteps):
                if len(windows) > 1:
                    canvas = torch.zeros(shape, dtype=torch.float32, device=device)
                    weight_sum = torch.zeros((1, num_latents, 1, 1, 1), dtype=torch.float32,
                                             device=device)
                for w_idx, (s, e) in enumerate(windows):
                    x = latents[:, s:e]
                    x_in = torch.cat([x] * 2) if do_cfg else x
                    cond = inpaint_latents[:, s:e]
                    cond = torch.cat([cond] * 2) if do_cfg else cond
                    model_out = self.transformer(
                        hidden_states=torch.cat([x_in, cond], dim=2),
                        encoder_hidden_states=prompt_embeds,
                        timestep=t.expand(x_in.shape[0]),
                        image_rotary_emb=rope[e - s], return_dict=False)[0]
                    v = model_out.float()
                    if do_cfg:
                        v_uncond, v_text = v.chunk(2)
                        v = v_uncond + guidance_scale * (v_text - v_uncond)
                    x_next = self.scheduler.step(v, t, x, return_dict=False)[0].to(dtype)
                    if step_callback:
                        step_callback({"kind": "window", "step": step, "t": int(t),
                                       "window": w_idx, "range": (s, e), "transformer_in": x,
                                       "transformer_out": model_out, "scheduler_out": x_next})
                    if len(windows) > 1:
                        wts = blend_weights(e - s, w_idx == 0, w_idx == len(windows) - 1,
                                            overlap_latents, dtype, device)
                        canvas[:, s:e] += x_next.float() * wts.float()
                        weight_sum[:, s:e] += wts.float()
                    else:
                        new_latents = x_next
                    bar.update()
                    if progress:
                        progress(step * len(windows) + w_idx + 1, total)
                latents = (canvas / weight_sum).to(dtype) if len(windows) > 1 else new_latents
                if step_callback:
                    step_callback({"kind": "step", "step": step, "t": int(t),
                                   "latents_after": latents})

        # 8. Decode: latent 0 alone, then pairs -> (T_lat - 1) * 4 + 1 frames
        if output_type == "latent":
            return {"latents": latents}
        video_out = self.decode_latents(latents)
        assert video_out.shape[2] == decoded_frame_count(num_latents)
        return {"latents": latents, "video": video_out}
