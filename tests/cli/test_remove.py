"""`void-batch remove` end to end on the sample clips, and its one-line errors."""
from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest

from void_batch.cli import main
from void_engine import io
from void_engine import quadmask as qm
from void_engine.review import psnr


def check_result(samples_dir, name, out, frames=None):
    plate = io.probe(str(samples_dir / name / "input_video.mp4"))
    result = io.probe(str(out))
    first, count = (0, plate.frames) if frames is None else (frames[0],
                                                             frames[1] - frames[0] + 1)
    assert (result.size, result.frames) == (plate.size, count)
    if result.kind == "video":  # image sequences carry no rate
        assert result.fps == plate.fps
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (65, 65))  # 32 px dilation
    masks = qm.read_quadmask(qm.find_quadmask(str(samples_dir / name)), first=first,
                             count=count)
    worst = float("inf")
    for a, b, m in zip(io.read_frames(plate, first=first, count=count),
                       io.read_frames(result), masks, strict=False):
        outside = cv2.dilate((m != qm.KEEP).astype(np.uint8), kernel) == 0
        worst = min(worst, psnr(a, b, outside))
    assert worst >= 45


def run_cli(*args):
    """`void-batch remove` with the CPU engine unless the test names one (the default engine
    is VOID, which needs weights)."""
    engine = [] if "--engine" in args else ["--engine", "propagate"]
    return main(["remove", *engine, *args])


@pytest.mark.parametrize("name", ["BigBen", "ducky-float"])
def test_remove_small_samples_ffv1(samples_dir, tmp_path, name):
    out = tmp_path / f"{name}.mkv"
    args = ["--video", str(samples_dir / name / "input_video.mp4"), "--engine", "propagate",
            "--codec", "ffv1", "--out", str(out)]
    if name == "ducky-float":
        args.append("--no-review")  # review media are covered on BigBen; keep this quick
    assert run_cli(*args) == 0
    check_result(samples_dir, name, out)
    if name == "BigBen":
        assert (tmp_path / "BigBen_review.mp4").is_file()
        assert (tmp_path / "BigBen_contact.png").is_file()
        assert len(list(qm.read_quadmask(str(tmp_path / "BigBen_matte.mkv")))) == 50
    else:
        assert io.probe(str(out)).audio_codec == "aac"  # the plate's audio came along


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lime", "moving_ball"])
def test_remove_4k_samples_ffv1(samples_dir, tmp_path, name):
    out = tmp_path / f"{name}.mkv"
    assert run_cli("--video", str(samples_dir / name / "input_video.mp4"), "--engine",
                   "propagate", "--codec", "ffv1", "--out", str(out), "--no-review") == 0
    check_result(samples_dir, name, out)


def test_remove_frame_range_png_sequence(samples_dir, tmp_path):
    out = tmp_path / "seq"
    assert run_cli("--video", str(samples_dir / "BigBen" / "input_video.mp4"),
                   "--frames", "10-17", "--codec", "png", "--out", str(out),
                   "--no-review", "--prompt", "a river") == 0
    names = sorted(os.listdir(out))
    assert len(names) == 8 and names[0] == "seq.000010.png"
    check_result(samples_dir, "BigBen", out, frames=(10, 17))


# --- bad input: exit 1 and one specific line ---------------------------------------------
@pytest.fixture
def bigben(samples_dir):
    return samples_dir / "BigBen"


def expect_error(capsys, args, message):
    assert run_cli(*args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "no error printed"
    line = err[-1]
    assert line.startswith("error: ") and message in line, line


def write_mask(path, frames, size, fill=qm.KEEP, hole=True):
    h, w = size
    masks = []
    for _ in range(frames):
        m = np.full((h, w), fill, np.uint8)
        if hole:
            m[10:20, 10:20] = qm.REMOVE
        masks.append(m)
    return qm.write_quadmask(str(path), masks, fps=12)


def test_error_missing_file(capsys, tmp_path):
    expect_error(capsys, ["--video", str(tmp_path / "nope.mp4"), "--out",
                          str(tmp_path / "o.mkv")], "plate not found")


def test_error_missing_quadmask(capsys, tmp_path, bigben):
    expect_error(capsys, ["--video", str(bigben / "input_video.mp4"), "--quadmask",
                          str(tmp_path / "m.mp4"), "--out", str(tmp_path / "o.mkv")],
                 "quadmask not found")


def test_error_unreadable_file(capsys, tmp_path, bigben):
    if os.geteuid() == 0:
        pytest.skip("root reads files whatever their mode")
    plate = tmp_path / "p.mp4"
    plate.write_bytes((bigben / "input_video.mp4").read_bytes())
    plate.chmod(0)
    expect_error(capsys, ["--video", str(plate), "--quadmask",
                          str(bigben / "trimask_quadmask.mp4"), "--out",
                          str(tmp_path / "o.mkv")], "permission denied")


def test_error_unreadable_folder_of_frames(capsys, tmp_path, bigben):
    (tmp_path / "frames").mkdir()
    expect_error(capsys, ["--video", str(tmp_path / "frames"), "--quadmask",
                          str(bigben / "trimask_quadmask.mp4"), "--out",
                          str(tmp_path / "o.mkv")], "holds no .png/.exr frames")


def test_error_corrupt_video(capsys, tmp_path, bigben):
    bad = tmp_path / "bad.mp4"
    data = (bigben / "input_video.mp4").read_bytes()
    bad.write_bytes(data[: len(data) // 3])  # truncated download
    expect_error(capsys, ["--video", str(bad), "--quadmask",
                          str(bigben / "trimask_quadmask.mp4"), "--out",
                          str(tmp_path / "o.mkv")], "is not a readable video")


def test_error_mask_size_mismatch(capsys, tmp_path, bigben):
    mask = write_mask(tmp_path / "m.mkv", 50, (100, 100))
    expect_error(capsys, ["--video", str(bigben / "input_video.mp4"), "--quadmask", mask,
                          "--out", str(tmp_path / "o.mkv")],
                 "quadmask is 100x100 but the plate is 544x360")


def test_error_frame_count_mismatch(capsys, tmp_path, bigben):
    mask = write_mask(tmp_path / "m.mkv", 12, (360, 544))
    expect_error(capsys, ["--video", str(bigben / "input_video.mp4"), "--quadmask", mask,
                          "--out", str(tmp_path / "o.mkv")],
                 "quadmask has 12 frames but the plate has 50")


def test_error_values_outside_the_four(capsys, tmp_path, bigben):
    expect_error(capsys, ["--video", str(bigben / "input_video.mp4"), "--quadmask",
                          str(bigben / "input_video.mp4"), "--out", str(tmp_path / "o.mkv")],
                 "values outside 0/63/127/255")


def test_error_empty_mask(capsys, tmp_path, bigben):
    mask = write_mask(tmp_path / "m.mkv", 50, (360, 544), hole=False)
    expect_error(capsys, ["--video", str(bigben / "input_video.mp4"), "--quadmask", mask,
                          "--out", str(tmp_path / "o.mkv")], "quadmask is empty")


def test_error_unwritable_output(capsys, tmp_path, bigben):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    expect_error(capsys, ["--video", str(bigben / "input_video.mp4"), "--out",
                          str(blocker / "o.mkv")], "is not a folder")


@pytest.mark.parametrize("frames,message", [("40-10", "is not a range"),
                                            ("ten", "is not a range"),
                                            ("10-80", "outside the plate's frames 0-49")])
def test_error_bad_frame_range(capsys, tmp_path, bigben, frames, message):
    expect_error(capsys, ["--video", str(bigben / "input_video.mp4"), "--frames", frames,
                          "--out", str(tmp_path / "o.mkv")], message)


def test_error_codec_and_out_disagree(capsys, tmp_path, bigben):
    expect_error(capsys, ["--video", str(bigben / "input_video.mp4"), "--codec", "ffv1",
                          "--out", str(tmp_path / "o.mp4")], "does not match --codec ffv1")


def test_prompt_defaults_to_prompt_json(samples_dir):
    from void_batch.commands.remove import default_prompt

    want = json.loads((samples_dir / "lime" / "prompt.json").read_text())["bg"]
    assert default_prompt(str(samples_dir / "lime" / "input_video.mp4")) == want


def test_engine_without_weights_refuses_weights(capsys, tmp_path, bigben):
    expect_error(capsys, ["--video", str(bigben / "input_video.mp4"), "--weights",
                          str(tmp_path), "--out", str(tmp_path / "o.mkv")],
                 "takes no --weights")
