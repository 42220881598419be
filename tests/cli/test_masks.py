"""`void-batch masks` on its own for one shot: clicks -> SAM2 (tiny, RANDOM weights) -> VLM
(loopback, scripted) -> quadmask; and with the synthetic ground-truth black mask injected,
the four values where expected. Bad input is a one-line error and exit code 1."""
from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from testkit.masks import good_answer
from testkit.masks import read_quadmask_frames as read
from void_batch.cli import main
from void_engine import quadmask

REPO_PY = sys.executable
REPO = Path(__file__).resolve().parents[2]
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
        env={**os.environ, "PYTHONHASHSEED": "0"})
    # the random weights are seeded (segment.RANDOM_WEIGHTS_SEED): this click gives a
    # non-empty, meaningless mask
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert "affected region: vlm (VLM scripted answered" in proc.stdout
    q = read(out)
    assert q.shape == push["clip"].frames.shape[:3]
    assert quadmask.is_quantized(q) and len(read(tmp_path / "M_black.mp4")) == len(q)
    assert report["path"] == "vlm" and report["details"]["vlm"]["objects"][0]["noun"] == \
        "blue box"
    assert report["degraded"] is False and report["prompt"] == str(tmp_path / "prompt.json")
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
    assert "affected region: fallback (VLM failed: server_error: HTTP 503" in line
    assert "note: degraded result" in line
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


def readme_masks_commands() -> list[tuple[str, str | None]]:
    """Every `void-batch masks` command of README's "Masks from clicks" section, with the
    output line the README shows under it (a `# ...` line), if any."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Masks from clicks")[1].split("\n## ")[0]
    found = []
    for block in re.findall(r"```bash\n(.*?)```", section, re.S):
        lines = block.replace("\\\n", " ").splitlines()
        for i, line in enumerate(lines):
            if line.strip().startswith("void-batch masks"):
                shown = lines[i + 1] if i + 1 < len(lines) else ""
                found.append((line.strip(), shown[2:] if shown.startswith("# ") else None))
    return found


def test_readme_has_the_three_examples():
    cmds = [c for c, _ in readme_masks_commands()]
    assert len(cmds) == 3 and "--clicks" in cmds[0] and "--black-mask" in cmds[1]
    assert "--sam2-random-weights" in cmds[2] and "--sam2-random-weights" not in cmds[0]


@pytest.mark.parametrize("index", [0, 1, 2], ids=["no-checkpoint", "black-mask", "tiny-random"])
def test_readme_masks_example_runs_as_written(index, tmp_path, samples_dir):
    """The README's commands, run as a user would from a checkout beside ../shared (the
    path is substituted by the real shared folder), with no model configured."""
    command, shown = readme_masks_commands()[index]
    shared = str(samples_dir.parent)
    argv = [a.replace("../shared", shared) for a in shlex.split(command)]
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VOID_SAM2", "VOID_VLM", "VOID_GROUNDING"))}
    proc = subprocess.run([REPO_PY, "-m", "void_batch.cli", *argv[1:]], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    if shown and shown.startswith("error:"):
        assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1] == shown
        return
    assert proc.returncode == 0, proc.stderr
    if shown:
        assert fnmatch.fnmatch(proc.stdout.splitlines()[0], shown.replace("...", "*"))
    out = tmp_path / argv[argv.index("--out") + 1]
    q = read(out)
    assert q.shape[0] == 50 and quadmask.is_quantized(q)  # the plate's frame count
