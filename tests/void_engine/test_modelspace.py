"""Model-space mapping: frame rules, padding and its removal, compositing back into the
plate, and the decode/encode stages end to end with an identity engine."""
from __future__ import annotations

import os
import subprocess
from fractions import Fraction

import numpy as np
import pytest

from void_engine import io, stages
from void_engine import quadmask as qm
from void_engine.engines.base import FrameRules
from void_engine.errors import InputError
from void_engine.modelspace import (
    blend_alpha,
    composite_frame,
    first_occurrence,
    pad_plan,
    padded_length,
    ping_pong,
    resize_mask,
    upscale_crop,
)

VOID_RULES = FrameRules(temporal_multiple=4, odd_k=True, min_frames=85)


def test_padded_lengths_follow_the_void_rules():
    got = {n: padded_length(n, VOID_RULES) for n in (1, 46, 62, 85, 86, 100, 120, 160, 197)}
    assert got == {1: 85, 46: 85, 62: 85, 85: 85, 86: 93, 100: 101, 120: 125, 160: 165,
                   197: 197}
    for t in got.values():
        assert (t - 1) % 4 == 0 and ((t - 1) // 4) % 2 == 1  # even latent count
    assert padded_length(7, FrameRules()) == 7


def test_ping_pong_repeats_end_frames():
    assert ping_pong(4, 11) == [0, 1, 2, 3, 3, 2, 1, 0, 0, 1, 2]
    assert ping_pong(1, 3) == [0, 0, 0]


def test_padding_is_dropped_on_the_way_out():
    # The reference never removes its ping-pong padding (a 46-frame plate comes back as
    # 85 frames); first_occurrence maps each plate frame to its model frame.
    plan = pad_plan(46, VOID_RULES)
    assert len(plan) == 85
    assert first_occurrence(plan, 46) == list(range(46))
    with pytest.raises(ValueError):
        first_occurrence([0, 1, 1], 3)


def test_composite_keeps_plate_pixels_outside_region_exactly():
    rng = np.random.default_rng(1)
    plate = rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)
    mask = np.full((200, 300), qm.KEEP, np.uint8)
    mask[80:120, 100:150] = qm.REMOVE
    result = np.zeros((48, 72, 3), np.uint8)
    out = composite_frame(plate.copy(), mask, result, dilate_px=4, feather_px=6)
    alpha = blend_alpha(mask != qm.KEEP, 4, 6)
    assert np.array_equal(out[alpha == 0], plate[alpha == 0])
    assert (out[85:115, 105:145] == 0).all()  # inside: the result
    ramp = alpha[100, 150:165]
    assert (np.diff(ramp) <= 0).all() and ramp[0] == 1 and ramp[-1] == 0
    untouched = composite_frame(plate.copy(), np.full_like(mask, qm.KEEP), result)
    assert np.array_equal(untouched, plate)


def test_composite_16bit_plate_scales_result():
    plate = np.full((64, 64, 3), 1000, np.uint16)
    mask = np.full((64, 64), qm.KEEP, np.uint8)
    mask[20:40, 20:40] = qm.REMOVE
    out = composite_frame(plate.copy(), mask, np.full((16, 16, 3), 255, np.uint8),
                          dilate_px=0, feather_px=0)
    assert out.dtype == np.uint16 and out[30, 30, 0] == 65535 and out[0, 0, 0] == 1000


def test_upscale_crop_matches_full_resize():
    import cv2

    small = np.random.default_rng(2).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    full = cv2.resize(small, (160, 96), interpolation=cv2.INTER_LINEAR)
    crop = upscale_crop(small, (96, 160), slice(10, 50), slice(20, 90), "linear")
    assert np.abs(crop.astype(int) - full[10:50, 20:90]).max() <= 1


def _identity_round_trip(tmp_path, plate, mask, codec, **kw):
    dec = stages.decode_shot(plate, mask, tmp_path / "work", shot_id="s", **kw)
    enc = stages.encode_shot(dec, dec.clip_path, tmp_path / "out", codec=codec, review=False)
    return dec, enc


def test_decode_encode_identity_keeps_odd_fps_size_and_frames(tmp_path):
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, (90, 130, 3), dtype=np.uint8) for _ in range(9)]
    fps = Fraction(24000, 1001)
    plate = str(tmp_path / "plate.mkv")
    with io.open_writer(plate, "ffv1", fps=fps, size=(90, 130)) as w:
        for f in frames:
            w.write(f)
    masks = [np.full((90, 130), qm.KEEP, np.uint8) for _ in frames]
    masks[4][30:60, 40:80] = qm.REMOVE
    mask = qm.write_quadmask(str(tmp_path / "mask.mkv"), masks, fps=fps)
    dec, enc = _identity_round_trip(tmp_path, plate, mask, "ffv1", frame_range=(2, 7),
                                    model_size=(48, 64), frame_rules=VOID_RULES)
    assert dec.mapping.num_frames == 6 and len(dec.mapping.frame_indices) == 85
    assert np.load(dec.clip_path).shape == (85, 48, 64, 3)
    assert dec.mask_histogram[qm.REMOVE] == 30 * 40
    again = stages.DecodedShot.from_json(tmp_path / "work" / "decoded.json")
    assert again == dec
    out = io.probe(enc.result_uri)
    assert (out.frames, out.fps, out.size) == (6, fps, (90, 130))
    assert enc.fps_rational == "24000/1001"
    back = list(io.read_frames(out))
    for j, b in enumerate(back):  # frames without a mask are the plate, bit for bit
        if j + 2 != 4:
            assert np.array_equal(b, frames[j + 2])
    matte = list(qm.read_quadmask(enc.matte_uri))
    assert len(matte) == 6 and np.array_equal(matte[2], masks[4])


def test_mask_covering_only_the_range_is_accepted(tmp_path, samples_dir):
    plate = str(samples_dir / "BigBen" / "input_video.mp4")
    full = list(qm.read_quadmask(str(samples_dir / "BigBen" / "trimask_quadmask.mp4"),
                                 first=10, count=5))
    mask = qm.write_quadmask(str(tmp_path / "range.mkv"), full, fps=12)
    dec = stages.decode_shot(plate, mask, tmp_path / "w", shot_id="b", frame_range=(10, 14))
    assert dec.mask_first_frame == 0 and dec.mapping.num_frames == 5


def test_upscale_crop_lanczos_matches_full_resize_at_4k_ratios():
    import cv2

    small = np.random.default_rng(4).integers(0, 256, (384, 672, 3), dtype=np.uint8)
    full = cv2.resize(small, (3840, 2160), interpolation=cv2.INTER_LANCZOS4)
    for ys, xs in [(slice(1012, 2160), slice(1627, 2885)), (slice(0, 37), slice(5, 3840))]:
        crop = upscale_crop(small, (2160, 3840), ys, xs, "lanczos")
        assert np.abs(crop.astype(int) - full[ys, xs]).max() <= 1


def _plate_and_masks(tmp_path, n=6, size=(72, 120)):
    """An FFV1 plate and masks with a moving square (frame 0 without change)."""
    rng = np.random.default_rng(5)
    frames = [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(n)]
    plate = str(tmp_path / "plate.mkv")
    with io.open_writer(plate, "ffv1", fps=Fraction(12), size=size) as w:
        for f in frames:
            w.write(f)
    masks = [np.full(size, qm.KEEP, np.uint8) for _ in range(n)]
    for j in range(1, n):
        masks[j][10 + 4 * j:30 + 4 * j, 20 + 6 * j:50 + 6 * j] = qm.REMOVE
        masks[j][30 + 4 * j:36 + 4 * j, 20 + 6 * j:50 + 6 * j] = qm.AFFECTED
    return plate, frames, masks


def _lossless_x264_mask(path, masks):
    """A quadmask the way the samples ship it: x264 -qp 0, yuv444p, .mp4."""
    h, w = masks[0].shape
    proc = subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "gray", "-s", f"{w}x{h}",
         "-framerate", "12", "-i", "-", "-c:v", "libx264", "-qp", "0", "-pix_fmt", "yuv444p",
         str(path)], input=b"".join(m.tobytes() for m in masks))
    assert proc.returncode == 0
    return str(path)


def _lossy_x264_mask(path, masks):
    """A quadmask through x264 crf 23, yuv420p: levels off the four values."""
    h, w = masks[0].shape
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "gray", "-s",
                    f"{w}x{h}", "-framerate", "12", "-i", "-", "-c:v", "libx264", "-crf", "23",
                    "-pix_fmt", "yuv420p", str(path)],
                   input=b"".join(m.tobytes() for m in masks), check=True)
    return str(path)


def _outside(masks, margin):
    import cv2

    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1))
    return [cv2.dilate((m != qm.KEEP).astype(np.uint8), k) == 0 for m in masks]


def test_lossless_mask_is_decoded_once_and_its_matte_is_a_stream_copy(tmp_path):
    plate, frames, masks = _plate_and_masks(tmp_path)
    mask = _lossless_x264_mask(tmp_path / "mask.mp4", masks)
    dec, enc = _identity_round_trip(tmp_path, plate, mask, "ffv1", model_size=(32, 48))
    assert dec.regions_file and dec.matte_file
    assert io.probe(enc.matte_uri).codec == "h264"  # the mask's own stream, not re-encoded
    matte = qm.read_quadmask(enc.matte_uri)
    assert all(np.array_equal(a, b) for a, b in zip(matte, masks, strict=True))
    # The overlay path (no review): plate pixels bit for bit outside the blend region.
    back = list(io.read_frames(io.probe(enc.result_uri)))
    assert len(back) == 6 and np.array_equal(back[0], frames[0])
    for b, f, out in zip(back, frames, _outside(masks, 8 + 8 + 1), strict=False):
        assert np.array_equal(b[out], f[out])
    # The Python path (review media on) agrees: same pixels outside, within a level inside.
    enc2 = stages.encode_shot(dec, dec.clip_path, tmp_path / "out2", codec="ffv1")
    back2 = list(io.read_frames(io.probe(enc2.result_uri)))
    assert max(np.abs(a.astype(int) - b).max() for a, b in zip(back, back2, strict=False)) <= 2
    assert enc2.review_movie_uri and os.path.isfile(enc2.review_movie_uri)


def test_encode_refuses_a_record_without_its_change_regions(tmp_path):
    plate, frames, masks = _plate_and_masks(tmp_path)
    mask = qm.write_quadmask(str(tmp_path / "mask.mkv"), masks, fps=12)
    dec = stages.decode_shot(plate, mask, tmp_path / "work", shot_id="s", model_size=(32, 48))
    os.remove(dec.beside(dec.regions_file))
    with pytest.raises(InputError, match="shot s: the decode record lacks change regions"):
        stages.encode_shot(dec, dec.clip_path, tmp_path / "out", codec="ffv1", review=False)
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")


def test_lossy_mask_gets_a_lossless_quantized_matte(tmp_path):
    plate, frames, masks = _plate_and_masks(tmp_path)
    lossy = _lossy_x264_mask(tmp_path / "lossy.mp4", masks)
    dec, enc = _identity_round_trip(tmp_path, plate, lossy, "ffv1", model_size=(32, 48))
    assert io.probe(enc.matte_uri).codec == "ffv1"
    back = list(qm.read_quadmask(enc.matte_uri))
    expect = list(qm.read_quadmask(lossy))
    assert all(np.array_equal(a, b) for a, b in zip(back, expect, strict=False))


def _blob_masks(rng, shape, n=6):
    """Quadmasks with random ellipses of all three change values, plus an empty one."""
    import cv2

    out = [np.full(shape, qm.KEEP, np.uint8)]
    for _ in range(n):
        m = np.full(shape, qm.KEEP, np.uint8)
        for value in (qm.AFFECTED, qm.REMOVE, qm.OVERLAP):
            cy, cx = rng.integers(0, shape[0]), rng.integers(0, shape[1])
            axes = (int(rng.integers(3, shape[1] // 4)), int(rng.integers(3, shape[0] // 4)))
            cv2.ellipse(m, (int(cx), int(cy)), axes, float(rng.integers(0, 180)), 0, 360,
                        int(value), -1)
        out.append(m)
    return out


@pytest.mark.parametrize("plate, model", [((2160, 3840), (384, 672)), ((1080, 1920), (384, 672)),
                                          ((720, 1283), (384, 672)), ((360, 544), (192, 320))])
def test_resize_mask_window_matches_whole_frame_area_resize(plate, model):
    """resize_mask only resizes the grid-aligned window around the change; every pixel must
    be what a whole-frame INTER_AREA resize + quantize gives (odd ratios included)."""
    import cv2

    for m in _blob_masks(np.random.default_rng(sum(plate)), plate):
        whole = qm.quantize(cv2.resize(m, model[::-1], interpolation=cv2.INTER_AREA))
        assert np.array_equal(resize_mask(m, model), whole)


def test_resize_mask_window_matches_on_the_sample_masks(samples_dir):
    import cv2

    for name in ("lime", "BigBen"):
        for m in qm.read_quadmask(qm.find_quadmask(str(samples_dir / name)), count=8):
            whole = qm.quantize(cv2.resize(m, (672, 384), interpolation=cv2.INTER_AREA))
            assert np.array_equal(resize_mask(m, (384, 672)), whole)


def test_bounding_box_is_the_box_of_non_keep_pixels():
    import cv2

    for m in _blob_masks(np.random.default_rng(9), (90, 160)):
        x, y, w, h = cv2.boundingRect((m != qm.KEEP).astype(np.uint8))
        assert qm.bounding_box(m) == (None if w == 0 else (y, y + h, x, x + w))


def test_quantized_frames_counts_and_quantizes_a_lossy_mask_like_a_whole_frame_pass(tmp_path):
    """The per-frame work stays inside the box of non-KEEP levels; the histogram and the
    quantized frame must equal a whole-frame count and quantize."""
    from void_engine.io import maskfile as mio

    _, _, masks = _plate_and_masks(tmp_path)
    lossy = _lossy_x264_mask(tmp_path / "lossy.mp4", masks)
    info = io.probe(lossy, what="quadmask")
    raws = list(io.read_video(lossy, channels=1, scale_flags="neighbor"))
    got = list(mio.quantized_frames(info, first=0, count=len(masks), size=None))
    assert len(got) == len(raws) == len(masks)
    for raw, (q, hist, box) in zip(raws, got, strict=False):
        assert np.array_equal(hist, np.bincount(raw.ravel(), minlength=256))
        assert np.array_equal(q, qm.quantize(raw))
        assert box == qm.bounding_box(raw)


@pytest.mark.parametrize("pix_fmt, full_range", [("yuv444p", False), ("yuv420p", False),
                                                 ("yuv444p", True), ("gray", False)])
def test_quantized_frames_luma_plane_route_gives_ffmpegs_grey_levels(tmp_path, pix_fmt,
                                                                      full_range):
    """8-bit YUV/grey masks are read as their stored Y plane plus ffmpeg's own range map;
    the levels must be exactly what ffmpeg's grey conversion gives, ramp levels included."""
    from void_engine.io import maskfile as mio

    _, _, masks = _plate_and_masks(tmp_path)
    ramp = np.tile(np.arange(256, dtype=np.uint8), (72 * 120) // 256 + 1)[:72 * 120]
    frames = [*masks, ramp.reshape(72, 120)]
    path = str(tmp_path / "m.nut")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "gray", "-s",
                    "120x72", "-framerate", "12", "-i", "-", "-pix_fmt", pix_fmt,
                    *(["-color_range", "pc"] if full_range else []), "-c:v", "rawvideo",
                    path], input=b"".join(f.tobytes() for f in frames), check=True)
    info = io.probe(path, what="quadmask")
    assert mio.luma_route(info, None)[0]
    grey = list(io.read_video(path, channels=1))
    for g, (q, hist, _) in zip(grey[:-1], mio.quantized_frames(info, first=0, count=6,
                                                              size=None), strict=False):
        assert np.array_equal(hist, np.bincount(g.ravel(), minlength=256))
        assert np.array_equal(q, qm.quantize(g))
    plane = next(io.read_video(path, first=6, count=1, channels=1, luma_plane=True))
    lut = mio.luma_route(info, None)[1]
    assert np.array_equal(plane if lut is None else lut[plane], grey[-1])


def test_quantized_frames_of_the_lime_mask_match_ffmpegs_grey_decode(samples_dir):
    from void_engine.io import maskfile as mio

    path = str(samples_dir / "lime" / "quadmask_0.mp4")
    info = io.probe(path, what="quadmask")
    assert mio.luma_route(info, None) != (False, None)  # the fast route is taken
    for g, (q, hist, _) in zip(io.read_video(path, count=4, channels=1),
                               mio.quantized_frames(info, first=0, count=4, size=None),
                               strict=True):
        assert np.array_equal(q, g) and hist[qm.KEEP] == (g == qm.KEEP).sum()


def test_blend_alpha_u8_is_the_rounded_float_alpha_and_zero_where_it_is():
    m = np.zeros((120, 160), bool)
    m[30:70, 40:95] = True
    m[80:100, 20:30] = True
    f = blend_alpha(m, 8, 8)
    a8 = blend_alpha(m, 8, 8, u8=True)
    assert a8.dtype == np.uint8 and np.abs(a8.astype(float) - 255 * f).max() <= 0.5 + 1e-3
    assert not a8[f == 0].any() and (a8[f == 1] == 255).all()
