"""Benchmark: VOID pass-1 transformer window and pass-2 flow + noise warp.

    python benchmarks/gpu_pass1.py                       # GPU: full size, every memory mode
    python benchmarks/gpu_pass1.py --modes full --no-compile
    python benchmarks/gpu_pass1.py --raft-weights raft_large_C_T_SKHT_V2-ff5fadd5.pth

Pass 1: the full-size 5B VOID transformer (48 input channels, 42 layers, 3072 wide) with RANDOM
weights (same FLOPs as the real one) on one 85-frame 384x672 window (22 latents, 11,088 video
tokens + 226 text tokens), 30 DDIM steps, for each memory mode (full bf16 on the GPU, model CPU
offload, FP8 weight storage + bf16 compute), with and without torch.compile (per block), on the
fastest SDPA backend. Prints s/step, window seconds, peak GPU memory and MFU against the GPU's
dense bf16 peak (one window forward ~ 174 TFLOP).
Pass 2: optical flow (RAFT-large from a local file if given - random weights otherwise, same
cost - else OpenCV DIS) + aligned noise warping on 85 frames at 384x672.

Without a GPU it runs a REDUCED configuration (tiny transformer, small frames) so the script
itself is exercised; those numbers say nothing about production speed.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

BASE_5B = dict(num_attention_heads=48, attention_head_dim=64, in_channels=48, out_channels=16,
               time_embed_dim=512, text_embed_dim=4096, num_layers=42, sample_width=300,
               sample_height=300, sample_frames=81, patch_size=2, patch_size_t=2,
               max_text_seq_length=226, use_rotary_positional_embeddings=True,
               use_learned_positional_embeddings=False, attention_bias=True, patch_bias=False)
REDUCED = dict(BASE_5B, num_attention_heads=2, attention_head_dim=64, num_layers=2,
               time_embed_dim=32, text_embed_dim=64)

BF16_PEAK_TFLOPS = {"H100 SXM": 989.0, "H100 NVL": 835.0, "H100 PCIe": 756.0, "H100": 989.0,
                    "H200": 989.0, "GH200": 989.0, "B200": 2250.0, "A100": 312.0, "L40S": 362.0}


def gpu_peak_tflops(override: float | None) -> float | None:
    if override:
        return override
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    for key, val in BF16_PEAK_TFLOPS.items():  # most specific names first
        if key in name:
            return val
    return None


def forward_flops(cfg: dict, latents: int, h: int, w: int, batch: int = 1) -> float:
    """2 FLOPs per MAC: per block 24*N*D^2 (QKV, out, 4x FFN) + 4*N^2*D (QK^T, AV)."""
    d = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    p, pt = cfg["patch_size"], cfg["patch_size_t"]
    n_vid = (latents // pt) * (h // 8 // p) * (w // 8 // p)
    n = n_vid + cfg["max_text_seq_length"]
    per_block = 24 * n * d * d + 4 * n * n * d
    embed = 2 * n_vid * (cfg["in_channels"] * p * p * pt) * d + 2 * n_vid * d * 128
    return batch * (cfg["num_layers"] * per_block + embed)


def build_transformer(cfg: dict, device, dtype):
    from diffusers import CogVideoXTransformer3DModel

    with torch.device("meta"):
        model = CogVideoXTransformer3DModel.from_config(cfg)
    model = model.to_empty(device=device)
    with torch.no_grad():  # random weights: the cost does not depend on their values
        for p in model.parameters():
            p.normal_(0, 0.02)
    return model.to(dtype).eval().requires_grad_(False)


def sdpa_backends():
    from torch.nn.attention import SDPBackend

    if not torch.cuda.is_available():
        return {"math/default": None}
    return {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
            "efficient": SDPBackend.EFFICIENT_ATTENTION}


def run_window(model, cfg, steps, latents, h, w, device, backend, offload=False):
    """`steps` DDIM steps of one window; returns (seconds per step list, window seconds)."""
    from contextlib import nullcontext

    from diffusers import DDIMScheduler
    from diffusers.models.embeddings import get_3d_rotary_pos_embed
    from torch.nn.attention import sdpa_kernel

    dtype = torch.bfloat16
    sched = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                          prediction_type="v_prediction", rescale_betas_zero_snr=True,
                          timestep_spacing="trailing", set_alpha_to_one=True, clip_sample=False)
    sched.set_timesteps(steps)
    g = torch.Generator("cpu").manual_seed(0)
    x = torch.randn(1, latents, 16, h // 8, w // 8, generator=g).to(device, dtype)
    cond = torch.randn(1, latents, 32, h // 8, w // 8, generator=g).to(device, dtype)
    text = torch.randn(1, 226, cfg["text_embed_dim"], generator=g).to(device, dtype)
    rope = get_3d_rotary_pos_embed(cfg["attention_head_dim"], None, (h // 16, w // 16),
                                   latents // 2, grid_type="slice", max_size=(150, 150),
                                   device=device)
    ctx = sdpa_kernel(backend) if backend is not None else nullcontext()
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    times = []
    sync()
    t_window = time.perf_counter()
    if offload:
        model.to(device)
    with torch.no_grad(), ctx:
        for t in sched.timesteps:
            sync()
            t0 = time.perf_counter()
            v = model(hidden_states=torch.cat([x, cond], 2), encoder_hidden_states=text,
                      timestep=t.expand(1).to(device), image_rotary_emb=rope,
                      return_dict=False)[0]
            x = sched.step(v.float(), t, x.float(), return_dict=False)[0].to(dtype)
            sync()
            times.append(time.perf_counter() - t0)
    if offload:
        model.to("cpu")
    sync()
    return times, time.perf_counter() - t_window


def bench_pass1(args, reduced: bool):
    cfg = REDUCED if reduced else BASE_5B
    device = "cuda" if torch.cuda.is_available() else "cpu"
    frames, (h, w) = args.frames, args.size
    latents = (frames - 1) // 4 + 1
    latents -= latents % 2
    steps = args.steps
    flops = forward_flops(cfg, latents, h, w)
    peak = gpu_peak_tflops(args.peak_tflops)
    print(f"pass 1: {'REDUCED ' if reduced else ''}transformer "
          f"{cfg['num_layers']}x{cfg['num_attention_heads'] * cfg['attention_head_dim']} "
          f"(random weights), window {frames} frames {h}x{w} = {latents} latents, {steps} steps, "
          f"{flops / 1e12:.3f} TFLOP per forward; GPU bf16 peak "
          f"{f'{peak:.0f} TFLOP/s' if peak else 'unknown (use --peak-tflops)'}")

    # Best SDPA backend, measured on the plain full-resident model.
    model = build_transformer(cfg, device, torch.bfloat16)
    best, best_t = None, float("inf")
    for name, backend in sdpa_backends().items():
        try:
            ts, _ = run_window(model, cfg, 2, latents, h, w, device, backend)
        except RuntimeError as e:
            print(f"  sdpa {name}: unavailable ({str(e).splitlines()[0][:80]})")
            continue
        print(f"  sdpa {name}: {ts[-1]:.3f} s/step")
        if ts[-1] < best_t:
            best, best_t = (name, backend), ts[-1]
    print(f"  best SDPA backend: {best[0]}")

    rows = []
    for mode in args.modes:
        for compiled in ([False, True] if args.compile and device == "cuda" else [False]):
            del model
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            model = build_transformer(cfg, "cpu" if mode == "model_cpu_offload" else device,
                                      torch.bfloat16)
            if mode == "fp8":
                model.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn,
                                               compute_dtype=torch.bfloat16)
            if compiled:
                for block in model.transformer_blocks:
                    block.compile()
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
            run_window(model, cfg, 2, latents, h, w, device, best[1],
                       offload=mode == "model_cpu_offload")  # warm-up (and compilation)
            ts, window = run_window(model, cfg, steps, latents, h, w, device, best[1],
                                    offload=mode == "model_cpu_offload")
            s_step = statistics.median(ts)
            mem = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0
            mfu = flops / s_step / (peak * 1e12) if peak else float("nan")
            rows.append((mode, compiled, s_step, window, mem, mfu))
            print(f"  {mode:18s} compile={str(compiled):5s} {s_step:8.3f} s/step  window "
                  f"{window:8.2f} s  peak GPU {mem:6.1f} GiB  MFU {mfu * 100:5.1f}%")
    return rows


def bench_pass2(args, reduced: bool):
    from void_engine import optical_flow as flow
    from void_engine.engines.void.noise_warp import aligned_warped_noise

    device = "cuda" if torch.cuda.is_available() else "cpu"
    frames, (h, w) = args.frames, args.size
    yy, xx = np.mgrid[0:h, 0:w]
    rng = np.random.RandomState(0)
    tex = rng.randint(0, 255, (h + 64, w + 64, 3)).astype(np.uint8)
    clip = np.stack([tex[i // 2:i // 2 + h, i:i + w] for i in range(frames)]).astype(np.uint8)
    if args.raft_weights or (device == "cuda" and not reduced):
        if args.raft_weights:
            model = flow.load_raft_large(args.raft_weights, device)
            label = f"RAFT-large ({args.raft_weights})"
        else:
            from torchvision.models.optical_flow import raft_large

            model = raft_large(weights=None).eval().to(device)
            label = "RAFT-large (RANDOM weights: timing only)"
        fn = lambda a, b: flow.raft_flow(a, b, model)  # noqa: E731
    else:
        fn, label = (lambda a, b: flow.dis_flow(a, b, "medium")), "OpenCV DIS medium (CPU)"
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    t0 = time.perf_counter()
    half = np.stack([__import__("cv2").resize(f, (w // 2, h // 2),
                                              interpolation=__import__("cv2").INTER_AREA)
                     for f in clip])
    flows = [fn(half[i], half[i + 1]) for i in range(frames - 1)]
    sync()
    t_flow = time.perf_counter() - t0
    t0 = time.perf_counter()
    noise = aligned_warped_noise(clip, (h // 8, w // 8), lambda a, b: flows.pop(0),
                                 torch.Generator("cpu").manual_seed(0), device)
    sync()
    t_warp = time.perf_counter() - t0
    print(f"pass 2 noise: {'REDUCED ' if reduced else ''}{frames} frames {h}x{w}, flow "
          f"{label}: {t_flow:.2f} s; noise warp (state {h * 4}x{w * 4}, {device}): "
          f"{t_warp:.2f} s; total "
          f"{t_flow + t_warp:.2f} s -> start latents {tuple(noise.shape)}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--modes", default="full,model_cpu_offload,fp8")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--frames", type=int, default=None)
    ap.add_argument("--size", default=None, help="HxW, default 384x672")
    ap.add_argument("--no-compile", dest="compile", action="store_false")
    ap.add_argument("--peak-tflops", type=float, default=None)
    ap.add_argument("--raft-weights", default=None)
    ap.add_argument("--skip-pass2", action="store_true")
    args = ap.parse_args(argv)
    reduced = not torch.cuda.is_available()
    if reduced:
        print("NO GPU: running a REDUCED configuration on the CPU (tiny transformer, 21 frames at "
              "64x112, 2 steps). These numbers are not production numbers.")
    args.modes = [m for m in args.modes.split(",") if m]
    if reduced:
        args.modes = [m for m in args.modes if m != "model_cpu_offload"] or ["full"]
    args.steps = args.steps or (2 if reduced else 30)
    args.frames = args.frames or (21 if reduced else 85)
    args.size = tuple(map(int, (args.size or ("64x112" if reduced else "384x672")).split("x")))
    torch.manual_seed(0)
    bench_pass1(args, reduced)
    if not args.skip_pass2:
        bench_pass2(args, reduced)


if __name__ == "__main__":
    main()
