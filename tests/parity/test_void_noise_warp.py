"""Pass-2 warped noise (Go-with-the-Flow) against the reference fixtures (parity README §3, §6):
the noise-warper unit exactly, the warped video noise exactly on its early frames and
statistically after (the reference itself drifts with the thread count), and the resize to the
pass-2 start latents."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from void_engine.engines.void.noise_warp import (NoiseWarper, noise_from_flows, regaussianize,
                                                 resize_noise_to_latents)

from void_parity import Golden, assert_close


@pytest.fixture(scope="module")
def golden(parity_dir):
    return Golden(parity_dir, "pass2_noise_warp")


@pytest.fixture(scope="module")
def video_noise(golden):
    torch.manual_seed(golden.meta["video_seed"])  # the fixture seeds 42 right before the call
    m = golden.meta
    return noise_from_flows(golden["video.given_flows"], channels=16, resize_flow=m["FLOW"],
                            downscale_factor=round(m["FRAME"] * m["FLOW"]) * m["LATENT"])


def test_unit_warper_exact(golden):
    torch.manual_seed(golden.meta["unit_seed"])
    warper = NoiseWarper(16, 24, 40)
    assert_close(warper.state, golden["unit.initial_state"], "initial_state", atol=0)
    assert_close(warper.noise, golden["unit.initial_noise"], "initial_noise", atol=0)
    for i in range(3):
        flow = golden["unit.flows"][i]
        warper(flow[0], flow[1])
        assert_close(warper.state, golden["unit.states"][i], f"state {i}", atol=0)
        assert_close(warper.noise, golden["unit.noises"][i], f"noise {i}", atol=0)


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


def test_video_noise_early_frames_exact(golden, video_noise):
    ref = golden["video.noises_f16"]
    assert video_noise.shape == ref.shape == (16, 12, 20, 16)
    for t in range(3):  # README §6: frames 0-2 agree across thread counts
        assert_close(video_noise[t].half(), ref[t], f"noise frame {t}", atol=0)


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
    # From our own warped noise: frames 0, 5, 10, 15 -> exact on latent 0, close after.
    ours = resize_noise_to_latents(video_noise.half().numpy(), 4, (8, 14))
    assert_close(ours[:, 0], golden["pass2.start_latents"][:, 0], "start latent 0")
    corr = np.corrcoef(ours.flatten().numpy(), golden["pass2.start_latents"].flatten().numpy())
    assert corr[0, 1] > 0.99
    assert 0.55 < ours.std().item() < 0.75  # bilinear shrink of the std (0.64): reference
