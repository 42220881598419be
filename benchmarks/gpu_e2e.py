"""Benchmark: the VOID production path end to end, through the code a user runs.

    python benchmarks/gpu_e2e.py                          # GPU: full size, every mode
    python benchmarks/gpu_e2e.py --modes full,fp8 --compile off --no-batch
    python benchmarks/gpu_e2e.py --reduced                # force the small CPU configuration

1. Writes a RANDOM-WEIGHT VOID checkpoint in the real layout (benchmarks/_void_checkpoint.py:
   48-channel transformer as void_pass1/2.safetensors, base folders with a random T5-XXL
   encoder and CogVideoX VAE of the real configs) and a synthetic shot (moving texture, an
   object to remove and its affected region).
2. `void-batch remove --engine void --weights DIR --passes 2` on that shot, in this process,
   once per memory mode (full, model_cpu_offload, fp8) and torch.compile setting, with the
   engine's profiling on: model load, pass-1 time per temporal window, text encoder, VAE
   encode/decode, host-side tensor conversion, pass-2 flow + noise warp + sampling, peak GPU
   memory, and the pass-1 MFU against the GPU's dense bf16 peak.
3. A 4-shot manifest through `void-batch run` (Prefect + Ray, a subprocess), so the model stays
   resident in the engine actor: seconds per shot and stage from its report (first shot, which
   loads the model, vs the later ones).

Without a GPU it runs a REDUCED configuration (tiny random model, small synthetic shots, 2
steps, CPU) and says so: those figures exercise the script, they are not production numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for p in (str(REPO), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

from _void_checkpoint import TRANSFORMER, TRANSFORMER_COMMON, write_checkpoint  # noqa: E402
from gpu_pass1 import forward_flops, gpu_peak_tflops  # noqa: E402

PROMPT = "A wooden table with a blue box in a bright room."
# `void-batch remove` runs the reference's 30 + 50 steps; the batch rows may ask for fewer.
# Reduced: the tiny model at 32x48 (its smallest size), 25 frames -> 29 = two 21-frame windows.
FULL = dict(size="full", shot=(720, 1280), frames=62, batch_steps=(30, 50), model_size=None,
            modes=["full", "model_cpu_offload", "fp8"], compile=[False, True])
REDUCED = dict(size="tiny", shot=(72, 128), frames=25, batch_steps=(2, 2), model_size=(32, 48),
               modes=["full"], compile=[False])


def write_shot(folder: Path, size, frames: int, seed: int = 0) -> Path:
    """A plate (texture panning right, a disc crossing it) + its quadmask (disc = remove,
    a band under it = affected) + prompt.json, in the sample layout."""
    from void_engine.io import open_writer

    rng = np.random.default_rng(seed)
    h, w = size
    tex = rng.integers(0, 256, (h, w + 2 * frames, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    folder.mkdir(parents=True, exist_ok=True)
    fps = Fraction(12)
    with open_writer(str(folder / "plate.mkv"), "ffv1", fps=fps, size=size) as plate, \
            open_writer(str(folder / "quadmask.mkv"), "ffv1", fps=fps, size=size,
                        channels=1) as mask:
        for t in range(frames):
            cx, cy, r = w * (0.2 + 0.6 * t / frames), h * 0.45, max(4, h // 8)
            disc = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
            frame = tex[:, 2 * (frames - t):2 * (frames - t) + w].copy()
            frame[disc] = (200, 40, 40)
            plate.write(frame)
            m = np.full((h, w), 255, np.uint8)
            m[(np.abs(xx - cx) < 1.5 * r) & (yy > cy + r) & (yy < cy + 2 * r)] = 127
            m[disc] = 0
            mask.write(m)
    (folder / "prompt.json").write_text(json.dumps({"bg": PROMPT}))
    return folder


# --- one `void-batch remove`, profiled ------------------------------------------------------------
def summarize(events: list[dict], cfg: dict) -> dict:
    """Seconds per part of the path from the engine's profiling events; MFU of pass-1 windows."""
    def total(name, **match):
        return sum(e["seconds"] for e in events if e["name"] == name
                   and all(e.get(k) == v for k, v in match.items()))

    windows = [e for e in events if e["name"] == "transformer.window"]
    pass1_windows = [e for e in windows if e["batch"] == 1]
    flops = sum(forward_flops(cfg, e["latents"], e["height"], e["width"], e["batch"])
                for e in pass1_windows)
    seconds = sum(e["seconds"] for e in pass1_windows)
    per_window: dict[int, float] = {}
    for e in pass1_windows:
        per_window[e["window"]] = per_window.get(e["window"], 0.0) + e["seconds"]
    peak = gpu_peak_tflops(None)
    return {
        "load_pass1_s": total("load.pass1"), "load_pass2_s": total("load.pass2"),
        "load_transformer_s": total("load.transformer"), "load_t5_s": total("load.text_encoder"),
        "load_vae_s": total("load.vae"),
        "pass1_s": total("pass1"), "pass1_windows": len(per_window),
        "pass1_window_s": [round(v, 3) for _, v in sorted(per_window.items())],
        "text_encoder_s": total("text_encoder"), "host_to_tensors_s": total("host.to_tensors"),
        "vae_encode_s": total("vae_encode"), "vae_decode_s": total("vae_decode"),
        "pass2_flow_s": total("pass2.flow"),
        "pass2_noise_s": total("pass2.flow_and_noise") - total("pass2.flow"),
        "pass2_sampling_s": total("pass2.sampling"),
        "pass2_transformer_s": sum(e["seconds"] for e in windows if e["batch"] == 2),
        "pass1_tflops_per_s": flops / seconds / 1e12 if seconds else 0.0,
        "pass1_mfu": flops / seconds / (peak * 1e12) if seconds and peak else None,
    }


def run_remove(ckpt: Path, shot: Path, out: Path, mode: str, compiled: bool, plan: dict) -> dict:
    from void_batch.cli import main as cli
    from void_engine.engines.void import profiling

    args = ["remove", "--engine", "void", "--weights", str(ckpt), "--passes", "2",
            "--video", str(shot / "plate.mkv"), "--quadmask", str(shot / "quadmask.mkv"),
            "--out", str(out), "--no-review", "--engine-opt", f"memory_mode={mode}",
            "--engine-opt", f"compile={str(compiled).lower()}"]
    if mode == "fp8" or torch.cuda.is_available():
        args += ["--engine-opt", "dtype=bf16"]
    if plan["model_size"]:
        args += ["--model-size", "{1}x{0}".format(*plan["model_size"])]  # WxH
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    with profiling.collect() as events:
        rc = cli(args)
    wall = time.perf_counter() - t0
    if rc != 0:
        raise RuntimeError(f"void-batch remove failed ({mode}, compile={compiled})")
    cfg = {**TRANSFORMER_COMMON, **TRANSFORMER[plan["size"]], "in_channels": 48}
    row = {"mode": mode, "compile": compiled, "remove_wall_s": wall, **summarize(events, cfg)}
    row["peak_gpu_gib"] = (torch.cuda.max_memory_allocated() / 2**30
                           if torch.cuda.is_available() else None)
    return row


# --- a 4-shot manifest through `void-batch run` ---------------------------------------------------
def run_batch(ckpt: Path, work: Path, plan: dict, shots: int = 4,
              timeout: float = 1800) -> list[dict]:
    """`void-batch run` in a subprocess (its own Prefect server and Ray); per-shot seconds
    per stage from report.parquet, in the order the shots finished."""
    import pandas as pd

    from manifests.loader import write_manifest

    folders = [write_shot(work / "shots" / f"shot{i}", plan["shot"], plan["frames"], seed=i)
               for i in range(shots)]
    steps, pass2_steps = plan["batch_steps"]
    rows = [{"shot_id": f.name, "plate_uri": str(f / "plate.mkv"),
             "quadmask_uri": str(f / "quadmask.mkv"), "prompt": PROMPT, "passes": "2",
             "codec": "ffv1", "steps": steps, "pass2_steps": pass2_steps} for f in folders]
    manifest = write_manifest(rows, str(work / "manifest.parquet"))
    # Its own Prefect server and Ray for this run (ended with it): a benchmark leaves nothing
    # running, and measures a model load like a first nightly run does.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VOID_BATCH_LOCAL_SERVICES": "temporary",
           "PYTHONPATH": os.pathsep.join(
               p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    cmd = [sys.executable, "-m", "void_batch.cli", "run", manifest, "--out", str(work / "out"),
           "--engine", "void", "--weights", str(ckpt), "--cache", str(work / "cache"),
           "--no-review"]
    if plan["model_size"]:
        cmd += ["--engine-opt", "model_size={1}x{0}".format(*plan["model_size"])]  # WxH
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"void-batch run failed ({proc.returncode}):\n"
                           f"{(proc.stdout + proc.stderr)[-3000:]}")
    report = pd.read_parquet(work / "out" / "report.parquet")
    cols = [c for c in report.columns if c.startswith("seconds_")]
    report = report.sort_values("seconds_total", ascending=False)  # the model load is in one
    out = [{"shot": r["shot_id"], "status": r["status"],
            **{c.removeprefix("seconds_"): float(r[c] or 0.0) for c in cols}}
           for _, r in report.iterrows()]
    out.append({"shot": "(run wall clock)", "total": wall})
    return out


# --- the run --------------------------------------------------------------------------------------
def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def print_remove(rows: list[dict]) -> None:
    keys = ["mode", "compile", "remove_wall_s", "load_pass1_s", "load_pass2_s", "pass1_s",
            "pass1_window_s", "text_encoder_s", "vae_encode_s", "vae_decode_s",
            "host_to_tensors_s", "pass2_flow_s", "pass2_noise_s", "pass2_sampling_s",
            "pass2_transformer_s", "peak_gpu_gib", "pass1_tflops_per_s", "pass1_mfu"]
    for r in rows:
        print("  " + "  ".join(f"{k}={_fmt(r.get(k))}" for k in keys))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reduced", action="store_true", help="small CPU configuration")
    ap.add_argument("--modes", help="memory modes, comma-separated (default: all on a GPU)")
    ap.add_argument("--compile", choices=("off", "on", "both"), help="torch.compile blocks")
    ap.add_argument("--no-batch", action="store_true", help="skip the `void-batch run` part")
    ap.add_argument("--workdir", help="keep the checkpoint and outputs here (default: temp)")
    ap.add_argument("--json", help="write every figure to this file")
    args = ap.parse_args(argv)
    reduced = args.reduced or not torch.cuda.is_available()
    plan = dict(REDUCED if reduced else FULL)
    if reduced:
        print("=" * 78 + "\nREDUCED CONFIGURATION" + ("" if torch.cuda.is_available() else
              " (NO GPU)") + ": tiny RANDOM-WEIGHT model, small synthetic shots, CPU.\n"
              "These figures exercise the script; they are NOT production numbers.\n" + "=" * 78)
    if reduced and not torch.cuda.is_available():
        # One intra-op thread: on a small shared CPU box torch's threads mostly wait on each
        # other (measured on 2 busy cores: the noise warp 0.58 s with 1 thread, 5.1 s with 2).
        torch.set_num_threads(1)
    if args.modes:
        plan["modes"] = [m for m in args.modes.split(",") if m]
    if args.compile:
        plan["compile"] = {"off": [False], "on": [True], "both": [False, True]}[args.compile]
    work = Path(args.workdir or tempfile.mkdtemp(prefix="void-e2e-"))
    results: dict = {"reduced": reduced, "device": torch.cuda.get_device_name()
                     if torch.cuda.is_available() else "cpu", "plan": plan}
    try:
        t0 = time.perf_counter()
        dtype = torch.bfloat16 if torch.cuda.is_available() and not reduced else torch.float32
        ckpt = write_checkpoint(work / "ckpt", plan["size"], dtype,
                                "cuda" if torch.cuda.is_available() else "cpu")
        results["write_checkpoint_s"] = time.perf_counter() - t0
        print(f"random {plan['size']} VOID checkpoint written in "
              f"{results['write_checkpoint_s']:.1f} s -> {ckpt}")
        shot = write_shot(work / "shot", plan["shot"], plan["frames"])
        print(f"void-batch remove: {plan['frames']} frames {plan['shot'][1]}x{plan['shot'][0]}, "
              f"passes 2 (30 + 50 steps)")
        results["remove"] = []
        for mode in plan["modes"]:
            for compiled in plan["compile"]:
                row = run_remove(ckpt, shot, work / f"remove_{mode}_{compiled}.mkv", mode,
                                 compiled, plan)
                results["remove"].append(row)
                print_remove([row])
        if not args.no_batch:
            print(f"void-batch run: 4 shots, steps {plan['batch_steps']}, model resident")
            results["batch"] = run_batch(ckpt, work / "batch", plan)
            for r in results["batch"]:
                print("  " + "  ".join(f"{k}={_fmt(v)}" for k, v in r.items()))
    finally:
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2, default=str))
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return results


if __name__ == "__main__":
    main()
