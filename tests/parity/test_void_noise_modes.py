"""Pass 2's two warped-noise geometries end to end (the functions the engine calls).

faithful: the reference's geometry, checked against the fixture: the given flows replayed in
    the fixture's scale (16 frames, 96x160 crop), global RNG seeded 42 like the reference. The
    first start latent is the first noise frame, made before any flow, so it is exact where this
    CPU draws the fixture's numbers (see test_void_noise_warp.py for other CPUs); later latents
    are statistical, since the reference itself drifts with the thread count there.
aligned: checked against its definition on a synthetic clip with known motion: latent k is
    the noise of pixel frame 4k on the exact frame grid, with unit variance, and it moves with
    the video."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from testkit.parity import Golden, assert_close
from void_engine.engines.void.noise_warp import (
    NoiseWarper,
    aligned_warped_noise,
    faithful_warped_noise,
)
from void_engine.optical_flow import dis_flow

# Noise carried along an exact integer motion is copied value for value, except where
# re-Gaussianization regroups it: pixels whose channel-0 values happen to be exactly equal
# (chance float32 collisions among ~460k values per step, ~0.2 % of the state) are mixed, as
# in the reference. So a moved latent matches its origin in correlation, not bit for bit.
MOVED_CORR = 0.99


def corr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(np.corrcoef(a.flatten().numpy(), b.flatten().numpy())[0, 1])


@pytest.fixture(scope="module")
def faithful(parity_dir):
    warp, pass1 = Golden(parity_dir, "pass2_noise_warp"), Golden(parity_dir, "pass1_caseA")
    flows, asked = list(warp["video.given_flows"]), []

    def replay(a, b):  # the fixture's flows, in order; records what the geometry asked for
        asked.append(a.shape)
        return flows.pop(0).permute(1, 2, 0).numpy()

    torch.manual_seed(warp.meta["video_seed"])
    start = faithful_warped_noise(pass1["output.frames_uint8"], 4, (8, 14), replay, None,
                                  length=warp.meta["L_T"],
                                  crop_hw=tuple(warp.meta["warp_video_hw"]))
    torch.manual_seed(warp.meta["unit_seed"])
    draws_match = torch.equal(NoiseWarper(16, 24, 40).state, warp["unit.initial_state"])
    return warp, start, asked, draws_match


def test_faithful_geometry(faithful):
    warp, start, asked, _ = faithful
    h, w = warp.meta["warp_video_hw"]
    # 16 frames -> 15 flows on the half-size 96x160 crop; noise 12x20 -> latents 8x14
    assert asked == [(h // 2, w // 2, 3)] * (warp.meta["L_T"] - 1)
    assert start.shape == warp["pass2.start_latents"].shape == (1, 4, 16, 8, 14)


def test_faithful_first_latent_exact_later_statistical(faithful):
    warp, start, _, draws_match = faithful
    ref = warp["pass2.start_latents"]
    if draws_match:
        # The same float16 noise through the same OpenCV bilinear resize: float32 rounding only.
        assert_close(start[:, 0], ref[:, 0], "start latent 0", atol=1e-6)
    for k in range(4):
        c = corr(start[:, k], ref[:, k])
        assert c > 0.99, f"latent {k}: correlation {c:.4f}"
        assert abs(start[:, k].std().item() - ref[:, k].std().item()) < 0.05


def _moving_texture(frames=21, size=(64, 112), step=2):
    """Random texture moving right by `step` pixels per frame (1 pixel at the flow's half size)."""
    rng = np.random.default_rng(4)
    h, w = size
    tex = rng.integers(0, 256, (h, w + step * frames, 3), dtype=np.uint8)
    return np.stack([tex[:, step * (frames - t):step * (frames - t) + w] for t in range(frames)])


def _known_flow(a, b):
    return np.broadcast_to(np.array([1.0, 0.0], np.float32), (*a.shape[:2], 2)).copy()


@pytest.mark.parametrize("flow", ["known", "dis"])
def test_aligned_follows_the_motion(flow):
    """8x the flow's half size = 4x the frame: a 2-pixel step per frame moves the state by 8,
    so 4 frames move it by 32 = one latent pixel. Latent k (pixel frame 4k) is latent 0 moved
    k columns to the right; left in place it is unrelated noise. With flow estimated by OpenCV
    DIS on the small clip, errors of a pixel accumulate over the frames: the correlation stays
    high but decays (measured 0.95 at latent 1, 0.78 at latent 5)."""
    clip = _moving_texture()
    fn = _known_flow if flow == "known" else (lambda a, b: dis_flow(a, b, "medium"))
    lat = aligned_warped_noise(clip, (8, 14), fn, torch.Generator().manual_seed(0))
    assert lat.shape == (1, 6, 16, 8, 14)
    per_channel = lat.std(dim=(1, 3, 4))
    assert torch.allclose(per_channel, torch.ones_like(per_channel), atol=1e-5)
    for k in range(1, 6):
        moved = corr(lat[0, k, :, :, k:], lat[0, 0, :, :, :14 - k])
        assert moved > (MOVED_CORR if flow == "known" else 0.7), f"latent {k}: {moved:.4f}"
        # unrelated in place: 5 standard errors of a zero correlation over 16*8*14 values
        assert abs(corr(lat[0, k], lat[0, 0])) < 5 / np.sqrt(16 * 8 * 14), k


def test_aligned_takes_latent_k_from_frame_4k():
    """A clip that moves only between frames 4 and 5: latent 1 (frame 4) is still latent 0's
    noise; latent 2 (frame 8) has moved a quarter of a latent pixel, which leaves block
    averages of i.i.d. noise correlated by about 0.75 (their overlap)."""
    clip = _moving_texture()
    calls = []

    def once(a, b):  # the 5th flow is the one from frame 4 to frame 5
        calls.append(1)
        return _known_flow(a, b) if len(calls) == 5 else np.zeros((*a.shape[:2], 2), np.float32)

    lat = aligned_warped_noise(clip, (8, 14), once, torch.Generator().manual_seed(0))
    assert corr(lat[0, 1], lat[0, 0]) > MOVED_CORR
    assert 0.6 < corr(lat[0, 2], lat[0, 0]) < 0.9
