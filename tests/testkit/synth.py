"""Synthetic clips the mask tests make: an object that pushes another, with ground truth."""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import cv2
import numpy as np

from void_engine import io as vio


@dataclass
class PushClip:
    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    pusher: np.ndarray  # (T, H, W) bool: the primary object (to remove)
    pushed: np.ndarray  # (T, H, W) bool: the object it pushes (affected)
    contact: int  # first frame the pusher touches the pushed object
    size: int  # side of both squares


def texture(h: int, w: int, seed: int, sigma: float = 1.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 255, (h, w, 3)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), sigma), 0, 255).astype(np.uint8)


def push_clip(t: int = 12, h: int = 96, w: int = 160, size: int = 16, speed: int = 6,
              start: int = 8, target: int = 64) -> PushClip:
    """A red square slides right at `speed` px/frame from x=start, reaches a blue square
    resting at x=target and pushes it along. Textured background so optical flow works."""
    bg = (texture(h, w, 1).astype(np.int16) // 2 + 64).astype(np.uint8)
    red = texture(size, size, 2).astype(np.int16)
    red[..., 0] = 200 + red[..., 0] // 5
    blue = texture(size, size, 3).astype(np.int16)
    blue[..., 2] = 200 + blue[..., 2] // 5
    y = h // 2 - size // 2
    frames = np.empty((t, h, w, 3), np.uint8)
    pusher = np.zeros((t, h, w), bool)
    pushed = np.zeros((t, h, w), bool)
    contact = None
    for i in range(t):
        ax = start + speed * i
        bx = max(target, ax + size)
        if contact is None and ax + size >= target:
            contact = i
        f = bg.copy()
        f[y:y + size, bx:bx + size] = blue[:, : max(0, min(size, w - bx))].clip(0, 255)
        f[y:y + size, ax:ax + size] = red[:, : max(0, min(size, w - ax))].clip(0, 255)
        frames[i] = f
        pusher[i, y:y + size, ax:ax + size] = True
        pushed[i, y:y + size, bx:bx + size] = True
        pushed[i] &= ~pusher[i]
    return PushClip(frames, pusher, pushed, contact if contact is not None else t, size)


def write_video(path: str, frames: np.ndarray, fps: int = 12) -> str:
    """Lossless FFV1 plate (RGB frames) through the project's writer."""
    h, w = frames.shape[1:3]
    with vio.open_writer(path, "ffv1", fps=Fraction(fps), size=(h, w)) as wr:
        for f in frames:
            wr.write(np.ascontiguousarray(f))
    return path


def black_from(obj: np.ndarray) -> np.ndarray:
    """(T, H, W) bool object -> black-mask grey frames (0 object, 255 background)."""
    return np.where(obj, 0, 255).astype(np.uint8)


def gate_clip(kind: str, t: int = 12, h: int = 96, w: int = 160, speed: int = 4):
    """A pass-1-like result and its quadmask: a textured object moving right over a textured
    plate. kind "rigid": it keeps its shape and texture; "shape": its outline changes every
    frame; "morph": outline and texture change every frame. Returns (video, masks)."""
    bg = texture(h, w, 1)
    tint = np.array([120, 20, 20], np.uint8)
    obj_tex = texture(h, w, 7) // 2 + tint
    video = np.empty((t, h, w, 3), np.uint8)
    masks = np.empty((t, h, w), np.uint8)
    for i in range(t):
        m = np.zeros((h, w), np.uint8)
        cx, cy = 40 + speed * i, h // 2
        if kind == "rigid":
            cv2.circle(m, (cx, cy), 16, 1, -1)
        else:
            r = 16 + 6 * np.sin(i * 1.3)
            cv2.ellipse(m, (cx, cy), (int(r), int(32 - r) + 8), 30 * i, 0, 360, 1, -1)
        tex = (texture(h, w, 100 + i) // 2 + tint) if kind == "morph" else np.roll(
            obj_tex, speed * i, axis=1)
        f = bg.copy()
        f[m.astype(bool)] = tex[m.astype(bool)]
        video[i] = f
        grown = cv2.dilate(m, np.ones((9, 9), np.uint8)).astype(bool)
        masks[i] = np.where(grown, 127, 255)
    return video, masks
