"""`propagate`: flow-guided temporal propagation + spatial inpainting. CPU, no weights.

APPEARANCE-ONLY. It fills the object's pixels with background seen in other frames (and
inpaints what no frame shows). It does not model physical interactions: objects the removed
one pushed, carried or knocked over stay as they are, and shadows/reflections outside the
object's mask remain. The quadmask's AFFECTED (127) region is left as plate unless
`fill_affected=True`. The VOID engine ("void") is the one that removes interactions.

How, per target frame t (on the clip's distinct frames, so ping-pong padding costs nothing):
1. OpenCV DIS flow between neighbouring frames, both directions. Inside the holes the flow
   follows the object, not the background, so it is replaced there by the surrounding
   background flow (multi-scale normalised convolution).
2. For each hole pixel, chain the flows frame by frame towards later and earlier frames
   (nearest frames first). A chain stops where a link fails the forward-backward
   consistency check or leaves the frame; a pixel is taken from frame s only where s is
   unmasked there.
3. Pixels no frame shows are filled by cv2.inpaint (Telea).
"""
from __future__ import annotations

import hashlib

import cv2
import numpy as np

from void_engine.engines.base import (
    Engine,
    FrameRules,
    ProgressFn,
    RemovalParams,
    check_clip,
    register_engine,
)
from void_engine.optical_flow import dis_flow
from void_engine.quadmask import AFFECTED, OVERLAP, REMOVE


def fill_field(field: np.ndarray, hole: np.ndarray, scale: int = 4) -> np.ndarray:
    """Replace `field` (H, W, C) inside `hole` by a smooth interpolation of its surroundings
    (normalised convolution at growing scales, the smallest scale with support wins).
    Computed on a grid `scale` times coarser: flow fields are smooth, and large blurs at
    full resolution would dominate the engine's run time."""
    if not hole.any():
        return field
    h, w = hole.shape
    valid = (~hole).astype(np.float32)
    if not valid.any():
        return np.zeros_like(field)
    sh, sw = max(1, h // scale), max(1, w // scale)
    v_small = cv2.resize(valid, (sw, sh), interpolation=cv2.INTER_AREA)
    f_small = cv2.resize(field * valid[..., None], (sw, sh), interpolation=cv2.INTER_AREA)
    est = np.zeros_like(f_small)
    todo = np.ones((sh, sw), bool)
    for sigma in (1, 3, 9, 27, 81):
        wb = cv2.GaussianBlur(v_small, (0, 0), sigma)
        vb = cv2.GaussianBlur(f_small, (0, 0), sigma)
        ok = todo & (wb > 1e-4)
        est[ok] = vb[ok] / wb[ok][:, None]
        todo &= ~ok
        if not todo.any():
            break
    out = field.copy()
    out[hole] = cv2.resize(est, (w, h), interpolation=cv2.INTER_LINEAR)[hole]
    return out


def _sample(image: np.ndarray, x: np.ndarray, y: np.ndarray,
            interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """image values at float points (x, y) (1-D arrays); (N,) or (N, C)."""
    n = len(x)
    # remap wants 2-D maps under 32767 per side: lay the points out in rows of 1024.
    rows = max(1, -(-n // 1024))
    mx = np.zeros(rows * 1024, np.float32)
    my = np.zeros(rows * 1024, np.float32)
    mx[:n], my[:n] = x, y
    out = cv2.remap(image, mx.reshape(rows, 1024), my.reshape(rows, 1024), interpolation,
                    borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(rows * 1024, -1)[:n] if image.ndim == 3 else out.reshape(-1)[:n]


@register_engine("propagate")
class PropagateEngine(Engine):
    name = "propagate"
    frame_rules = FrameRules()  # any length; the model-space padding is de-duplicated
    description = ("flow-guided propagation of background from other frames + spatial "
                   "inpainting (CPU, no weights). Appearance-only: does not remove physical "
                   "interactions (use the 'void' engine for those).")

    def __init__(self, *, flow_preset: str = "medium", hole_dilate_px: int = 3,
                 fb_threshold: float = 1.0, max_distance: int | None = None,
                 fill_affected: bool = False, inpaint_radius: int = 5,
                 flow_margin_px: int = 8):
        self.flow_preset = flow_preset
        self.hole_dilate_px = hole_dilate_px
        self.fb_threshold = fb_threshold
        self.max_distance = max_distance
        self.fill_affected = fill_affected
        self.inpaint_radius = inpaint_radius
        # DIS spreads the object's motion a few pixels past its edge: the flow is replaced
        # in the hole grown by this margin.
        self.flow_margin_px = flow_margin_px

    def holes(self, quadmask: np.ndarray) -> np.ndarray:
        """Pixels to fill, per frame: the object (0/63), plus 127 with fill_affected, grown by
        hole_dilate_px to swallow the object's soft edge."""
        values = (REMOVE, OVERLAP, AFFECTED) if self.fill_affected else (REMOVE, OVERLAP)
        hole = np.isin(quadmask, values)
        if self.hole_dilate_px > 0:
            k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * self.hole_dilate_px + 1,) * 2)
            hole = np.stack([cv2.dilate(h.astype(np.uint8), k) > 0 for h in hole])
        return hole

    def pass1(self, clip: np.ndarray, quadmask: np.ndarray, prompt: str, params: RemovalParams,
              progress: ProgressFn | None = None) -> np.ndarray:
        check_clip(clip, quadmask)
        # Distinct frames in first-seen order: padded clips repeat frames (ping-pong).
        keys: dict[bytes, int] = {}
        slot = []
        for k in range(len(clip)):
            key = hashlib.blake2b(clip[k].tobytes() + quadmask[k].tobytes()).digest()
            slot.append(keys.setdefault(key, len(keys)))
        first = {s: k for k, s in reversed(list(enumerate(slot)))}
        frames = clip[[first[s] for s in range(len(keys))]]
        masks = quadmask[[first[s] for s in range(len(keys))]]
        filled = self._fill(frames, masks, progress)
        return filled[slot]

    def _fill(self, frames: np.ndarray, masks: np.ndarray,
              progress: ProgressFn | None) -> np.ndarray:
        n, h, w = masks.shape
        holes = self.holes(masks)
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * self.flow_margin_px + 1,) * 2)
        flow_holes = [cv2.dilate(hole.astype(np.uint8), k) > 0 for hole in holes]
        fwd, bwd, ok_fwd, ok_bwd = [], [], [], []
        for t in range(n - 1):
            f = fill_field(dis_flow(frames[t], frames[t + 1], self.flow_preset), flow_holes[t])
            b = fill_field(dis_flow(frames[t + 1], frames[t], self.flow_preset),
                           flow_holes[t + 1])
            fwd.append(f)
            bwd.append(b)
            ok_fwd.append(self._consistent(f, b))
            ok_bwd.append(self._consistent(b, f))
        out = frames.copy()
        max_d = n - 1 if self.max_distance is None else min(n - 1, self.max_distance)
        for t in range(n):
            ys, xs = np.nonzero(holes[t])
            if len(ys):
                values, missing = self._propagate(t, xs, ys, frames, holes, fwd, bwd,
                                                  ok_fwd, ok_bwd, max_d)
                target = out[t].astype(np.float32)
                target[ys, xs] = values
                frame = np.clip(np.rint(target), 0, 255).astype(np.uint8)
                if missing.any():
                    frame = self._inpaint(frame, ys[missing], xs[missing])
                # Only hole pixels change; everything else stays the input, bit for bit.
                out[t][ys, xs] = frame[ys, xs]
            if progress:
                progress(t + 1, n)
        return out

    def _inpaint(self, frame: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """Telea inpainting of the pixels no frame showed. Telea's cost grows with the hole's
        area, so large holes are inpainted at half resolution (they are smooth fills anyway)."""
        h, w = frame.shape[:2]
        hole = np.zeros((h, w), np.uint8)
        hole[ys, xs] = 255
        if len(ys) < 4000:
            return cv2.inpaint(frame, hole, self.inpaint_radius, cv2.INPAINT_TELEA)
        small = cv2.resize(frame, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        # any coverage counts as hole, so no half-covered pixel leaks object colour
        small_hole = cv2.resize(hole, (w // 2, h // 2), interpolation=cv2.INTER_AREA) > 0
        filled = cv2.inpaint(small, small_hole.astype(np.uint8) * 255,
                             max(1, self.inpaint_radius // 2), cv2.INPAINT_TELEA)
        up = cv2.resize(filled, (w, h), interpolation=cv2.INTER_LINEAR)
        out = frame.copy()
        out[ys, xs] = up[ys, xs]
        return out

    def _consistent(self, flow_ab: np.ndarray, flow_ba: np.ndarray) -> np.ndarray:
        h, w = flow_ab.shape[:2]
        gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        back = cv2.remap(flow_ba, gx + flow_ab[..., 0], gy + flow_ab[..., 1], cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
        err = np.linalg.norm(flow_ab + back, axis=-1)
        mag = np.linalg.norm(flow_ab, axis=-1)
        return (err < self.fb_threshold + 0.05 * mag).astype(np.uint8)

    def _propagate(self, t, xs, ys, frames, holes, fwd, bwd, ok_fwd, ok_bwd, max_d):
        """Values for hole pixels (xs, ys) of frame t from the nearest frames that see them."""
        n, h, w = holes.shape
        count = len(xs)
        values = np.zeros((count, 3), np.float32)
        missing = np.ones(count, bool)
        # One chain per direction: current position of every hole pixel in frame s.
        chains = {d: [xs.astype(np.float32), ys.astype(np.float32), np.ones(count, bool), t]
                  for d in (1, -1)}
        hole_f = holes.astype(np.uint8)
        for _ in range(max_d):
            for d in (1, -1):
                px, py, alive, s = chains[d]
                nxt = s + d
                if nxt < 0 or nxt >= n or not (alive & missing).any():
                    continue
                flow, ok = (fwd[s], ok_fwd[s]) if d == 1 else (bwd[nxt], ok_bwd[nxt])
                step = _sample(flow, px, py)
                alive &= _sample(ok, px, py, cv2.INTER_NEAREST).astype(bool)
                px = px + step[:, 0]
                py = py + step[:, 1]
                alive &= (px >= 0) & (px <= w - 1) & (py >= 0) & (py <= h - 1)
                seen = alive & missing & (_sample(hole_f[nxt], px, py,
                                                  cv2.INTER_NEAREST) == 0)
                if seen.any():
                    values[seen] = _sample(frames[nxt], px[seen], py[seen])
                    missing &= ~seen
                chains[d] = [px, py, alive, nxt]
            if not missing.any():
                break
        return values, missing
