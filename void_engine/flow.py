"""Optical flow: the one home for it (propagation, pass-2 noise warping, the morphing gate).

Convention: flow(a, b) is an (H, W, 2) float32 array of (dx, dy) such that pixel (x, y) of
frame a moves to (x + dx, y + dy) in frame b. `backward_warp(img_b, flow(a, b))` therefore
resamples frame b onto frame a's grid.
"""
from __future__ import annotations

import cv2
import numpy as np

_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


def to_gray(frame: np.ndarray) -> np.ndarray:
    """uint8 grey, C-contiguous (DIS refuses sliced arrays)."""
    if frame.ndim == 3:
        frame = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
    if frame.dtype != np.uint8:
        frame = np.clip(frame, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(frame)


def dis_flow(a: np.ndarray, b: np.ndarray, preset: str = "medium") -> np.ndarray:
    """OpenCV DIS optical flow from frame a to frame b (RGB or grey uint8)."""
    dis = cv2.DISOpticalFlow_create(_PRESETS[preset])
    return dis.calc(to_gray(a), to_gray(b), None).astype(np.float32)


def backward_warp(image: np.ndarray, flow: np.ndarray,
                  interpolation: int = cv2.INTER_LINEAR,
                  border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """Sample `image` at (x + dx, y + dy) for every pixel (x, y) of the flow's grid."""
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(image, gx + flow[..., 0], gy + flow[..., 1], interpolation,
                     borderMode=border)


def out_of_frame(flow: np.ndarray) -> np.ndarray:
    """Boolean map of pixels whose flow target falls outside the frame."""
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    x, y = gx + flow[..., 0], gy + flow[..., 1]
    return (x < 0) | (x > w - 1) | (y < 0) | (y > h - 1)


def forward_backward_error(fwd: np.ndarray, bwd: np.ndarray) -> np.ndarray:
    """|fwd + bwd(warped)| per pixel: large where the flow is unreliable (occlusions)."""
    bwd_at_target = backward_warp(bwd, fwd)
    return np.linalg.norm(fwd + bwd_at_target, axis=-1)
