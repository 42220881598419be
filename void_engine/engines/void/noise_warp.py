"""Go-with-the-Flow noise warping for VOID pass 2, written from its description (docs/parity.md
says what must match the reference). No network, no subprocess, no `rp`; every random draw can
be seeded.

State: a high-resolution tensor (3 + C, H, W) per pixel: sub-pixel offsets dx, dy (kept at zero
in this mode), a weight w and C noise channels. Each flow step
  1. expansion: every pixel pulls the state from where the negated, rounded flow points
     (nearest; zeros from outside the frame, weight reset to 1);
  2. contraction: every pixel is pushed to its rounded destination and colliding pixels are
     scatter-added (noise as sum(w*n)/sqrt(sum(w^2)), weights summed); pushed-out pixels are
     replaced by the "init" state (noise 0, weight 1) and splat onto themselves;
  3. pixels reached by the contraction take it, the others the expansion;
  4. re-Gaussianize both halves together: pixels with exactly equal noise (duplicates made by
     the nearest lookup) form a group; each becomes n/sqrt(k) + (fresh noise - its group mean);
  5. weights are shared out over the group, renormalised to mean 1, +1e-5, ^0.9999.
A frame's noise is the weighted area-average of the state, scaled back to unit variance.

The global torch RNG is used when no generator is given: that reproduces the reference exactly.
"""
from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F

DX, DY, W = 0, 1, 2  # state channels; noise is state[3:]


def _randn(shape, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    if generator is None:
        return torch.randn(shape, dtype=like.dtype, device=like.device)
    return torch.randn(shape, generator=generator, dtype=like.dtype,
                       device=generator.device).to(like.device)


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """CHW resize: identity at the same size, area when shrinking, else bilinear."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x.clone()
    if size[0] <= x.shape[-2] and size[1] <= x.shape[-1]:
        return F.interpolate(x[None], size=size, mode="area")[0]
    return F.interpolate(x[None], size=size, mode="bilinear", align_corners=False)[0]


# ATen's intra-op grain: a full reduction of fewer elements runs on one thread.
TORCH_PARALLEL_GRAIN = 32768


def fixed_order_mean(x: torch.Tensor) -> torch.Tensor:
    """The mean of a 2-D map with an order of summation that does not depend on the threads.

    torch's full reduction splits a tensor of TORCH_PARALLEL_GRAIN elements or more over the
    CPU threads, so its rounding would change with the thread count, and through
    re-Gaussianization's exact-equality groups the whole warped noise with it (the reference's
    known drift). Summing along rows (one thread per row, fixed order), then over the rows,
    does not. Smaller maps keep torch's own (serial) mean: the order the reference used.
    """
    if x.numel() < TORCH_PARALLEL_GRAIN:
        return x.mean()
    return x.sum(dim=-1).sum() / x.numel()


def _grid(h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(h, device=like.device),
                            torch.arange(w, device=like.device), indexing="ij")
    return torch.stack([xs, ys]).to(like.dtype)


def _gather_shift(x: torch.Tensor, sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    """out[:, y, x] = x[:, y + sy, x + sx] for integer shifts, zeros outside (nearest remap)."""
    c, h, w = x.shape
    gx, gy = _grid(h, w, sx).long()
    tx, ty = gx + sx.long(), gy + sy.long()
    valid = (tx >= 0) & (tx < w) & (ty >= 0) & (ty < h)
    idx = (ty.clamp(0, h - 1) * w + tx.clamp(0, w - 1)).view(-1)
    out = x.reshape(c, -1)[:, idx].view(c, h, w)
    return out * valid.to(x.dtype)


class _Splat:
    """out[:, y + sy, x + sx] += x[:, y, x] for fixed integer shifts; out-of-frame targets
    dropped. The targets are computed once per warp and reused for every splat of that warp
    (index_add_ sums each target in source-pixel order, so grouping channels changes nothing)."""

    def __init__(self, sx: torch.Tensor, sy: torch.Tensor):
        h, w = sx.shape
        gx, gy = _grid(h, w, sx).long()
        tx, ty = gx + sx.long(), gy + sy.long()
        self.valid = ((tx >= 0) & (tx < w) & (ty >= 0) & (ty < h)).view(-1)
        self.idx = (ty * w + tx).view(-1)[self.valid]
        self.h, self.w = h, w

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[0]
        src = x.reshape(c, -1).t()[self.valid]
        out = torch.zeros(self.h * self.w, c, dtype=x.dtype, device=x.device)
        out.index_add_(0, self.idx, src)
        return out.t().reshape(c, self.h, self.w)


def regaussianize(noise: torch.Tensor, generator: torch.Generator | None = None):
    """Make duplicated noise pixels independent again, keeping each group's sum.

    Groups are pixels with exactly equal values in channel 0. Returns (noise, counts (1,H,W)).
    """
    c, h, w = noise.shape
    _, inverse, counts = torch.unique(noise[0].reshape(-1), return_inverse=True,
                                      return_counts=True)
    foreign = _randn(noise.shape, noise, generator)
    sums = torch.zeros(counts.numel(), c, dtype=noise.dtype, device=noise.device)
    sums.index_add_(0, inverse, foreign.reshape(c, -1).t())
    means = sums / counts[:, None]
    mean_img = means[inverse].t().reshape(c, h, w)
    count_img = counts[inverse].reshape(1, h, w).to(noise.dtype)
    return noise / count_img ** 0.5 + (foreign - mean_img), count_img


def warp_state(state: torch.Tensor, flow: torch.Tensor,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """One warp step of the (3 + C, H, W) state by a (2, H, W) flow at the state's resolution."""
    _, h, w = state.shape
    grid = _grid(h, w, state)
    init = torch.zeros_like(state)
    init[W] = 1

    # 1. Expansion: pull along the negated, rounded flow (nearest, zeros outside).
    back = -flow.round()
    expand = _gather_shift(state, back[0], back[1])
    expand[W][expand[W] == 0] = 1

    # 2. Contraction: push to the rounded destination; pixels leaving the frame become "init".
    shrink = state.clone()
    shrink[:2] += flow
    pos = (grid + shrink[:2]).round()
    inside = ((pos[0] >= 0) & (pos[0] < w) & (pos[1] >= 0) & (pos[1] < h))[None]
    shrink = torch.where(inside, shrink, init)
    shift = shrink[:2].round()
    shrink[:2] = 0  # sub-pixel offsets are not carried in this mode ("none")

    splat = _Splat(shift[0], shift[1])
    reached = splat(torch.ones(1, h, w, dtype=state.dtype, device=state.device)) > 0
    expand = torch.where(reached, init, expand)

    # 3.-4. Re-Gaussianize both halves together, share the weights over each group.
    both = torch.cat([shrink, expand], dim=2)
    both[3:], counts = regaussianize(both[3:], generator)
    both[W] = (both[W] / counts[0]).nan_to_num()
    shrink, expand = both.chunk(2, dim=2)

    weight = shrink[W][None]
    sums = splat(torch.cat([weight, shrink[:2] * weight, shrink[3:] * weight, weight ** 2]))
    out_shrink = torch.empty_like(shrink)
    out_shrink[W] = sums[0]
    out_shrink[:2] = sums[1:3] / sums[:1]
    out_shrink[3:] = sums[3:-1] / sums[-1:].sqrt()

    # 5. Choose, renormalise the weights.
    out = torch.where(reached, out_shrink, expand)
    out[W] = out[W] / fixed_order_mean(out[W])
    out[W] += 1e-5
    out[W] **= 0.9999
    return out


class NoiseWarper:
    """Warps C channels of N(0,1) noise of size (h, w) along successive optical flows."""

    def __init__(self, channels: int, height: int, width: int, *, scale_factor: int = 1,
                 device="cpu", dtype=torch.float32, generator: torch.Generator | None = None):
        self.c, self.h, self.w, self.scale = channels, height, width, scale_factor
        self.generator = generator
        ref = torch.empty(0, dtype=dtype, device=device)
        noise = _randn((channels, height * scale_factor, width * scale_factor), ref, generator)
        zeros = torch.zeros_like(noise[:1])
        self.state = torch.cat([zeros, zeros, torch.ones_like(zeros), noise])

    @property
    def noise(self) -> torch.Tensor:
        """(C, h, w): weighted area-average of the state, unit variance."""
        weight = self.state[W][None]
        size = (self.h, self.w)
        num = _resize(self.state[3:] * weight, size)
        return num / _resize(weight ** 2, size).sqrt() * self.scale

    def __call__(self, dx, dy) -> NoiseWarper:
        """Warp by a flow (dx, dy) of any size; it is upsampled to the state and rescaled."""
        dev, dt = self.state.device, self.state.dtype
        flow = torch.stack([torch.as_tensor(dx), torch.as_tensor(dy)]).to(dev, dt)
        _, fh, fw = flow.shape
        flow = _resize(flow, (self.h * self.scale, self.w * self.scale))
        # The reference scales dx by the height ratio and dy by the width ratio; equal ratios
        # (aspect-preserving upsampling, as used here) make that harmless.
        flow[0] *= flow.shape[1] / fh * self.scale
        flow[1] *= flow.shape[2] / fw * self.scale
        self.state = warp_state(self.state, flow, self.generator)
        return self


def downscale_noise(noise: torch.Tensor, factor: int) -> torch.Tensor:
    """Area-average factor x factor blocks, x factor (unit variance for independent samples)."""
    h, w = noise.shape[-2:]
    return _resize(noise, (round(h / factor), round(w / factor))) * factor


def noise_from_flows(flows: torch.Tensor, channels: int = 16, resize_flow: int = 8,
                     downscale_factor: int = 32, generator: torch.Generator | None = None,
                     device="cpu", progress: Callable[[int, int], None] | None = None):
    """Warped noise for a clip from its T-1 flows (T-1, 2, h, w) at the flow resolution.

    The noise lives at (h, w) x resize_flow and is emitted at that size / downscale_factor.
    Returns (T, H', W', C) float32 (THWC like the reference's noises.npy).
    """
    _, _, h, w = flows.shape
    warper = NoiseWarper(channels, h * resize_flow, w * resize_flow, device=device,
                         generator=generator)
    out = [downscale_noise(warper.noise, downscale_factor)]
    for i, flow in enumerate(flows):
        out.append(downscale_noise(warper(flow[0], flow[1]).noise, downscale_factor))
        if progress:
            progress(i + 1, len(flows))
    return torch.stack(out).permute(0, 2, 3, 1).float().cpu()


def resize_noise_to_latents(noises: np.ndarray | torch.Tensor, num_latents: int,
                            latent_hw: tuple[int, int]) -> torch.Tensor:
    """The reference `load_and_resize_warped_noise`: THWC noise -> (1, T_lat, C, h, w).

    Frames picked at floor(linspace(0, T-1, T_lat)); every channel resized with OpenCV
    bilinear; no renormalisation (the std shrinks: reference behaviour).
    """
    arr = np.asarray(noises.cpu() if isinstance(noises, torch.Tensor) else noises,
                     dtype=np.float32)
    idx = np.linspace(0, arr.shape[0] - 1, num_latents).astype(int)
    h, w = latent_hw
    out = np.stack([np.stack([cv2.resize(np.ascontiguousarray(arr[t, :, :, ch]), (w, h),
                                         interpolation=cv2.INTER_LINEAR)
                              for ch in range(arr.shape[3])]) for t in idx])
    return torch.from_numpy(out)[None]


# --- whole-clip recipes ------------------------------------------------------------------------
FlowFn = Callable[[np.ndarray, np.ndarray], np.ndarray]  # uint8 frames -> (H, W, 2) dx, dy


def _area_resize(frames: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    return np.stack([cv2.resize(f, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
                     for f in frames])


def clip_flows(frames: np.ndarray, flow_fn: FlowFn, frame_scale: float = 0.5) -> torch.Tensor:
    """(T-1, 2, h, w) flows between consecutive frames resized by frame_scale (area)."""
    t, h, w, _ = frames.shape
    small = _area_resize(frames, (round(h * frame_scale), round(w * frame_scale)))
    flows = [flow_fn(small[i], small[i + 1]) for i in range(t - 1)]
    return torch.from_numpy(np.stack(flows).astype(np.float32)).permute(0, 3, 1, 2)


def faithful_warped_noise(frames: np.ndarray, num_latents: int, latent_hw: tuple[int, int],
                          flow_fn: FlowFn, generator: torch.Generator | None = None,
                          device="cpu", length: int = 72, crop_hw=(480, 720), channels=16,
                          progress=None) -> torch.Tensor:
    """The reference geometry (make_warped_noise + load_and_resize_warped_noise): frames
    resampled to `length`, cover-resized and centre-cropped to crop_hw, flow at half size,
    noise at x8, emitted at /32, float16, then resized to the latent grid. Start latents
    (1, T_lat, C, h, w)."""
    t = frames.shape[0]
    step = (t - 1) / (length - 1) if t > 1 and length > 1 else 0
    frames = frames[[round(i * step) for i in range(length)]]
    ch, cw = crop_hw
    h, w = frames.shape[1:3]
    scale = max(ch / h, cw / w)
    rh, rw = max(ch, round(h * scale)), max(cw, round(w * scale))
    frames = _area_resize(frames, (rh, rw)) if scale < 1 else np.stack(
        [cv2.resize(f, (rw, rh), interpolation=cv2.INTER_LINEAR) for f in frames])
    top, left = (rh - ch) // 2, (rw - cw) // 2
    frames = np.ascontiguousarray(frames[:, top:top + ch, left:left + cw])
    noises = noise_from_flows(clip_flows(frames, flow_fn), channels, 8, 32, generator, device,
                              progress)
    return resize_noise_to_latents(noises.half().float(), num_latents, latent_hw)


def aligned_warped_noise(frames: np.ndarray, latent_hw: tuple[int, int], flow_fn: FlowFn,
                         generator: torch.Generator | None = None, device="cpu", channels=16,
                         progress=None) -> torch.Tensor:
    """Noise on the exact pass-1 frames: flow at half size, noise at x4 of the frame (x8 of the
    flow), emitted at /8 = the latent grid; latent k <- pixel frame 4k; unit variance. Covers
    every latent of a clip of any length. Start latents (1, T_lat, C, h, w)."""
    t, h, w, _ = frames.shape
    if (h // 8, w // 8) != tuple(latent_hw):
        raise ValueError(f"frames {h}x{w} do not map onto the latent grid {latent_hw}")
    keep = list(range(0, t, 4))
    noises = noise_from_flows(clip_flows(frames, flow_fn), channels, 8, 32, generator, device,
                              progress)  # one noise frame per pixel frame
    lat = noises[keep].permute(0, 3, 1, 2)[None].contiguous()  # (1, T_lat, C, h, w)
    mean = lat.mean(dim=(1, 3, 4), keepdim=True)
    std = lat.std(dim=(1, 3, 4), keepdim=True)
    return (lat - mean) / std
