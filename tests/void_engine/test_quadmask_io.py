"""Quadmask files: quantize-on-read, lossless write, discovery, wrong-file refusal."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

from void_engine import quadmask as qm
from void_engine.errors import InputError


def moving_quadmask(n=12, h=96, w=160):
    frames = []
    for t in range(n):
        m = np.full((h, w), qm.KEEP, np.uint8)
        m[20:70, 30 + 5 * t:70 + 5 * t] = qm.AFFECTED
        m[30:60, 10 + 6 * t:40 + 6 * t] = qm.REMOVE
        m[40:50, 35 + 5 * t:45 + 5 * t] = qm.OVERLAP
        frames.append(m)
    return frames


def test_lossless_write_reads_back_exact(tmp_path):
    frames = moving_quadmask()
    for name in ("m.mkv", "m.mp4"):  # FFV1 grey and x264 -qp 0 yuv444p
        path = qm.write_quadmask(str(tmp_path / name), frames, fps=12)
        back = list(qm.read_quadmask(path))
        assert len(back) == len(frames)
        assert all(np.array_equal(a, b) for a, b in zip(frames, back, strict=False)), name


def test_lossy_x264_crf23_mask_reads_back_with_the_four_values(tmp_path):
    frames = moving_quadmask()
    src = qm.write_quadmask(str(tmp_path / "m.mkv"), frames, fps=12)
    lossy = tmp_path / "lossy.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", src, "-c:v", "libx264", "-crf", "23",
                    "-pix_fmt", "yuv420p", str(lossy)], check=True)
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(lossy), "-f", "rawvideo",
                          "-pix_fmt", "gray", "-"], capture_output=True, check=True).stdout
    assert not np.isin(np.frombuffer(raw, np.uint8), qm.VALUES).all()  # really lossy
    back = np.stack(list(qm.read_quadmask(str(lossy))))
    assert set(np.unique(back).tolist()) <= set(qm.VALUES)
    assert (back == np.stack(frames)).mean() >= 0.999


def test_find_quadmask_covers_names_the_reference_misses(samples_dir, tmp_path):
    # The reference globs quadmask_*.mp4 only, so BigBen's trimask_quadmask.mp4 is not found
    # there; we find it.
    assert qm.find_quadmask(str(samples_dir / "BigBen")).endswith("trimask_quadmask.mp4")
    assert qm.find_quadmask(str(samples_dir / "lime")).endswith("quadmask_0.mp4")
    (tmp_path / "quadmask_3.mp4").write_bytes(b"")
    assert qm.find_quadmask(str(tmp_path)).endswith("quadmask_3.mp4")
    (tmp_path / "quadmask_0.mp4").write_bytes(b"")
    assert qm.find_quadmask(str(tmp_path)).endswith("quadmask_0.mp4")
    assert qm.find_quadmask(str(tmp_path / "nothing")) is None


def test_sample_mask_decodes_to_the_four_values(samples_dir):
    frames = list(qm.read_quadmask(str(samples_dir / "BigBen" / "trimask_quadmask.mp4")))
    assert len(frames) == 50 and frames[0].shape == (360, 544)
    assert set(np.unique(np.stack(frames)).tolist()) <= set(qm.VALUES)


def test_a_plate_given_as_mask_is_refused(samples_dir):
    with pytest.raises(InputError, match="outside 0/63/127/255"):
        list(qm.read_quadmask(str(samples_dir / "BigBen" / "input_video.mp4")))


def test_proxy_resolution_mask_is_resized_nearest(tmp_path):
    frames = moving_quadmask(n=2)
    path = qm.write_quadmask(str(tmp_path / "m.mkv"), frames, fps=12)
    big = list(qm.read_quadmask(path, size=(192, 320)))
    assert big[0].shape == (192, 320)
    assert np.array_equal(big[0][::2, ::2], frames[0])
