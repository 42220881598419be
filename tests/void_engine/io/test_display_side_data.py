"""Side data that changes what players show (issue 9: wrong results delivered as ok): display
rotation, pixel aspect, field order. Each plate is made here with ffmpeg; results come from
decode_shot + encode_shot with an identity "engine" (the model-space clip is the result), so
outside the quadmask's change region the result must be the plate, pixel for pixel."""
from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from void_engine import io, stages
from void_engine import quadmask as qm
from void_engine.errors import InputError
from void_engine.io.commands import ffprobe
from void_engine.io.maskfile import write_quadmask

MARGIN = 8 + 8 + 1  # CompositeParams' dilate + feather: the plate is untouched beyond this


def ffmpeg(*args, stdin: bytes | None = None) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], input=stdin, check=True)


def raw_plate(n: int, h: int, w: int, seed: int = 0) -> list[np.ndarray]:
    """Noise with a bright bar that moves right: any orientation mistake shows."""
    rng = np.random.default_rng(seed)
    frames = []
    for t in range(n):
        f = rng.integers(0, 200, (h, w, 3), dtype=np.uint8)
        f[: h // 4, 4 * t:4 * t + 6] = 255
        frames.append(f)
    return frames


def encode_raw(path, frames, *codec_args, rate="12", extra_in=()) -> str:
    h, w = frames[0].shape[:2]
    ffmpeg("-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-framerate", rate,
           *extra_in, "-i", "-", *codec_args, str(path),
           stdin=b"".join(f.tobytes() for f in frames))
    return str(path)


def displayed_frames(path) -> np.ndarray:
    """The plate as players show it, decoded independently of void_engine: ffmpeg without
    autorotate, turned by the display matrix's angle with numpy."""
    s = ffprobe(str(path))["streams"][0]
    angle = next((int(round(float(d.get("rotation", 0)))) for d in s.get("side_data_list", [])
                  if d.get("side_data_type") == "Display Matrix"), 0)
    raw = subprocess.run(["ffmpeg", "-v", "error", "-noautorotate", "-i", str(path), "-f",
                          "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True,
                         check=True).stdout
    frames = np.frombuffer(raw, np.uint8).reshape(-1, s["height"], s["width"], 3)
    return np.stack([np.rot90(f, angle // 90) for f in frames])  # rot90: counter-clockwise


def square_masks(n, h, w):
    masks = [np.full((h, w), qm.KEEP, np.uint8) for _ in range(n)]
    for t, m in enumerate(masks):
        m[h // 2:h // 2 + 12, 10 + t:22 + t] = qm.REMOVE
    return masks


def outside(masks, margin=MARGIN):
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1))
    return [cv2.dilate((m != qm.KEEP).astype(np.uint8), k) == 0 for m in masks]


@pytest.fixture
def rotated_plate(tmp_path):
    """A phone-style plate: stored 96x64, tagged rotate=90 (displayed 64 wide, 96 tall)."""
    plain = encode_raw(tmp_path / "plain.mp4", raw_plate(6, 64, 96), "-c:v", "libx264", "-qp",
                       "0", "-pix_fmt", "yuv444p")
    rotated = str(tmp_path / "rotated.mp4")
    ffmpeg("-i", plain, "-c", "copy", "-metadata:s:v:0", "rotate=90", rotated)
    return rotated


def test_probe_reports_a_rotated_plate_as_displayed(rotated_plate):
    info = io.probe(rotated_plate)
    assert (info.width, info.height, info.rotation) == (64, 96, 90)
    frames = list(io.read_frames(info))
    shown = displayed_frames(rotated_plate)
    assert len(frames) == 6 and all(np.array_equal(a, b) for a, b in zip(frames, shown,
                                                                         strict=True))
    assert "90°" in info.display_notes()[0]


@pytest.mark.parametrize("review", [False, True])  # encoder-side overlay / Python composite
def test_rotated_plate_result_displays_as_the_plate_outside_the_region(tmp_path, rotated_plate,
                                                                       review):
    masks = square_masks(6, 96, 64)  # drawn on the picture as displayed
    mask = write_quadmask(str(tmp_path / "mask.mkv"), masks, fps=12)
    dec = stages.decode_shot(rotated_plate, mask, tmp_path / "w", shot_id="phone",
                             model_size=(48, 32))
    assert dec.mapping.plate_size == (96, 64) and "90°" in dec.display_note
    enc = stages.encode_shot(dec, dec.clip_path, tmp_path / "out", codec="ffv1", review=review)
    out = io.probe(enc.result_uri)
    assert (out.width, out.height, out.rotation, out.frames) == (64, 96, 0, 6)
    assert "upright" in enc.display_note
    shown = displayed_frames(rotated_plate)
    result = displayed_frames(enc.result_uri)  # lossless: exact outside the change region
    for got, want, keep in zip(result, shown, outside(masks), strict=True):
        assert np.array_equal(got[keep], want[keep])
    assert np.array_equal(next(io.read_frames(io.probe(enc.matte_uri), uint8=True))[..., 0],
                          masks[0])


def test_quadmask_drawn_on_the_stored_picture_is_refused_with_the_reason(tmp_path,
                                                                         rotated_plate):
    mask = write_quadmask(str(tmp_path / "mask.mkv"), square_masks(6, 64, 96), fps=12)
    with pytest.raises(InputError, match=r"shot phone: quadmask is 96x64 but the plate is "
                                         r"64x96 \(displayed.*turned 90°"):
        stages.decode_shot(rotated_plate, mask, tmp_path / "w", shot_id="phone",
                           model_size=(48, 32))


def test_mirrored_display_matrix_is_refused(tmp_path):
    import struct

    plain = encode_raw(tmp_path / "plain.mp4", raw_plate(2, 64, 96), "-c:v", "libx264")
    data = bytearray(Path(plain).read_bytes())
    # The track header's display matrix (9 big-endian 32-bit values, 44 bytes after "tkhd"
    # in a version-0 box), made a horizontal flip: a = -1, tx = width (as some cameras write).
    at = data.index(b"tkhd") + 44
    assert struct.unpack(">9i", data[at:at + 36])[0] == 0x10000  # identity as written
    data[at:at + 36] = struct.pack(">9i", -0x10000, 0, 0, 0, 0x10000, 0, 96 << 16, 0,
                                   0x40000000)
    flipped = tmp_path / "flipped.mp4"
    flipped.write_bytes(bytes(data))
    with pytest.raises(InputError, match="mirroring display matrix"):
        io.probe(str(flipped))


@pytest.fixture
def anamorphic_plate(tmp_path):
    """FFV1 with non-square pixels (SAR 16:15, a PAL 4:3 frame stored 96x64)."""
    return encode_raw(tmp_path / "sar.mkv", raw_plate(5, 64, 96), "-vf", "setsar=16/15",
                      "-c:v", "ffv1", "-pix_fmt", "bgr0")


@pytest.mark.parametrize("codec", ["ffv1", "prores", "h264"])
def test_pixel_aspect_is_carried_to_the_result(tmp_path, anamorphic_plate, codec):
    info = io.probe(anamorphic_plate)
    assert info.sar == Fraction(16, 15)
    masks = square_masks(5, 64, 96)
    mask = write_quadmask(str(tmp_path / "mask.mkv"), masks, fps=12)
    dec = stages.decode_shot(anamorphic_plate, mask, tmp_path / "w", shot_id="pal",
                             model_size=(32, 48))
    enc = stages.encode_shot(dec, dec.clip_path, tmp_path / "out", codec=codec)
    out = io.probe(enc.result_uri)
    assert out.sar == Fraction(16, 15), codec
    assert "16:15" in enc.display_note
    if codec == "ffv1":  # lossless: the plate's pixels outside the change region
        plate = list(io.read_frames(info))
        for got, want, keep in zip(io.read_frames(out), plate, outside(masks), strict=True):
            assert np.array_equal(got[keep], want[keep])
    review = io.probe(enc.review_movie_uri)  # thumbnails at the displayed aspect, 16/15 wider
    thumb_h = review.height - 2 * 24
    assert abs((review.width / 3) / thumb_h - 96 * 16 / 15 / 64) < 0.05


def test_pixel_aspect_png_is_refused_before_any_work_and_exr_records_it(tmp_path,
                                                                        anamorphic_plate):
    import OpenEXR

    mask = write_quadmask(str(tmp_path / "mask.mkv"), square_masks(5, 64, 96), fps=12)
    dec = stages.decode_shot(anamorphic_plate, mask, tmp_path / "w", shot_id="pal",
                             model_size=(32, 48))
    with pytest.raises(InputError, match=r"shot pal: .*non-square pixels \(SAR 16:15\).*PNG"):
        stages.encode_shot(dec, dec.clip_path, tmp_path / "png", codec="png")
    assert not (tmp_path / "png").exists() or not any((tmp_path / "png").iterdir())
    enc = stages.encode_shot(dec, dec.clip_path, tmp_path / "exr", codec="exr", review=False)
    first = sorted((tmp_path / "exr" / "pal").iterdir())[0]
    with OpenEXR.File(str(first)) as f:
        assert abs(f.header()["pixelAspectRatio"] - 16 / 15) < 1e-6
    assert enc.frames == 5


def test_interlaced_plate_is_refused_naming_the_shot_and_the_fix(tmp_path):
    plate = encode_raw(tmp_path / "il.mkv", raw_plate(4, 64, 96), "-c:v", "ffv1",
                       "-field_order", "tt")
    assert io.probe(plate).field_order == "tt"
    mask = write_quadmask(str(tmp_path / "mask.mkv"), square_masks(4, 64, 96), fps=12)
    with pytest.raises(InputError, match=r"shot tv: plate .* is interlaced \(top field first\)"
                                         r": deinterlace it first"):
        stages.decode_shot(plate, mask, tmp_path / "w", shot_id="tv", model_size=(32, 48))
    assert not (tmp_path / "w" / "decoded.json").exists()
