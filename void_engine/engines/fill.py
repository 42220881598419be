"""Fill helpers of the `propagate` engine: the camera's global motion, and the spatial fills
for pixels no frame shows clean.

Global motion: per pair of neighbouring frames, a homography fitted (RANSAC) to the
background's optical flow. Chained, they map any frame onto any other of the same run of
well-fitted pairs, with no per-pixel drift: a still camera maps pixels to themselves (the
fill is then a copy of the pixel seen in another frame), a pan or zoom maps them exactly as
far as the scene is planar. Where the background moves on its own (water, parallax) the
fits fail and the run breaks, and the flow chains take over.

Spatial fills, for what no frame shows clean:
- `relight`: an affected pixel (a shadow, a reflection) keeps the plate's texture, brought to
  the brightness of its surroundings (the ratio of smooth local means), which undoes most of
  a soft shadow where inpainting would lose the texture.
- `smooth_fill`: the object's pixels get a multi-scale normalised-convolution fill of their
  surroundings (smooth, no streaks or polygons like Telea's on large holes).
"""
from __future__ import annotations

import cv2
import numpy as np

GRID_PX = 8  # flow sampled every GRID_PX pixels for the homography fit
RANSAC_PX = 1.0  # inlier distance (px)
MIN_INLIERS = 0.6  # fraction of the background points a pair's fit must explain
STILL_PX = 0.25  # a fit moving no corner further than this is the identity (still camera)


def pair_homography(flow: np.ndarray, ok: np.ndarray, hole: np.ndarray) -> np.ndarray | None:
    """Homography (3x3, frame a -> frame b) fitted to flow(a, b) on reliable background
    pixels (ok and not hole), or None when it does not explain the background."""
    h, w = hole.shape
    ys, xs = np.mgrid[GRID_PX // 2:h:GRID_PX, GRID_PX // 2:w:GRID_PX]
    keep = ok[ys, xs].astype(bool) & ~hole[ys, xs]
    if keep.sum() < 16:
        return None
    src = np.stack([xs[keep], ys[keep]], -1).astype(np.float32)
    dst = src + flow[ys[keep], xs[keep]]
    H, inliers = cv2.findHomography(src, dst, cv2.RANSAC, RANSAC_PX)
    if H is None or inliers.mean() < MIN_INLIERS:
        return None
    return H


def is_still(H: np.ndarray, size: tuple[int, int]) -> bool:
    h, w = size
    corners = np.array([[0, w, 0, w], [0, 0, h, h], [1, 1, 1, 1]], np.float64)
    moved = H @ corners
    moved = moved[:2] / moved[2]
    return bool(np.abs(moved - corners[:2]).max() < STILL_PX)


class GlobalMotion:
    """Chained pair homographies: `to(t, s)` maps frame t's pixels into frame s, or None
    when a pair between them did not fit."""

    def __init__(self, pairs: list[np.ndarray | None], size: tuple[int, int]):
        n = len(pairs) + 1
        self.still = all(H is not None and is_still(H, size) for H in pairs)
        self.run = [0] * n  # frames in the same run are connected
        self.cum = [np.eye(3)]  # frame 0 of its run -> frame t
        for t, H in enumerate(pairs, 1):
            if H is None:
                self.run[t] = self.run[t - 1] + 1
                self.cum.append(np.eye(3))
            else:
                self.run[t] = self.run[t - 1]
                self.cum.append((np.eye(3) if self.still else H) @ self.cum[-1])

    def to(self, t: int, s: int) -> np.ndarray | None:
        if self.run[t] != self.run[s]:
            return None
        return self.cum[s] @ np.linalg.inv(self.cum[t])


def map_points(H: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = H @ np.stack([xs, ys, np.ones_like(xs)]).astype(np.float64)
    return (p[0] / p[2]).astype(np.float32), (p[1] / p[2]).astype(np.float32)


def _normalised_fill(image: np.ndarray, known: np.ndarray, sigmas=(2, 4, 8, 16, 32, 64)):
    """Each unknown pixel: the Gaussian-weighted mean of known pixels at the smallest scale
    that reaches any (float32, same shape as image)."""
    img = image.astype(np.float32)
    weight = known.astype(np.float32)
    est = img.copy()
    todo = ~known
    for sigma in sigmas:
        wb = cv2.GaussianBlur(weight, (0, 0), sigma)
        vb = cv2.GaussianBlur(img * weight[..., None], (0, 0), sigma)
        ok = todo & (wb > 1e-3)
        est[ok] = vb[ok] / wb[ok][:, None]
        todo &= ~ok
        if not todo.any():
            break
    if todo.any():  # nothing known within reach: the mean of what is known
        est[todo] = img[known].mean(axis=0) if known.any() else 127.0
    return est


def smooth_fill(frame: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Frame with `hole` filled from its surroundings (normalised convolution)."""
    out = frame.copy()
    if hole.any():
        out[hole] = np.clip(np.rint(_normalised_fill(frame, ~hole)[hole]), 0, 255)
    return out


def relight(plate: np.ndarray, known: np.ndarray, region: np.ndarray, pixels: np.ndarray,
            sigma: float = 8.0) -> np.ndarray:
    """`pixels` (part of `region`, e.g. a shadow) keep the plate's texture at the brightness
    of their surroundings: plate * (local mean of the `known` pixels) / (local mean of the
    region's own pixels), both Gaussian means at the same scale; where no known pixel is
    within reach, the known mean is extended in from further out."""
    out = plate.copy()
    if not pixels.any():
        return out
    img = plate.astype(np.float32)

    def local_mean(where: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w = cv2.GaussianBlur(where.astype(np.float32), (0, 0), sigma)
        v = cv2.GaussianBlur(img * where[..., None], (0, 0), sigma)
        return v / np.maximum(w, 1e-6)[..., None], w

    inside, _ = local_mean(region)  # every region pixel weighs itself: defined everywhere
    around, reach = local_mean(known)
    far = reach < 0.05  # too few known pixels at this scale: take them from further out
    if far.any():
        around[far] = _normalised_fill(img, known)[far]
    gain = np.clip((around + 1.0) / (inside + 1.0), 0.5, 4.0)
    out[pixels] = np.clip(np.rint(img[pixels] * gain[pixels]), 0, 255)
    return out
