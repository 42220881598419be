"""Variable frame rate plates (issue 9): every frame keeps its presentation time in the result,
matte and review movie (same frame count, same times), or the codec is refused up front."""
from __future__ import annotations

import numpy as np
import pytest

from void_engine import io, stages
from void_engine.errors import InputError
from void_engine.io.commands import ffprobe
from void_engine.io.maskfile import write_quadmask

from .test_display_side_data import encode_raw, outside, raw_plate, square_masks

# 12 frames over 1.5 s: six at 20 fps, then six at 5 fps (a phone slowing down in low light).
TIMES_MS = [0, 50, 100, 150, 200, 250, 300, 500, 700, 900, 1100, 1300]
SETPTS = "settb=1/1000,setpts='if(lt(N,6),N*0.05,0.3+(N-6)*0.2)/TB'"


def frame_times_ms(path) -> list[float]:
    """Presentation times of the first video stream's frames, in ms, as ffprobe reads them."""
    packets = ffprobe(str(path), select_streams="v:0", show_entries="packet=pts_time")
    return sorted(1000 * float(p["pts_time"]) for p in packets["packets"])


@pytest.fixture(params=["ffv1", "h264"])
def vfr_plate(request, tmp_path):
    frames = raw_plate(12, 64, 96)
    codec = (["-c:v", "ffv1", "-pix_fmt", "bgr0"] if request.param == "ffv1" else
             ["-c:v", "libx264", "-crf", "18", "-pix_fmt", "yuv420p"])  # B-frames reorder
    ext = ".mkv" if request.param == "ffv1" else ".mp4"
    path = encode_raw(tmp_path / f"vfr{ext}", frames, "-vf", SETPTS, "-fps_mode",
                      "passthrough", "-enc_time_base", "1/1000", *codec)
    assert np.allclose(frame_times_ms(path), TIMES_MS, atol=1)
    return path


def test_probe_keeps_each_frames_time(vfr_plate):
    info = io.probe(vfr_plate)
    assert info.variable_rate and info.frames == 12
    assert np.allclose([float(t * info.time_base) * 1000 for t in info.timestamps], TIMES_MS,
                       atol=1)
    assert "variable frame rate" in info.display_notes()[0]


@pytest.mark.parametrize("codec", ["ffv1", "prores", "h264"])
@pytest.mark.parametrize("review", [False, True])
def test_result_keeps_every_frame_time(tmp_path, vfr_plate, codec, review):
    masks = square_masks(12, 64, 96)
    mask = write_quadmask(str(tmp_path / "mask.mkv"), masks, fps=12)
    dec = stages.decode_shot(vfr_plate, mask, tmp_path / "w", shot_id="vfr",
                             model_size=(32, 48))
    enc = stages.encode_shot(dec, dec.clip_path, tmp_path / "out", codec=codec,
                             review=review)
    assert enc.frames == 12 and "timestamp kept" in enc.display_note
    assert enc.qc["frames"] == 12 and enc.qc["measured"] > 0  # either compositing path
    media = [enc.result_uri, enc.matte_uri] + ([enc.review_movie_uri] if review else [])
    for path in media:
        assert np.allclose(frame_times_ms(path), TIMES_MS, atol=1), path
    if codec == "ffv1" and vfr_plate.endswith(".mkv"):  # lossless end to end
        plate = list(io.read_frames(io.probe(vfr_plate)))
        for got, want, keep in zip(io.read_frames(io.probe(enc.result_uri)), plate,
                                   outside(masks), strict=True):
            assert np.array_equal(got[keep], want[keep])


def test_a_frame_range_keeps_its_frames_times_from_its_first(tmp_path, vfr_plate):
    mask = write_quadmask(str(tmp_path / "mask.mkv"), square_masks(12, 64, 96), fps=12)
    dec = stages.decode_shot(vfr_plate, mask, tmp_path / "w", shot_id="vfr",
                             frame_range=(4, 9), model_size=(32, 48))
    enc = stages.encode_shot(dec, dec.clip_path, tmp_path / "out", codec="ffv1",
                             review=False)
    want = [t - TIMES_MS[4] for t in TIMES_MS[4:10]]
    assert np.allclose(frame_times_ms(enc.result_uri), want, atol=1)


@pytest.mark.parametrize("codec", ["png", "exr"])
def test_sequences_cannot_keep_frame_times_and_are_refused(tmp_path, vfr_plate, codec):
    mask = write_quadmask(str(tmp_path / "mask.mkv"), square_masks(12, 64, 96), fps=12)
    dec = stages.decode_shot(vfr_plate, mask, tmp_path / "w", shot_id="vfr",
                             model_size=(32, 48))
    with pytest.raises(InputError, match=rf"shot vfr: plate has a variable frame rate and "
                                         rf"{codec} sequences have no frame times"):
        stages.encode_shot(dec, dec.clip_path, tmp_path / "out", codec=codec)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
