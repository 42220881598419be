"""`void-batch masks` on its own for one shot: clicks -> SAM2 (tiny, RANDOM weights) -> VLM
(loopback, scripted) -> quadmask; and with the synthetic ground-truth black mask injected,
the four values where expected. Bad input is a one-line error and exit code 1."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from testkit.masks import good_answer
from testkit.masks import read_quadmask_frames as read
from void_batch.cli import main
from void_engine import quadmask

REPO_PY = sys.executable
TINY = ["--sam2-config", "configs/sam2.1/sam2.1_hiera_t.yaml", "--sam2-image-size", "256",
        "--sam2-device", "cpu", "--sam2-random-weights"]


def test_clicks_to_quadmask_end_to_end(push, grid, vlm_server, tmp_path):
    """The real console script, as a user runs it (tiny random-weight SAM2: the black mask is
    meaningless, so this checks the chain and the outputs' shape, not mask quality)."""
    vlm_server.play(("answer", json.dumps(good_answer(push["clip"], grid))))
    out = tmp_path / "M.mp4"
    clicks = json.dumps([{"frame": 6, "x": 50, "y": 48, "label": 1, "obj": 1}])
    proc = subprocess.run(
        [REPO_PY, "-m", "void_batch.cli", "masks", "--video", push["plate"], "--clicks", clicks,
         "--instruction", "remove the red box", "--vlm-url", vlm_server.url,
         "--vlm-model", "scripted", "--vlm-cache", "", "--out", str(out),
         "--report", str(tmp_path / "r.json"), *TINY],
        capture_output=True, text=True, timeout=600,
        env={**__import__("os").environ, "PYTHONHASHSEED": "0"})
    # the random weights are seeded (segment.RANDOM_WEIGHTS_SEED): this click gives a
    # non-empty, meaningless mask
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert "affected region: VLM scripted" in proc.stdout
    q = read(out)
    assert q.shape == push["clip"].frames.shape[:3]
    assert quadmask.is_quantized(q) and len(read(tmp_path / "M_black.mp4")) == len(q)
    assert report["path"] == "vlm" and report["details"]["vlm"]["objects"][0]["noun"] == \
        "blue box"
    assert len(vlm_server.requests) == 1


def test_ground_truth_black_mask_gives_four_values(push, grid, vlm_server, tmp_path, capsys):
    clip = push["clip"]
    vlm_server.play(("answer", json.dumps(good_answer(clip, grid))))
    out = tmp_path / "M.mkv"
    rc = main(["masks", "--video", push["plate"], "--black-mask", push["black"],
               "--instruction", "remove the red box", "--vlm-url", vlm_server.url,
               "--vlm-cache", "", "--out", str(out)])
    assert rc == 0
    q = read(out)
    t = len(q) - 1
    assert set(np.unique(q[t])) == set(quadmask.VALUES)
    assert (q[t][clip.pushed[t]] == quadmask.AFFECTED).all()
    assert not quadmask.affected_region(q[0]).any()


def test_vlm_outage_still_writes_a_quadmask_and_says_why(push, vlm_server, tmp_path, capsys):
    vlm_server.play(("status", 503))
    rc = main(["masks", "--video", push["plate"], "--black-mask", push["black"],
               "--vlm-url", vlm_server.url, "--vlm-retries", "0", "--vlm-cache", "",
               "--out", str(tmp_path / "M.mp4")])
    assert rc == 0
    line = capsys.readouterr().out
    assert "deterministic fallback (VLM not used: server_error: HTTP 503" in line
    assert quadmask.affected_region(read(tmp_path / "M.mp4")).any()


@pytest.mark.parametrize("args,needle", [
    (["--clicks", "[{bad json"], "--clicks is not valid JSON"),
    ([], "give --clicks and/or --boxes"),
    (["--clicks", '[{"frame": 99, "x": 1, "y": 1, "label": 1}]'], "frame 99 outside 0..11"),
    (["--clicks", '[{"frame": 0, "x": 1, "y": 1, "label": 1}]', "--out-ext", ".avi"],
     "use .mp4"),
    (["--clicks", '[{"frame": 0, "x": 1, "y": 1, "label": 1}]', "--no-random"],
     "no SAM2 checkpoint"),
])
def test_bad_input_is_one_line_error(push, tmp_path, capsys, args, needle):
    out = str(tmp_path / ("M.avi" if "--out-ext" in args else "M.mp4"))
    extra = [a for a in args if a not in ("--out-ext", ".avi", "--no-random")]
    tiny = [] if "--no-random" in args else TINY
    rc = main(["masks", "--video", push["plate"], "--out", out, *extra, *tiny])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and err[-1].startswith("error: ") and needle in err[-1]
