"""`propagate`: background propagation from other frames + spatial fills. CPU, no weights.

APPEARANCE-ONLY. It fills the object's pixels with background seen in other frames, and
(by default, fill_affected=True) the affected region's too: a shadow or reflection that
moves with the object is replaced by what the same place looks like in frames where it is
clean. It does not model physical interactions: what the removed object pushed, carried or
knocked over is restored only where other frames show it at rest. The VOID engine ("void")
is the one that removes interactions.

How, per target frame t (on the clip's distinct frames, so ping-pong padding costs nothing):
1. OpenCV DIS flow between neighbouring frames, both directions. Inside the holes the flow
   follows the object, not the background, so it is replaced there by the surrounding
   background flow (multi-scale normalised convolution).
2. The camera's global motion (engines/fill.py): a homography per frame pair fitted to the
   background's flow, chained. Each hole pixel is taken from the nearest frame where it is
   clean, through that motion: a still camera copies the very pixel (exact), a pan or zoom
   resamples it (bicubic). This is what keeps large, slow or static occluders from smearing
   (the per-pixel chains of step 3 drift and die over long distances).
3. Pixels step 2 cannot place (pairs whose background is not one plane: parallax, water):
   chain the flows frame by frame towards later and earlier frames (nearest first). A
   chain stops where a link fails the forward-backward check or leaves the frame; a pixel
   is taken from frame s only where s is unmasked there.
4. Pixels no frame shows clean: in the affected region the plate's own texture, relit to
   the brightness of its surroundings (undoes most of a soft shadow); in the object's a
   smooth normalised-convolution fill (`spatial="smooth"`; `"telea"` is cv2.inpaint).
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
from void_engine.engines.fill import (
    GlobalMotion,
    map_points,
    pair_homography,
    relight,
    smooth_fill,
)
from void_engine.errors import InputError
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
    description = ("background from other frames (camera motion + optical flow) into the "
                   "object and its shadows/reflections, spatial fills for what no frame shows "
                   "(CPU, no weights). Appearance-only: does not model physical interactions "
                   "(use the 'void' engine for those).")

    def __init__(self, *, flow_preset: str = "medium", hole_dilate_px: int = 3,
                 fb_threshold: float = 1.0, max_distance: int | None = None,
                 fill_affected: bool = True, inpaint_radius: int = 5,
                 flow_margin_px: int = 8, global_motion: bool = True,
                 spatial: str = "smooth"):
        self.flow_preset = flow_preset
        self.hole_dilate_px = hole_dilate_px
        self.fb_threshold = fb_threshold
        self.max_distance = max_distance
        self.fill_affected = fill_affected
        self.inpaint_radius = inpaint_radius
        self.global_motion = global_motion
        if spatial not in ("smooth", "telea"):
            raise InputError(f"propagate: spatial must be 'smooth' or 'telea', not {spatial!r}")
        self.spatial = spatial
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
        motion = None
        if self.global_motion:
            motion = GlobalMotion([pair_homography(fwd[t], ok_fwd[t], flow_holes[t])
                                   for t in range(n - 1)], (h, w))
        out = frames.copy()
        max_d = n - 1 if self.max_distance is None else min(n - 1, self.max_distance)
        for t in range(n):
            ys, xs = np.nonzero(holes[t])
            if len(ys):
                values = np.zeros((len(ys), 3), np.float32)
                missing = np.ones(len(ys), bool)
                if motion is not None:
                    self._from_global(t, xs, ys, frames, holes, motion, max_d, values,
                                      missing)
                if missing.any():
                    idx = np.flatnonzero(missing)
                    v, still = self._propagate(t, xs[idx], ys[idx], frames, holes, fwd, bwd,
                                               ok_fwd, ok_bwd, max_d)
                    values[idx[~still]] = v[~still]
                    missing[idx[~still]] = False
                target = out[t].astype(np.float32)
                target[ys, xs] = values
                frame = np.clip(np.rint(target), 0, 255).astype(np.uint8)
                if missing.any():
                    frame = self._spatial(frame, frames[t], masks[t], holes[t],
                                          ys[missing], xs[missing])
                # Only hole pixels change; everything else stays the input, bit for bit.
                out[t][ys, xs] = frame[ys, xs]
            if progress:
                progress(t + 1, n)
        return out

    def _from_global(self, t, xs, ys, frames, holes, motion, max_d, values, missing):
        """Hole pixels of frame t taken, through the camera's global motion, from the
        nearest frames where they are clean (fills values/missing in place)."""
        n, h, w = holes.shape
        order = sorted((s for s in range(n) if s != t and abs(s - t) <= max_d),
                       key=lambda s: (abs(s - t), s))
        for s in order:
            H = motion.to(t, s)
            if H is None:
                continue
            todo = np.flatnonzero(missing)
            if not len(todo):
                break
            if motion.still:  # the same pixel, exactly
                px, py = xs[todo].astype(np.float32), ys[todo].astype(np.float32)
            else:
                px, py = map_points(H, xs[todo], ys[todo])
            inside = (px >= 0) & (px <= w - 1) & (py >= 0) & (py <= h - 1)
            clean = inside & (_sample(holes[s].astype(np.uint8), px, py,
                                      cv2.INTER_NEAREST) == 0)
            if clean.any():
                # cubic: a sub-pixel shift blurs fine texture less than bilinear does
                interp = cv2.INTER_NEAREST if motion.still else cv2.INTER_CUBIC
                values[todo[clean]] = _sample(frames[s], px[clean], py[clean], interp)
                missing[todo[clean]] = False

    def _spatial(self, frame, plate, mask, hole, ys, xs) -> np.ndarray:
        """Pixels no frame shows clean: affected ones (shadows, reflections) keep the
        plate's texture relit to their surroundings; the object's get a smooth fill."""
        todo = np.zeros(hole.shape, bool)
        todo[ys, xs] = True
        affected_only = todo & (mask == AFFECTED)
        if affected_only.any():
            frame[affected_only] = relight(plate, ~hole, mask == AFFECTED,
                                           affected_only)[affected_only]
        rest = todo & ~affected_only
        if self.spatial == "telea":
            ry, rx = np.nonzero(rest)
            return self._inpaint(frame, ry, rx) if len(ry) else frame
        return smooth_fill(frame, rest) if rest.any() else frame

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
