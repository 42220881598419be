"""The CogVideoX VAE with the VOID reference decode schedule.

Why a subclass: diffusers' `AutoencoderKLCogVideoX._decode` cuts an even latent count into pairs
from index 0 and returns 4*T frames (shifted by +3). The reference (VideoX-Fun) decodes latent 0
alone (spatial-only upsampling, 1 frame), then pairs [1:3], [3:5], ..., and a lone last latent
with the temporal upsampling forced on, carrying the causal-conv cache throughout, so T latents
give (T-1)*4+1 frames. Only the chunking and one upsampler flag differ; the weights and the
state-dict keys are the stock ones.

Encode is the stock schedule (8-frame batches, the leftover frames in the first batch), but every
batch is moved to the VAE's device on its own, so a long shot never sits on the GPU whole.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

# ModelMixin: a pipeline saved with save_pretrained names this module as the VAE's library, and
# diffusers' from_pretrained looks the loadable base class up in this module's namespace.
from diffusers import AutoencoderKLCogVideoX, ModelMixin  # noqa: F401
from diffusers.models.autoencoders.vae import DecoderOutput
from diffusers.models.upsampling import CogVideoXUpsample3D


class FlagAwareUpsample3D(CogVideoXUpsample3D):
    """CogVideoXUpsample3D that can be told to double a single frame in time.

    Stock behaviour for a 1-frame chunk is spatial-only upsampling (right for latent 0); the
    reference's lone *last* latent needs the 3-D nearest x2 instead.
    """

    force_time_upsample: bool = False

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if not (self.compress_time and self.force_time_upsample and inputs.shape[2] == 1):
            return super().forward(inputs)
        inputs = F.interpolate(inputs, scale_factor=2.0)  # (b,c,1,h,w) -> (b,c,2,2h,2w), nearest
        b, c, t, h, w = inputs.shape
        x = inputs.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        x = self.conv(x)
        return x.reshape(b, t, *x.shape[1:]).permute(0, 2, 1, 3, 4)


def decode_chunks(num_latents: int) -> list[tuple[int, int]]:
    """Reference decode chunks: [0,1), then pairs, then a lone last latent if one is left."""
    chunks = [(0, 1)] if num_latents > 0 else []
    start = 1
    while start < num_latents:
        chunks.append((start, min(start + 2, num_latents)))
        start += 2
    return chunks


def decoded_frame_count(num_latents: int) -> int:
    return (num_latents - 1) * 4 + 1


class VoidAutoencoderKLCogVideoX(AutoencoderKLCogVideoX):
    """AutoencoderKLCogVideoX whose decode follows the VOID reference chunking (see module doc)."""

    # No __init__ override: diffusers reads the config keys from the __init__ signature.
    def _flag_upsamplers(self) -> list[FlagAwareUpsample3D]:
        ups = []
        for module in self.decoder.modules():
            if type(module) is CogVideoXUpsample3D:
                module.__class__ = FlagAwareUpsample3D  # same parameters, one extra flag
            if isinstance(module, FlagAwareUpsample3D):
                ups.append(module)
        return ups

    @contextlib.contextmanager
    def _force_time_upsample(self, on: bool):
        ups = self._flag_upsamplers()
        for m in ups:
            m.force_time_upsample = on
        try:
            yield
        finally:
            for m in ups:
                m.force_time_upsample = False

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_tiling:
            return super()._encode(x)
        num_frames = x.shape[2]
        batch = self.num_sample_frames_batch_size
        num_batches = max(num_frames // batch, 1)
        remaining = num_frames % batch
        conv_cache = None
        enc = []
        param = next(self.encoder.parameters())
        for i in range(num_batches):
            start = batch * i + (0 if i == 0 else remaining)
            end = batch * (i + 1) + remaining
            chunk = x[:, :, start:end].to(param.device, param.dtype)
            h, conv_cache = self.encoder(chunk, conv_cache=conv_cache)
            if self.quant_conv is not None:
                h = self.quant_conv(h)
            enc.append(h)
        return torch.cat(enc, dim=2)

    def _decode(self, z: torch.Tensor, return_dict: bool = True):
        if self.use_tiling:
            raise ValueError("VOID decode does not support enable_tiling (its chunking differs "
                             "from the reference)")
        param = next(self.decoder.parameters())
        chunks = decode_chunks(z.shape[2])
        conv_cache = None
        dec = []
        for i, (start, end) in enumerate(chunks):
            zc = z[:, :, start:end].to(param.device, param.dtype)
            if self.post_quant_conv is not None:
                zc = self.post_quant_conv(zc)
            lone_last = i > 0 and end - start == 1
            with self._force_time_upsample(lone_last):
                out, conv_cache = self.decoder(zc, conv_cache=conv_cache)
            # Output chunks go back to the latents' device (the CPU for long shots).
            dec.append(out.to(z.device))
        dec = torch.cat(dec, dim=2)
        if not return_dict:
            return (dec,)
        return DecoderOutput(sample=dec)
