"""The steps VOIDPipeline.__call__ is made of, diffusers-style: prompt encoding, start latents,
the mask and video conditioning, RoPE, one guided transformer forward, one multidiffusion
denoising step, the VAE decode. A mixin so each step can be called (and tested) on its own.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from diffusers.models.embeddings import get_3d_rotary_pos_embed
from diffusers.utils.torch_utils import randn_tensor

from . import profiling
from .conditioning import WindowBlender, augment_video, mask_condition


def per_sample_embeds(embeds: torch.Tensor, batch: int) -> torch.Tensor:
    """One prompt for a batch of clips: repeat its embeddings per clip."""
    if embeds.shape[0] == batch:
        return embeds
    if embeds.shape[0] != 1:
        raise ValueError(f"{embeds.shape[0]} prompts for a batch of {batch} clips")
    return embeds.expand(batch, *embeds.shape[1:])


@dataclass
class Denoising:
    """What every denoising step reuses: the conditioning, the windows and their RoPE."""

    inpaint_latents: torch.Tensor  # (b, T_lat, 32, h, w): [mask latents | video latents]
    prompt_embeds: torch.Tensor  # [negative, positive] with CFG
    windows: list[tuple[int, int]]
    rope: dict[int, tuple[torch.Tensor, torch.Tensor]]  # per window length
    overlap: int
    attention_kwargs: dict[str, Any] | None


class VOIDPipelineSteps:
    """Step helpers of VOIDPipeline (expects its components and properties)."""

    def latents_shape(self, batch: int, num_latents: int, height: int, width: int):
        s = self.vae_scale_factor_spatial
        return (batch, num_latents, self.vae.config.latent_channels, height // s, width // s)

    def tokenize(self, prompts: list[str], max_sequence_length: int = 226) -> torch.Tensor:
        return self.tokenizer(prompts, padding="max_length", max_length=max_sequence_length,
                              truncation=True, add_special_tokens=True,
                              return_tensors="pt").input_ids

    def _t5_embeds(self, prompts: list[str], max_sequence_length: int, device, dtype):
        """T5 last hidden state over the padded tokens, no attention mask (as CogVideoX)."""
        ids = self.tokenize(prompts, max_sequence_length).to(self.text_encoder.device)
        return self.text_encoder(ids)[0].to(device=device, dtype=dtype)

    @torch.no_grad()
    def encode_prompt(self, prompt, negative_prompt=None, do_classifier_free_guidance=True,
                      prompt_embeds=None, negative_prompt_embeds=None,
                      max_sequence_length: int = 226, device=None, dtype=None):
        """(prompt_embeds, negative_prompt_embeds); the negative ones only with CFG (an empty
        negative prompt by default, as the reference's pass 2)."""
        device = device or self._execution_device
        dtype = dtype or self.transformer.dtype
        prompts = [prompt] if isinstance(prompt, str) else prompt
        with profiling.timed("text_encoder"):
            if prompt_embeds is None:
                prompt_embeds = self._t5_embeds(prompts, max_sequence_length, device, dtype)
            if do_classifier_free_guidance and negative_prompt_embeds is None:
                neg = negative_prompt or ""
                negs = [neg] * prompt_embeds.shape[0] if isinstance(neg, str) else neg
                negative_prompt_embeds = self._t5_embeds(negs, max_sequence_length, device,
                                                         dtype)
        return prompt_embeds.to(device, dtype), (
            None if negative_prompt_embeds is None else negative_prompt_embeds.to(device, dtype))

    def prepare_latents(self, batch_size: int, num_latents: int, height: int, width: int,
                        dtype, device, generator=None, latents=None) -> torch.Tensor:
        """Start latents (b, T_lat, 16, H/8, W/8) for the whole clip: given (pass 2's warped
        noise) or drawn from `generator`, times the scheduler's initial sigma."""
        shape = self.latents_shape(batch_size, num_latents, height, width)
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        return latents.to(device=device, dtype=dtype) * self.scheduler.init_noise_sigma

    @torch.no_grad()
    def vae_encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """(b,3,f,h,w) pixels -> posterior mean x scaling factor as (b, f_lat, 16, h/8, w/8)."""
        out = [self.vae.encode(x).latent_dist.mode() for x in pixels.split(1)]  # bs 1, as ref
        lat = torch.cat(out) * self.vae.config.scaling_factor
        return lat.permute(0, 2, 1, 3, 4)

    @torch.no_grad()
    def prepare_mask_latents(self, mask: torch.Tensor, mask_mode: str):
        """(mask_condition, mask_latents): the pass's mask levels, and VAE(1 - mask) with the
        mask left in [0, 1] (not mapped to [-1, 1]), tiled to 3 channels."""
        cond = mask_condition(mask.float(), mask_mode)
        with profiling.timed("vae_encode", what="mask", frames=mask.shape[2]):
            latents = self.vae_encode((1 - cond).repeat(1, 3, 1, 1, 1).to(self.vae.dtype))
        return cond, latents

    @torch.no_grad()
    def prepare_video_latents(self, video: torch.Tensor, noise_aug_strength: float,
                              generator: torch.Generator | None,
                              conditioning_pixels: torch.Tensor | None = None):
        """(conditioning_pixels, video_latents): the whole video in [-1, 1] plus the noise
        augmentation (unless pixels are given), VAE-encoded."""
        if conditioning_pixels is None:
            conditioning_pixels = video.float() * 2 - 1
            if self.add_noise_in_inpaint_model and noise_aug_strength > 0:
                conditioning_pixels = augment_video(conditioning_pixels, noise_aug_strength,
                                                    generator)
        with profiling.timed("vae_encode", what="video", frames=video.shape[2]):
            latents = self.vae_encode(conditioning_pixels.to(self.vae.dtype))
        return conditioning_pixels, latents

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

    def predict_v(self, x: torch.Tensor, cond: torch.Tensor, t, d: Denoising):
        """One transformer forward on a window: (raw output, guided v in float32)."""
        do_cfg = self.do_classifier_free_guidance
        x_in = torch.cat([x] * 2) if do_cfg else x
        cond = torch.cat([cond] * 2) if do_cfg else cond
        model_out = self.transformer(
            hidden_states=torch.cat([x_in, cond], dim=2), encoder_hidden_states=d.prompt_embeds,
            timestep=t.expand(x_in.shape[0]), image_rotary_emb=d.rope[x.shape[1]],
            attention_kwargs=d.attention_kwargs, return_dict=False)[0]
        v = model_out.float()
        if do_cfg:
            v_uncond, v_text = v.chunk(2)
            v = v_uncond + self.guidance_scale * (v_text - v_uncond)
        return model_out, v

    def denoise_step(self, latents: torch.Tensor, t, d: Denoising) -> tuple[torch.Tensor, dict]:
        """One timestep over every window (each from the pre-step latents), blended."""
        blender = WindowBlender(latents.shape, d.windows, d.overlap, latents.dtype,
                                latents.device)
        record: dict[str, list] = {"window_latents": [], "window_model_outputs": [],
                                   "window_steps": []}
        for w_idx, (s, e) in enumerate(d.windows):
            x = latents[:, s:e]
            with profiling.timed("transformer.window", window=w_idx, latents=e - s,
                                 batch=x.shape[0] * (2 if self.do_classifier_free_guidance else 1),
                                 height=x.shape[-2] * self.vae_scale_factor_spatial,
                                 width=x.shape[-1] * self.vae_scale_factor_spatial):
                model_out, v = self.predict_v(x, d.inpaint_latents[:, s:e], t, d)
                stepped = self.scheduler.step(v, t, x, return_dict=False)[0].to(latents.dtype)
            blender.add(w_idx, stepped)
            record["window_latents"].append(x)
            record["window_model_outputs"].append(model_out)
            record["window_steps"].append(stepped)
        return blender.result(), {k: tuple(v) for k, v in record.items()}

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """(b,f,c,h,w) latents -> (b,3,(f-1)*4+1,H,W) float32 in [-1, 1] (reference chunking)."""
        z = latents.permute(0, 2, 1, 3, 4) / self.vae.config.scaling_factor
        with profiling.timed("vae_decode", latents=latents.shape[1]):
            return self.vae.decode(z.to(self.vae.dtype)).sample.float()
