"""Plate IO round trips on small clips the tests make: every codec and sequence format,
frame ranges, audio carry-through, odd frame rates, fsspec URIs, atomic writes."""
from __future__ import annotations

import os
import subprocess
from fractions import Fraction

import numpy as np
import pytest

from void_engine import io
from void_engine.errors import InputError, OutputError
from void_engine.io.commands import ffprobe
from void_engine.io.writer import BGRA_EXACT
from void_engine.review import psnr

FPS = Fraction(24000, 1001)


def synthetic_frames(n=10, h=64, w=96, dtype=np.uint8, seed=0):
    """Smooth moving gradients plus texture: compressible but not trivial."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(0, 1, (h, w, 1)).astype(np.float32) * 0.2  # luma texture: 4:2:0-safe
    frames = []
    for t in range(n):
        f = np.stack([(xx + 3 * t) / w, yy / h, 0.5 + 0.4 * np.sin((xx + yy + 5 * t) / 9)], -1)
        f = np.clip(0.8 * f + base, 0, 1)
        if dtype == np.float32:
            frames.append(f.astype(np.float32))
        else:
            frames.append(np.rint(f * np.iinfo(dtype).max).astype(dtype))
    return frames


def write_clip(path, frames, codec, fps=FPS, audio=None, audio_codec=None):
    h, w = frames[0].shape[:2]
    with io.open_writer(str(path), codec, fps=fps, size=(h, w), dtype=frames[0].dtype,
                        audio=audio, audio_codec=audio_codec) as writer:
        for f in frames:
            writer.write(f)
    return str(path)


def make_audio_video(path, n=24, fps="24000/1001"):
    seconds = f"{n / float(Fraction(fps)):.6f}"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-t", seconds, "-i",
                    f"testsrc2=size=96x64:rate={fps}", "-f", "lavfi", "-t", seconds, "-i",
                    "sine=frequency=440:sample_rate=48000", "-c:v", "libx264",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", str(path)], check=True)
    return str(path)


def test_ffv1_round_trip_is_bit_exact_and_keeps_odd_fps(tmp_path):
    frames = synthetic_frames()
    out = write_clip(tmp_path / "a.mkv", frames, "ffv1")
    info = io.probe(out)
    assert (info.width, info.height, info.frames, info.fps) == (96, 64, 10, FPS)
    back = list(io.read_frames(info))
    assert len(back) == 10 and all(np.array_equal(a, b) for a, b in zip(frames, back, strict=False))


def test_ffv1_16bit_round_trip_is_bit_exact(tmp_path):
    frames = synthetic_frames(n=4, dtype=np.uint16)
    info = io.probe(write_clip(tmp_path / "a16.mkv", frames, "ffv1"))
    assert info.depth == 16
    back = list(io.read_frames(info))
    assert back[0].dtype == np.uint16
    assert all(np.array_equal(a, b) for a, b in zip(frames, back, strict=False))


@pytest.mark.parametrize("codec,ext,min_db", [("h264", ".mp4", 33), ("prores", ".mov", 40)])
def test_lossy_codecs_round_trip(tmp_path, codec, ext, min_db):
    frames = synthetic_frames()
    info = io.probe(write_clip(tmp_path / f"a{ext}", frames, codec))
    assert (info.width, info.height, info.frames, info.fps) == (96, 64, 10, FPS)
    if codec == "prores":  # ProRes 4444 is 10-bit: frames decode as uint16
        assert info.codec == "prores" and info.pix_fmt.startswith("yuv444p") and info.depth == 16
    back = [io.to_uint8(f) for f in io.read_frames(info)]
    assert psnr(np.stack(frames), np.stack(back)) >= min_db


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_sequence_round_trip_exact(tmp_path, dtype):
    frames = synthetic_frames(n=5, dtype=dtype)
    folder = write_clip(tmp_path / "seq", frames, "png")
    names = sorted(os.listdir(folder))
    assert names[0] == "seq.000000.png" and len(names) == 5
    info = io.probe(folder, fps=FPS)
    assert info.kind == "sequence" and info.frames == 5 and info.fps == FPS
    assert info.depth == (8 if dtype == np.uint8 else 16)
    back = list(io.read_frames(info, first=1, count=3))
    assert all(np.array_equal(a, b) for a, b in zip(frames[1:4], back, strict=False))
    # printf and #### patterns name the same sequence
    assert io.probe(str(tmp_path / "seq" / "seq.%06d.png")).frames == 5
    assert io.probe(str(tmp_path / "seq" / "seq.######.png")).frames == 5


def test_exr_sequence_round_trip_half_float(tmp_path):
    frames = synthetic_frames(n=3, dtype=np.float32)
    frames[0][0, 0] = [2.5, 0.0, 0.125]  # over-range values survive (scene-linear plates)
    folder = write_clip(tmp_path / "exr", frames, "exr")
    info = io.probe(folder)
    assert info.depth == 32 and info.frames == 3
    back = list(io.read_frames(info))
    assert back[0].dtype == np.float32
    for a, b in zip(frames, back, strict=False):
        np.testing.assert_allclose(a, b, atol=1e-3, rtol=1e-3)
    small = next(io.read_frames(info, size=(32, 48), uint8=True))
    assert small.shape == (32, 48, 3) and small.dtype == np.uint8


def test_frame_range_and_model_size_scaling(tmp_path):
    frames = synthetic_frames(n=12)
    info = io.probe(write_clip(tmp_path / "r.mkv", frames, "ffv1"))
    part = list(io.read_frames(info, first=4, count=5))
    assert len(part) == 5
    assert all(np.array_equal(a, b) for a, b in zip(frames[4:9], part, strict=True))
    small = list(io.read_frames(info, first=4, count=2, size=(32, 48)))
    assert small[0].shape == (32, 48, 3)
    # area downscale inside ffmpeg ~ the mean of 2x2 blocks
    ref = frames[4].astype(np.float32).reshape(32, 2, 48, 2, 3).mean((1, 3))
    assert np.abs(small[0].astype(np.float32) - ref).mean() < 2.0


def test_audio_is_carried_through_for_a_frame_range(tmp_path):
    src = make_audio_video(tmp_path / "av.mp4")
    info = io.probe(src)
    assert info.audio_codec == "aac" and info.fps == FPS and info.frames == 24
    frames = list(io.read_frames(info, first=6, count=12))
    audio = (src, float(6 / info.fps), float(12 / info.fps))
    for codec, ext in (("ffv1", ".mkv"), ("h264", ".mp4"), ("prores", ".mov")):
        out = write_clip(tmp_path / f"o{ext}", frames, codec, fps=info.fps, audio=audio,
                         audio_codec=info.audio_codec)
        o = io.probe(out)
        assert o.audio_codec is not None, codec
        assert o.frames == 12 and o.fps == FPS
        streams = ffprobe(out, show_entries="stream=codec_type,start_time:format=duration")
        starts = [float(st.get("start_time", 0)) for st in streams["streams"]]
        assert max(starts) < 0.05, (codec, starts)  # audio and video start together
        dur = float(streams["format"]["duration"])
        assert abs(dur - 12 / float(FPS)) < 0.1, (codec, dur)


def test_fsspec_memory_uri_round_trip(tmp_path):
    import fsspec

    frames = synthetic_frames(n=3)
    write_clip("memory://plates/clip.mkv", frames, "ffv1")
    fs = fsspec.filesystem("memory")
    assert fs.exists("/plates/clip.mkv") and not fs.exists("/plates/.clip.mkv.part")
    with io.local_input("memory://plates/clip.mkv") as local:
        back = list(io.read_frames(io.probe(local)))
    assert all(np.array_equal(a, b) for a, b in zip(frames, back, strict=False))
    with pytest.raises(InputError, match="not found"), \
            io.local_input("memory://plates/missing.mkv"):
            pass


def test_failed_write_leaves_nothing_behind(tmp_path):
    frames = synthetic_frames(n=3)
    target = tmp_path / "x.mkv"
    with pytest.raises(RuntimeError), \
            io.open_writer(str(target), "ffv1", fps=FPS, size=(64, 96)) as w:
        w.write(frames[0])
        raise RuntimeError("engine died")
    assert os.listdir(tmp_path) == []
    with pytest.raises(OutputError, match="expects"), \
            io.open_writer(str(target), "ffv1", fps=FPS, size=(64, 96)) as w:
        w.write(frames[0][:32])
    assert os.listdir(tmp_path) == []


def test_unwritable_output_fails_before_encoding(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="is not a folder"):
        io.check_writable(str(blocker / "out.mkv"))


def test_corrupt_and_missing_plates(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(os.urandom(5000))
    with pytest.raises(InputError, match="is not a readable video"):
        io.probe(str(bad))
    with pytest.raises(InputError, match="plate not found"):
        io.probe(str(tmp_path / "nope.mp4"))
    empty = tmp_path / "empty_seq"
    empty.mkdir()
    with pytest.raises(InputError, match="holds no .png/.exr frames"):
        io.probe(str(empty))


def test_sample_plates_probe(samples_dir):
    info = io.probe(str(samples_dir / "ducky-float" / "input_video.mp4"))
    assert (info.width, info.height, info.frames, info.fps) == (1296, 720, 62, Fraction(12))
    assert info.audio_codec == "aac"


def test_plate_overlay_composites_in_the_encoder_and_reports_a_short_plate(tmp_path):
    frames = synthetic_frames(6)
    plate = write_clip(tmp_path / "plate.mkv", frames, "ffv1")
    patch = np.zeros((16, 24, 4), np.uint8)
    patch[4:12, 6:18] = (255, 0, 0, 255)  # opaque red; alpha 0 elsewhere
    out = str(tmp_path / "out.mkv")
    overlay = io.PlateOverlay(plate, 1, 5, 10, 20, (16, 24))
    with io.open_writer(out, "ffv1", fps=FPS, size=(64, 96), overlay=overlay) as w:
        for _ in range(5):
            w.write(patch)
    back = list(io.read_frames(io.probe(out)))
    assert len(back) == 5
    for got, plate_frame in zip(back, frames[1:], strict=False):
        expect = plate_frame.copy()
        expect[14:22, 26:38] = (255, 0, 0)
        assert np.array_equal(got, expect)
    # A plate that runs out before the patches: a specific error and nothing left behind.
    short = str(tmp_path / "short.mkv")
    with pytest.raises(InputError, match=r"gave [0-9]+ of 8 frames"), \
            io.open_writer(short, "ffv1", fps=FPS, size=(64, 96),
                           overlay=io.PlateOverlay(plate, 0, 8, 0, 0, (16, 24))) as w:
        for _ in range(8):
            w.write(patch)
    assert not os.path.exists(short)
    assert sorted(os.listdir(tmp_path)) == ["out.mkv", "plate.mkv"]


def test_overlay_tap_hands_over_the_window_as_encoded_and_its_errors_fail_the_write(tmp_path):
    frames = synthetic_frames(6)
    plate = write_clip(tmp_path / "plate.mkv", frames, "ffv1")
    patch = np.zeros((16, 24, 4), np.uint8)
    patch[4:12, 6:18] = (255, 0, 0, 128)  # half-transparent red: a real blend
    out, taps = str(tmp_path / "out.mkv"), []
    overlay = io.PlateOverlay(plate, 1, 5, 10, 20, (16, 24), tap=(8, 40, 12, 60))
    with io.open_writer(out, "ffv1", fps=FPS, size=(64, 96), overlay=overlay,
                        on_tap=lambda frame: taps.append(frame.copy())) as w:
        for _ in range(5):
            w.write(patch)
    back = list(io.read_frames(io.probe(out)))
    assert len(taps) == len(back) == 5
    for tap, got, plate_frame in zip(taps, back, frames[1:], strict=True):
        assert tap.shape == (32, 96, 3)  # (h, 2w): plate | result
        assert np.array_equal(tap[:, :48], plate_frame[8:40, 12:60])
        assert np.array_equal(tap[:, 48:], got[8:40, 12:60])  # what was encoded
    assert not np.array_equal(taps[0][:, :48], taps[0][:, 48:])

    # A consumer that fails: the pipe is still drained (no stall), the write fails with the
    # consumer's error and leaves nothing behind.
    def broken(frame):
        raise ValueError("qc broke")

    failed = str(tmp_path / "failed.mkv")
    with pytest.raises(ValueError, match="qc broke"), \
            io.open_writer(failed, "ffv1", fps=FPS, size=(64, 96), overlay=overlay,
                           on_tap=broken) as w:
        for _ in range(5):
            w.write(patch)
    assert sorted(os.listdir(tmp_path)) == ["out.mkv", "plate.mkv"]


@pytest.mark.parametrize("pix_fmt, full_range", [
    *((f, False) for f in sorted(BGRA_EXACT)), ("yuv420p", True), ("yuv444p", True)])
def test_bgra_exact_formats_decode_to_bgra_as_to_rgb(tmp_path, pix_fmt, full_range):
    """PlateOverlay blends in BGRA for these formats: their BGRA decode must be their RGB
    decode channel for channel, or plate pixels would change outside the region."""
    src = str(tmp_path / "src.nut")  # rawvideo in NUT stores any pix_fmt as it is
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=133x71:rate=12", "-frames:v", "2", "-pix_fmt", pix_fmt,
                    *(["-vf", "scale=out_range=full", "-color_range", "pc"] if full_range
                      else []), "-c:v", "rawvideo", src], check=True)
    assert io.probe(src).pix_fmt == pix_fmt

    def decode(fmt, channels):
        out = subprocess.run(["ffmpeg", "-v", "error", "-i", src, "-f", "rawvideo",
                              "-pix_fmt", fmt, "-"], capture_output=True, check=True).stdout
        return np.frombuffer(out, np.uint8).reshape(-1, channels)

    assert np.array_equal(decode("bgra", 4)[:, 2::-1], decode("rgb24", 3))
    assert io.bgra_exact(pix_fmt) and not io.bgra_exact("yuv420p10le")


def test_probe_answers_again_from_memory_until_the_file_changes(tmp_path, monkeypatch):
    import importlib

    probe_mod = importlib.import_module("void_engine.io.probe")  # the module, not io.probe()

    path = write_clip(tmp_path / "a.mkv", synthetic_frames(4), "ffv1")
    assert io.probe(path).frames == 4
    calls = []
    real = probe_mod.ffprobe
    monkeypatch.setattr(probe_mod, "ffprobe", lambda *a, **k: calls.append(a) or real(*a, **k))
    again = io.probe(path)
    assert again.frames == 4 and again.path == path and calls == []
    write_clip(tmp_path / "a.mkv", synthetic_frames(6), "ffv1")  # replaced (temp + rename)
    assert io.probe(path).frames == 6 and calls
