"""The reference loader's preprocessing (`get_video_mask_input`, quadmask mode), for parity.

In production the plate is mapped to model space by void_engine.modelspace (ffmpeg scaling,
quadmask quantisation, ping-pong padding) and the engine receives uint8 arrays; this module
reproduces the reference's float path bit for bit so the golden fixtures can be checked from
their raw decoded inputs, and converts the engine's uint8 arrays into the pipeline's tensors.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def snap_length(max_video_length: int) -> int:
    """max_video_length rounded down to 4k+1."""
    return ((max_video_length - 1) // 4) * 4 + 1


def padded_length(length: int, min_length: int, max_length: int) -> int:
    """Smallest 4k+1 >= length with k odd, clamped to [min_length, max_length]."""
    m = 4 * (length // 4) + 1
    if m < length:
        m += 4
    if (m // 4) % 2 == 0:
        m += 4
    return max(min_length, min(m, max_length))


def pingpong(x: torch.Tensor, target: int, dim: int) -> torch.Tensor:
    """Lengthen along `dim` by appending the time-reversed clip (last frame twice), then cut."""
    while x.shape[dim] < target:
        x = torch.cat([x, x.flip(dim)], dim=dim)
    return x.narrow(dim, 0, target)


def quantize_quadmask_float(m: torch.Tensor) -> torch.Tensor:
    """<=31 -> 0, <=95 -> 63, <=191 -> 127, else 255 (on area-resized float grey levels)."""
    out = torch.full_like(m, 255.0)
    out = torch.where(m <= 191, torch.full_like(m, 127.0), out)
    out = torch.where(m <= 95, torch.full_like(m, 63.0), out)
    return torch.where(m <= 31, torch.zeros_like(m), out)


def reference_video_mask_input(raw_video: np.ndarray, raw_mask: np.ndarray, *,
                               max_video_length: int, window_frames: int,
                               size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (T,H,W,3) video + uint8 (T,H,W) quadmask -> video (1,3,T',h,w) in [0,1] and the
    inverted mask (1,1,T',h,w) in [0,1] (1 remove, 192/255 overlap, 128/255 affected, 0 keep)."""
    n = snap_length(max_video_length)
    v = torch.from_numpy(np.ascontiguousarray(raw_video[:n])).permute(3, 0, 1, 2).float() / 255.0
    v = F.interpolate(v, size=size, mode="area").unsqueeze(0)  # 3 "batch" x T "channels"
    m = torch.from_numpy(np.ascontiguousarray(raw_mask[:n])).float().unsqueeze(0)
    m = F.interpolate(m, size=size, mode="area")
    m = 255.0 - quantize_quadmask_float(m)
    target = padded_length(v.shape[2], window_frames, n)
    v = pingpong(v, target, dim=2)
    m = pingpong(m, target, dim=1).unsqueeze(0) / 255.0
    return v, m


def engine_arrays_to_tensors(clip: np.ndarray, quadmask: np.ndarray) -> tuple[torch.Tensor,
                                                                              torch.Tensor]:
    """Engine input (uint8 RGB (T,H,W,3), quantised uint8 quadmask (T,H,W), already at model
    size and padded) -> the pipeline's video (1,3,T,H,W) in [0,1] and inverted mask."""
    v = torch.from_numpy(np.ascontiguousarray(clip)).permute(3, 0, 1, 2).float().unsqueeze(0)
    m = torch.from_numpy(np.ascontiguousarray(quadmask)).float()
    m = (255.0 - quantize_quadmask_float(m)).view(1, 1, *m.shape)
    return v / 255.0, m / 255.0
