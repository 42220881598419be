"""Production preprocessing against the reference's: the fixture clips (inputs/tinyA, tinyB)
decoded by our own decode_shot (ffmpeg scaling inside the decode, uint8 model-space arrays)
and turned into the pipeline's tensors, compared with the reference loader's float path on the
same raw frames (docs/parity.md, "Production preprocessing").

Why the bounds are what they are. The reference resizes with F.interpolate(mode="area"), which
is adaptive average pooling: at the fixtures' 1.5x ratio each output pixel is the plain mean of
the input pixels in [floor(i*1.5), ceil((i+1)*1.5)), overlapping bins. ffmpeg's area scaler
(like OpenCV's INTER_AREA) weights the input pixels by the fraction of them the output pixel
covers, over [i*1.5, (i+1)*1.5), a sub-interval of that bin. Both are weighted means of the
same bin's pixels, so they can differ by at most the spread (max - min) of the pixels in the
bin, plus our uint8 rounding. Flat regions agree, edges differ, by design."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from testkit.parity import Golden
from void_engine import stages
from void_engine.engines.void.reference_prep import (
    engine_arrays_to_tensors,
    pingpong,
    quantize_quadmask_float,
    reference_video_mask_input,
)
from void_engine.engines.void.settings import frame_rules_for

LEVEL = 1 / 255
# Ours vs the exact fractional-area mean: half a level of rounding to uint8, plus swscale's
# fixed-point (14-bit) filter coefficients and colour conversion, together under one level
# (measured 0.89 of a level on both clips).
AREA_TOL = LEVEL


@pytest.fixture(scope="module", params=[("pass1_caseA", "tinyA"), ("pass1_caseB", "tinyB")])
def case(request, parity_dir, tmp_path_factory):
    name, seq = request.param
    g = Golden(parity_dir, name)
    m = g.meta
    size = tuple(int(v) for v in m["sample_size"].split("x"))
    ref_video, ref_mask = reference_video_mask_input(
        g["input.raw_video"], g["input.raw_quadmask"], max_video_length=m["max_video_length"],
        window_frames=m["temporal_window_size"], size=size)
    folder = parity_dir / "inputs" / seq
    decoded = stages.decode_shot(str(folder / "input_video.mp4"), str(folder / "quadmask_0.mp4"),
                                 tmp_path_factory.mktemp(seq), shot_id=seq, model_size=size,
                                 frame_rules=frame_rules_for(m["temporal_window_size"]))
    clip, mask = np.load(decoded.clip_path), np.load(decoded.mask_path)
    video, inv_mask = engine_arrays_to_tensors(clip, mask)
    return g, size, decoded, (video, inv_mask), (ref_video, ref_mask)


def _frames(g) -> int:
    """The real frames the reference reads: the clip, cut at max_video_length."""
    return min(g.meta["max_video_length"], len(g["input.raw_video"]))


def _raw_video(g):
    n = _frames(g)
    return torch.from_numpy(g["input.raw_video"][:n]).permute(3, 0, 1, 2).float() / 255.0


def _bin_spread(x: torch.Tensor, size) -> torch.Tensor:
    """max - min of the input pixels in each output pixel's adaptive-pooling bin (same bins
    as F.interpolate(mode="area"))."""
    return F.adaptive_max_pool2d(x, size) + F.adaptive_max_pool2d(-x, size)


def test_temporal_padding_is_the_reference_ping_pong(case):
    g, _, decoded, (video, _), (ref_video, _) = case
    n = _frames(g)
    ref_indices = pingpong(torch.arange(n), ref_video.shape[2], dim=0).tolist()
    assert decoded.mapping.frame_indices == ref_indices  # exact: integer indices
    assert video.shape == ref_video.shape


def test_video_is_the_exact_area_mean_within_a_level(case):
    """ffmpeg's scaling matches the mathematically exact area average (OpenCV INTER_AREA in
    float32 on the same raw frames) to within one uint8 level everywhere."""
    g, (h, w), decoded, (video, _), _ = case
    raw = g["input.raw_video"][:_frames(g)].astype(np.float32) / 255.0
    exact = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in raw])
    exact = torch.from_numpy(exact).permute(3, 0, 1, 2)[None]
    ours = video[:, :, :exact.shape[2]]
    err = (ours - exact).abs().max().item()
    assert err <= AREA_TOL + 1e-6, f"{err * 255:.3f} levels from the exact area mean"


def test_video_differs_from_the_reference_only_by_its_bin_spread(case):
    g, size, _, (video, _), (ref_video, _) = case
    raw = _raw_video(g)
    n = raw.shape[1]
    spread = _bin_spread(raw, size)[None]
    excess = (video[:, :, :n] - ref_video[:, :, :n]).abs() - spread - AREA_TOL
    assert excess.max().item() <= 1e-6, f"beyond the bound by {excess.max().item() * 255:.3f}"
    # The bound is informative here: half the pixels' bins spread over at most 2 levels (the
    # smooth background), so there the two paths agree within 3 levels; the large differences
    # sit on the sharp edges (the exact black band, the objects).
    assert spread.median().item() <= 2 * LEVEL + 1e-6
    flat = spread == 0  # a uniform bin: both resizers give its value
    assert (video[:, :, :n] - ref_video[:, :, :n])[flat].abs().max() <= AREA_TOL + 1e-6


def test_mask_equals_the_reference_except_at_class_edges(case):
    """Where a bin holds one class, the mask is the reference's exactly. At class edges the two
    area means quantize to classes between the bin's lowest and highest; rings of overlap or
    affected can appear on either side (the reference's own edge artefact), nothing else."""
    g, size, _, (_, mask), (_, ref_mask) = case
    n = _frames(g)
    raw = torch.from_numpy(g["input.raw_quadmask"][:n]).float()[None]  # (1, T, H, W)
    # In the inverted mask (255 - class) the bin's darkest raw class is the highest value.
    inv_high = (255.0 - quantize_quadmask_float(-F.adaptive_max_pool2d(-raw, size)))[0]
    inv_low = (255.0 - quantize_quadmask_float(F.adaptive_max_pool2d(raw, size)))[0]
    ours, ref = mask[0, 0, :n] * 255.0, ref_mask[0, 0, :n] * 255.0
    uniform = inv_high == inv_low
    assert torch.equal(ours[uniform], ref[uniform])
    assert ((ours >= inv_low - 1e-3) & (ours <= inv_high + 1e-3)).all()  # between its classes
    differ = (ours != ref).float().mean().item()
    edges = (~uniform).float().mean().item()
    assert 0 < differ <= edges, (differ, edges)
