"""QC figures of a finished shot that need no ground truth, streamed one plate frame at a time
(encode_shot has the plate frame, the composited result and the quadmask in hand):

flicker  In the change region, the result's frame-to-frame error after motion compensation
         (DIS flow of the result onto the previous frame; grey levels), against the same
         measure of the plate's own pixels in a ring around the region (grain, light,
         compression: what "steady" means for this plate). The motion is the plate's
         flow, filled into the change region from around it (the object's own motion is
         not what a fill should follow). flicker_ratio =
         (change + 0.5) / (plate + 0.5); near 1 is as steady as the plate.
seam     The mean gradient magnitude of the result in a thin band on the change region's
         edge, against the ring's. A fill that does not match its surroundings draws a
         line there (ratio well above 1); a matched, feathered one does not.

A shot is `flagged` for a supervisor's look when either ratio exceeds its threshold
(QCThresholds; the defaults come from the environment, VOID_QC_FLICKER_MAX and
VOID_QC_SEAM_MAX). Each frame costs two crop resizes, one small DIS flow and a few small
array ops: the work happens inside the change region's bounding box (grown by a margin),
scaled so its long side is at most QC_SIDE pixels, whatever the plate's size.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

from void_engine import optical_flow as flow
from void_engine import quadmask as qm
from void_engine.engines.propagate import fill_field

QC_SIDE = 320  # long side of the working crop (px)
RING_FRAC = 0.25  # ring width around the change region, as a fraction of its box's long side
EDGE_PX = 2  # half width of the edge band, at working scale
_GROW = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (17, 17))  # 8 px at working scale
FLOOR = 0.5  # grey levels added to both sides of a ratio (noise-free plates measure ~0)


@dataclass(frozen=True)
class QCThresholds:
    """Flag above these. Set on the default generated set (docs/quality.md): the ground
    truth scored as a result reaches flicker 2.05 and seam 1.06, `propagate` 2.2 and 1.05;
    a result that left the object in place 2.5-10.3 and 1.0-2.8."""

    flicker_ratio: float = float(os.environ.get("VOID_QC_FLICKER_MAX", "3.0"))
    seam: float = float(os.environ.get("VOID_QC_SEAM_MAX", "1.5"))

    def reasons(self, flicker_ratio: float, seam: float) -> list[str]:
        """Why figures deserve a supervisor's look (empty: they do not; NaN never flags)."""
        out = []
        if flicker_ratio > self.flicker_ratio:
            out.append(f"flicker {flicker_ratio:.2f}x the plate's (> {self.flicker_ratio:g})")
        if seam > self.seam:
            out.append(f"seam {seam:.2f}x the surroundings' gradient (> {self.seam:g})")
        return out


@dataclass(frozen=True)
class QCFigures:
    frames: int  # frames seen
    measured: int  # frames with a change region (seam) / pairs (flicker) measured
    flicker_change: float  # mean motion-compensated error in the change region (grey levels)
    flicker_plate: float  # the same on the plate's own pixels around it
    flicker_ratio: float
    seam: float  # mean edge-band / ring gradient ratio over frames
    seam_max: float
    flagged: bool
    reasons: tuple[str, ...] = field(default_factory=tuple)

    def as_row(self, prefix: str = "qc_") -> dict:
        """Flat columns for a report table."""
        d = asdict(self)
        d["reasons"] = "; ".join(self.reasons)
        return {prefix + k: v for k, v in d.items()}


def _window(box, shape, prev_box=None):
    """The working window: the change boxes (this frame's and the previous one's) grown by
    the ring, trimmed to a multiple of the integer factor k that brings its long side to
    QC_SIDE or less (OpenCV's area resize has a fast path for integer factors)."""
    y0, y1, x0, x1 = _grown(box, shape, prev_box)
    k = max(1, math.ceil(max(y1 - y0, x1 - x0) / QC_SIDE))
    y1, x1 = y0 + max(k, (y1 - y0) // k * k), x0 + max(k, (x1 - x0) // k * k)
    return slice(y0, min(y1, shape[0])), slice(x0, min(x1, shape[1])), k


def _grown(box, shape, prev_box=None) -> tuple[int, int, int, int]:
    """The change boxes grown by the ring, inside the frame (before _window's trimming)."""
    y0, y1, x0, x1 = box
    if prev_box is not None:
        y0, y1 = min(y0, prev_box[0]), max(y1, prev_box[1])
        x0, x1 = min(x0, prev_box[2]), max(x1, prev_box[3])
    m = max(8, int(RING_FRAC * max(y1 - y0, x1 - x0)))
    return max(0, y0 - m), min(shape[0], y1 + m), max(0, x0 - m), min(shape[1], x1 + m)


def measured_window(boxes, shape) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1): the part of the frames QC looks at, over a whole shot. boxes: each
    frame's change box (y1 <= y0 for none), as modelspace.ChangeRegions stores them. Frames
    cropped to it, with the boxes moved by its origin, give the same figures as whole
    frames: every frame's grown window lies inside it, reaching a frame edge only where the
    window itself does (so _window trims it the same way)."""
    out, prev = None, None
    for b in boxes:
        box = tuple(int(v) for v in b)
        if box[1] <= box[0]:
            prev = None
            continue
        g = _grown(box, shape, prev)
        out = g if out is None else (min(out[0], g[0]), max(out[1], g[1]),
                                     min(out[2], g[2]), max(out[3], g[3]))
        prev = box
    return out


def _small_grey(frame, win) -> np.ndarray:
    ys, xs, k = win
    crop = frame[ys, xs]
    if crop.dtype != np.uint8:
        from void_engine.io import to_uint8

        crop = to_uint8(crop)
    grey = flow.to_gray(crop)  # one channel before resizing: a third of the work
    if k == 1:
        return grey
    return cv2.resize(grey, (grey.shape[1] // k, grey.shape[0] // k),
                      interpolation=cv2.INTER_AREA)


def _small_change(region, win) -> np.ndarray:
    """The change map at working scale (nearest: a mask needs no averaging). region: (box,
    boolean map inside the box), as ChangeRegions stores it."""
    (y0, y1, x0, x1), change = region
    ys, xs, k = win
    h, w = (ys.stop - ys.start) // k, (xs.stop - xs.start) // k
    ry = ys.start + k // 2 + k * np.arange(h) - y0
    rx = xs.start + k // 2 + k * np.arange(w) - x0
    iy, ix = (ry >= 0) & (ry < y1 - y0), (rx >= 0) & (rx < x1 - x0)
    out = np.zeros((h, w), bool)
    out[np.ix_(iy, ix)] = np.asarray(change, bool)[np.ix_(ry[iy], rx[ix])]
    return out


class QCAccumulator:
    """add(plate, result, quadmask) per plate frame, in order; figures() at the end."""

    def __init__(self, thresholds: QCThresholds | None = None):
        self.thresholds = thresholds or QCThresholds()
        self.frames = 0
        self.seams: list[float] = []
        self.flicker: list[tuple[float, float]] = []
        self._prev = None  # (plate, result, (box, change) or None) of the previous frame

    def add(self, plate: np.ndarray, result: np.ndarray, mask: np.ndarray) -> None:
        """One plate frame: the plate, the finished result and the quadmask (H, W)."""
        box = qm.bounding_box(mask)
        if box is None:
            self.add_change(plate, result, None, None)
        else:
            y0, y1, x0, x1 = box
            self.add_change(plate, result, box, qm.change_region(mask[y0:y1, x0:x1]))

    def add_change(self, plate: np.ndarray, result: np.ndarray,
                   box: tuple[int, int, int, int] | None, change: np.ndarray | None) -> None:
        """add() from the change region as encode_shot holds it (modelspace.ChangeRegions:
        the tight box and the boolean map inside it; None for a frame without change)."""
        self.frames += 1
        region = None if box is None else (tuple(box), change)
        prev, self._prev = self._prev, (plate, result, region)
        if region is None:
            return
        p_region = prev[2] if prev is not None else None
        win = _window(region[0], plate.shape[:2], p_region and p_region[0])
        now_r, small = _small_grey(result, win), _small_change(region, win)
        self.seams.append(self._seam(now_r, small))
        if p_region is not None:
            self._flicker(prev, plate, now_r, small, win)

    @staticmethod
    def _seam(grey: np.ndarray, change: np.ndarray) -> float:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * EDGE_PX + 1,) * 2)
        c = change.astype(np.uint8)
        band = (cv2.dilate(c, k) > 0) & ~(cv2.erode(c, k) > 0)
        ring = ~(cv2.dilate(c, k, iterations=3) > 0)
        if not band.any() or not ring.any():
            return math.nan
        g = grey.astype(np.float32)
        mag = cv2.magnitude(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1))
        return float((mag[band].mean() + FLOOR) / (mag[ring].mean() + FLOOR))

    def _flicker(self, prev, plate, now_r, change, win) -> None:
        p_plate, p_result, p_region = prev
        before_r = _small_grey(p_result, win)
        now_p, before_p = _small_grey(plate, win), _small_grey(p_plate, win)
        change = change | _small_change(p_region, win)
        # The background's motion: the plate's flow, with the object's own motion in the
        # change region replaced by its surroundings' (what a steady fill moves with); DIS
        # spreads the object's motion a little past its edge, hence the grown region.
        grown = cv2.dilate(change.astype(np.uint8), _GROW).astype(bool)
        motion = fill_field(flow.dis_flow(now_p, before_p, "fast"), grown)
        valid = ~flow.out_of_frame(motion)
        ring = ~cv2.dilate(change.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        err_r = np.abs(now_r.astype(np.float32) - flow.backward_warp(before_r, motion))
        err_p = np.abs(now_p.astype(np.float32) - flow.backward_warp(before_p, motion))
        if (change & valid).any() and (ring & valid).any():
            self.flicker.append((float(err_r[change & valid].mean()),
                                 float(err_p[ring & valid].mean())))

    def figures(self) -> QCFigures:
        th = self.thresholds
        seams = [s for s in self.seams if not math.isnan(s)]
        seam = float(np.mean(seams)) if seams else math.nan
        if self.flicker:
            change, plate = (float(v) for v in np.mean(self.flicker, axis=0))
            ratio = (change + FLOOR) / (plate + FLOOR)
        else:
            change = plate = ratio = math.nan
        reasons = th.reasons(ratio, seam)
        return QCFigures(frames=self.frames, measured=len(seams), flicker_change=change,
                         flicker_plate=plate, flicker_ratio=ratio, seam=seam,
                         seam_max=float(max(seams)) if seams else math.nan,
                         flagged=bool(reasons), reasons=tuple(reasons))
