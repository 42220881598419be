"""Pass-2 warped noise (Go-with-the-Flow) against the reference fixtures: the noise-warper unit,
the warped video noise on its early frames exactly and statistically after (the reference itself
drifts with the thread count), and the resize to the pass-2 start latents.

Why these tests carry tolerances (docs/parity.md, "CPU portability"): the reference draws its
noise with `torch.randn` on the CPU, whose Box-Muller transform runs through a SIMD kernel chosen
at run time (AVX2 / AVX-512, or the scalar `default` one). The kernels' log/sin/cos differ in the
last bits, so the same seed gives draws that differ by a few float32 ulps from one CPU to
another: up to 1.8e-6 on draws of magnitude <= 4 (measured: ATEN_CPU_CAPABILITY=default against
fixtures made on AVX-512). Every later value is built from those draws, so bit-exactness is only
possible where this CPU reproduces the fixture's draws; `draws_match` checks exactly that on the
stored initial noise, and the tests are exact there and bounded elsewhere."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from testkit.parity import Golden, assert_close, f16_ulp
from void_engine.engines.void.noise_warp import (
    NoiseWarper,
    noise_from_flows,
    regaussianize,
    resize_noise_to_latents,
)

# Bound on |our state - fixture state| when this CPU's randn kernel is not the fixture's: the draws
# differ by <= 4 float32 ulps at |x| = 4 (1.9e-6, measured 1.8e-6), and the warper only sums,
# scales and takes square roots of them, which carries the error without growing it past 2x over
# three steps (measured: 1.6e-6 on states up to 27).
RANDN_KERNEL_TOL = 4e-6


@pytest.fixture(scope="module")
def golden(parity_dir):
    return Golden(parity_dir, "pass2_noise_warp")


@pytest.fixture(scope="module")
def draws_match(golden) -> bool:
    """Does torch.randn on this CPU give the fixture's draws bit for bit (same SIMD kernel)?"""
    torch.manual_seed(golden.meta["unit_seed"])
    return torch.equal(NoiseWarper(16, 24, 40).state, golden["unit.initial_state"])


@pytest.fixture(scope="module")
def video_noise(golden):
    torch.manual_seed(golden.meta["video_seed"])  # the fixture seeds 42 right before the call
    m = golden.meta
    return noise_from_flows(golden["video.given_flows"], channels=16, resize_flow=m["FLOW"],
                            downscale_factor=round(m["FRAME"] * m["FLOW"]) * m["LATENT"])


def test_unit_warper_matches_reference(golden, draws_match):
    """Exact where this CPU draws the fixture's numbers, within RANDN_KERNEL_TOL elsewhere."""
    atol = 0 if draws_match else RANDN_KERNEL_TOL
    torch.manual_seed(golden.meta["unit_seed"])
    warper = NoiseWarper(16, 24, 40)
    assert_close(warper.state, golden["unit.initial_state"], "initial_state", atol=atol)
    assert_close(warper.noise, golden["unit.initial_noise"], "initial_noise", atol=atol)
    for i in range(3):
        flow = golden["unit.flows"][i]
        warper(flow[0], flow[1])
        assert_close(warper.state, golden["unit.states"][i], f"state {i}", atol=atol)
        assert_close(warper.noise, golden["unit.noises"][i], f"noise {i}", atol=atol)


def test_unit_warper_seeded_generator_is_reproducible(golden):
    flow = golden["unit.flows"][0]
    runs = []
    for _ in range(2):
        torch.manual_seed(0)  # the global RNG must not matter once a generator is given
        w = NoiseWarper(4, 24, 40, generator=torch.Generator().manual_seed(5))
        torch.randn(10)
        runs.append(w(flow[0], flow[1]).noise)
    assert torch.equal(runs[0], runs[1])


def test_regaussianize_keeps_group_sums_and_unit_variance():
    g = torch.Generator().manual_seed(3)
    base = torch.randn(4, 32, 32, generator=g)
    dup = base.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)  # groups of 4
    out, counts = regaussianize(dup, torch.Generator().manual_seed(4))
    assert torch.all(counts == 4)
    sums = out.view(4, 32, 2, 32, 2).sum(dim=(2, 4))
    assert torch.allclose(sums / 2, base, atol=1e-5)  # group sum = n * 4 / sqrt(4)
    assert abs(out.std().item() - 1) < 0.05 and abs(out.mean().item()) < 0.05


def test_video_noise_early_frames(golden, video_noise, draws_match):
    """Frames 0-2 agree exactly across thread counts in the reference. With another randn kernel
    frame 0 is the fresh draws area-averaged over 32x32 blocks and scaled by 32, so each value
    may be off by 32 x RANDN_KERNEL_TOL before it is rounded to float16 (one more float16 ulp);
    frames 1-2 then group duplicates differently in
    re-Gaussianization (exact-equality groups), so they are held to the statistical bounds."""
    ref = golden["video.noises_f16"]
    assert video_noise.shape == ref.shape == (16, 12, 20, 16)
    if draws_match:
        for t in range(3):
            assert_close(video_noise[t].half(), ref[t], f"noise frame {t}", atol=0)
        return
    ours, want = video_noise[0].half().float(), ref[0].float()
    factor = round(golden.meta["FRAME"] * golden.meta["FLOW"]) * golden.meta["LATENT"]
    bound = factor * RANDN_KERNEL_TOL + f16_ulp(torch.maximum(ours.abs(), want.abs()))
    excess = ((ours - want).abs() - bound).max().item()
    assert excess <= 0, f"frame 0 beyond its bound by {excess:.3g}"
    for t in (1, 2):
        corr = np.corrcoef(video_noise[t].flatten().numpy(), ref[t].float().flatten().numpy())
        assert corr[0, 1] > 0.99, f"frame {t}: correlation {corr[0, 1]:.4f}"


def test_video_noise_statistics(golden, video_noise):
    ref = golden["video.noises_f16"].float()
    ours = video_noise.half().float()
    for t in range(16):
        corr = np.corrcoef(ours[t].flatten().numpy(), ref[t].flatten().numpy())[0, 1]
        assert corr > 0.99, f"frame {t}: correlation {corr:.4f}"
        assert abs(ours[t].mean().item()) < 0.1, f"frame {t}: mean {ours[t].mean():.3f}"
        assert abs(ours[t].std().item() - 1) < 0.1, f"frame {t}: std {ours[t].std():.3f}"


def test_start_latents_resize(golden, video_noise):
    start = resize_noise_to_latents(golden["video.noises_f16"].numpy(), 4, (8, 14))
    assert_close(start, golden["pass2.start_latents"], "pass2.start_latents")
    # From our own warped noise: frames 0, 5, 10, 15 -> close on latent 0, correlated after.
    # Bilinear resizing is a convex combination, so latent 0 can be off by no more than its
    # source frame 0 is (0 where this CPU draws the fixture's numbers), plus float32 rounding.
    ours = resize_noise_to_latents(video_noise.half().numpy(), 4, (8, 14))
    frame0_err = (video_noise[0].half().float() - golden["video.noises_f16"][0].float()).abs()
    assert_close(ours[:, 0], golden["pass2.start_latents"][:, 0], "start latent 0",
                 atol=frame0_err.max().item() + 1e-6)
    corr = np.corrcoef(ours.flatten().numpy(), golden["pass2.start_latents"].flatten().numpy())
    assert corr[0, 1] > 0.99
    assert 0.55 < ours.std().item() < 0.75  # bilinear shrink of the std (0.64): reference
