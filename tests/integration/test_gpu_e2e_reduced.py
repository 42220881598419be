"""benchmarks/gpu_e2e.py in its reduced mode (what runs without a GPU): it writes a random VOID
checkpoint in the real layout, runs `void-batch remove` through the CLI with profiling, then a
4-shot manifest through `void-batch run`, says loudly that the figures are not production
ones, and reports every figure it promises."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from testkit.flows import REPO


def test_gpu_e2e_reduced_mode(tmp_path):
    out = tmp_path / "e2e.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH"))
                                         if p)}
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_e2e.py"), "--reduced",
                           "--workdir", str(tmp_path / "work"), "--json", str(out)],
                          env=env, capture_output=True, text=True, timeout=800)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "REDUCED CONFIGURATION" in proc.stdout and "NOT production" in proc.stdout
    res = json.loads(out.read_text())
    assert res["reduced"] and res["write_checkpoint_s"] > 0
    ckpt = tmp_path / "work" / "ckpt"
    for part in ("void_pass1.safetensors", "void_pass2.safetensors", "transformer/config.json",
                 "vae/config.json", "text_encoder/config.json", "tokenizer/spiece.model",
                 "scheduler/scheduler_config.json"):
        assert (ckpt / part).exists(), part

    (row,) = res["remove"]  # reduced: the "full" memory mode, no compile
    assert row["mode"] == "full" and row["compile"] is False
    assert row["pass1_windows"] == 2 and len(row["pass1_window_s"]) == 2  # 29 frames, 2 windows
    for key in ("remove_wall_s", "load_pass1_s", "load_pass2_s", "pass1_s", "text_encoder_s",
                "vae_encode_s", "vae_decode_s", "pass2_noise_s", "pass2_sampling_s",
                "pass2_transformer_s", "pass1_tflops_per_s"):
        assert row[key] > 0, key
    assert row["peak_gpu_gib"] is None and row["pass1_mfu"] is None  # no GPU: none claimed
    assert (tmp_path / "work" / "remove_full_False.mkv").exists()

    shots = [r for r in res["batch"] if r["shot"].startswith("shot")]
    assert sorted(r["shot"] for r in shots) == ["shot0", "shot1", "shot2", "shot3"]
    assert all(r["status"] == "ok" and r["pass1"] > 0 and r["pass2"] > 0 for r in shots)
