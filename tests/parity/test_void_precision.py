"""The deployment precisions against the float32 fixture: pass 1 case A (same start latents
and conditioning pixels as the reference) run in bf16, and in bf16 with FP8 weight storage
(memory_mode "fp8"), stays within a stated bound of the reference's float32 result.

The bounds. bf16 keeps 8 significant bits: every rounding is off by at most u = 2^-8
relative, and what matters is how many such errors survive to the output. Measured on this
case: 3.4 u (relative L2) on the final latents in bf16, 3.6 u with FP8 storage. The bf16 bound
is 8 u: a few roundings' worth, with 2x headroom for CPUs whose bf16 matmuls accumulate
differently (AVX-512 BF16, AMX). FP8 (e4m3) rounds each weight by up to 2^-4 relative, but
every output sums dozens of products whose rounding errors are independent and partly cancel;
its bound is 2^-4 itself, what one FP8 rounding of a whole result would cost. The decoded video
is held to a PSNR of 40 dB (RMS error 2.6 uint8 levels; measured 44 dB): bf16 itself can only
represent values near 1 in steps of 1/256, one level."""
from __future__ import annotations

import pytest
import torch

from testkit.parity import Golden

U = 2.0 ** -8  # bf16 unit roundoff
LATENT_REL = {"bf16": 8 * U, "fp8": 2.0 ** -4}  # relative L2 error of the final latents
MIN_PSNR_DB = 40.0  # decoded video, [0, 1] scale


@pytest.fixture(scope="module")
def golden(parity_dir):
    return Golden(parity_dir, "pass1_caseA")


@pytest.mark.parametrize("mode", ["bf16", "fp8"])
def test_low_precision_within_bound_of_fp32(parity_dir, golden, mode):
    from void_engine.engines.void.pipeline_void import VOIDPipeline

    pipe = VOIDPipeline.from_void_checkpoint(
        parity_dir / "tiny_void", 1, device="cpu", dtype="bf16",
        memory_mode="fp8" if mode == "fp8" else "full", notice=False)
    pipe.set_progress_bar_config(disable=True)
    if mode == "fp8":
        weight = pipe.transformer.transformer_blocks[0].attn1.to_q.weight
        assert weight.dtype == torch.float8_e4m3fn  # really stored in FP8
    out = pipe(golden["input.video"], golden["input.mask"], golden.meta["prompt"],
               num_inference_steps=30, window_frames=golden.meta["temporal_window_size"],
               latents=golden["denoise.initial_latents"],
               conditioning_pixels=golden["cond.vae_input_masked_video"])
    want = golden["output.final_latents"]
    rel = ((out.latents.float() - want).norm() / want.norm()).item()
    assert rel <= LATENT_REL[mode], f"{mode}: final latents {rel:.4f} relative (bound " \
                                    f"{LATENT_REL[mode]:.4f})"
    video = out.frames.float().permute(0, 2, 1, 3, 4)  # the reference's (b, 3, T, H, W)
    mse = ((video - golden["output.video"]) ** 2).mean().item()
    psnr = 10 * torch.log10(torch.tensor(1.0 / mse)).item()
    assert psnr >= MIN_PSNR_DB, f"{mode}: video PSNR {psnr:.1f} dB"
