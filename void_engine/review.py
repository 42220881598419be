"""Review media per shot: a side-by-side movie (plate | mask overlay | result) and a contact
sheet PNG of a few frames with the same three columns, each burnt in with a slate (shot id,
plate frame number, engine) and a legend of the overlay colours; plus the PSNR used to judge
results.

Built while encode_shot streams the plate, so it costs three small resizes per frame.
"""
from __future__ import annotations

from fractions import Fraction

import cv2
import numpy as np

from void_engine.config import CONTACT_SHEET_FRAMES, REVIEW_WIDTH
from void_engine.errors import OutputError
from void_engine.io import open_writer, to_uint8
from void_engine.io.atomic import write_bytes
from void_engine.quadmask import AFFECTED, OVERLAP, REMOVE

# Overlay colours (RGB): red = remove, magenta = overlap, yellow = affected.
OVERLAY = {REMOVE: (255, 40, 40), OVERLAP: (255, 40, 255), AFFECTED: (255, 220, 0)}


def psnr(a: np.ndarray, b: np.ndarray, where: np.ndarray | None = None,
         peak: float = 255.0) -> float:
    """PSNR in dB between two images/clips, optionally only where `where` (broadcast over
    channels) is True. inf when identical."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    diff = (a - b) ** 2
    if where is not None:
        w = np.asarray(where, dtype=bool)
        if diff.ndim == w.ndim + 1:
            w = np.broadcast_to(w[..., None], diff.shape)
        diff = diff[w]
    mse = float(diff.mean()) if diff.size else 0.0
    return float("inf") if mse == 0 else 10.0 * np.log10(peak * peak / mse)


def mask_overlay(frame: np.ndarray, mask: np.ndarray, opacity: float = 0.5) -> np.ndarray:
    """uint8 RGB frame with the quadmask's classes tinted on it."""
    out = frame.astype(np.float32)
    for value, colour in OVERLAY.items():
        sel = mask == value
        out[sel] = (1 - opacity) * out[sel] + opacity * np.array(colour, np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


# Burn-in layout: a slate bar above the three columns (shot, plate frame, engine) and a legend
# bar below (the overlay colours); both even in height, as the h264 review movie needs.
BAR = 24
COLUMNS = ("plate", "quadmask", "result")
LEGEND = ((REMOVE, "remove"), (OVERLAP, "overlap (remove + affected)"), (AFFECTED, "affected"))
_FONT, _TEXT, _BAR_BG = cv2.FONT_HERSHEY_SIMPLEX, (255, 255, 255), (32, 32, 32)


def _text(img: np.ndarray, text: str, x: int, y: int, scale: float) -> int:
    """White text with its baseline at y; returns the x after it."""
    cv2.putText(img, text, (x, y), _FONT, scale, _TEXT, 1, cv2.LINE_AA)
    return x + cv2.getTextSize(text, _FONT, scale, 1)[0][0]


def slate_bar(width: int, *, shot_id: str, frame: int, engine: str = "") -> np.ndarray:
    """The bar above each review frame: shot id, plate frame number and engine."""
    bar = np.full((BAR, width, 3), _BAR_BG, np.uint8)
    parts = [f"shot {shot_id}", f"frame {frame}"] + ([f"engine {engine}"] if engine else [])
    _text(bar, "   ".join(parts), 6, BAR - 8, 0.5)
    return bar


def legend_bar(width: int, col_w: int) -> np.ndarray:
    """The bar below: column names, then a swatch + name per overlay colour."""
    bar = np.full((BAR, width, 3), _BAR_BG, np.uint8)
    x = 6
    for i, name in enumerate(COLUMNS):
        _text(bar, name, i * col_w + 6, BAR - 8, 0.4)
    x = col_w + cv2.getTextSize(COLUMNS[1], _FONT, 0.4, 1)[0][0] + 16
    for value, name in LEGEND:
        y0, y1 = 6, BAR - 6
        bar[y0:y1, x:x + y1 - y0] = OVERLAY[value]
        x = _text(bar, name, x + y1 - y0 + 4, BAR - 8, 0.4) + 12
    return bar


def legend_swatches(width: int, col_w: int) -> dict[int, tuple[slice, slice]]:
    """Where legend_bar paints each value's swatch (rows, columns), for checks."""
    x = col_w + cv2.getTextSize(COLUMNS[1], _FONT, 0.4, 1)[0][0] + 16
    where = {}
    for value, name in LEGEND:
        where[value] = (slice(6, BAR - 6), slice(x, x + BAR - 12))
        x += BAR - 12 + 4 + cv2.getTextSize(name, _FONT, 0.4, 1)[0][0] + 12
    return where


class ReviewWriter:
    """Context manager: `add(index, plate, mask, result)` per frame; on a clean exit the movie
    (h264) and the contact sheet (PNG) appear, on error neither does.

    Every movie frame is [slate bar: shot, plate frame number, engine] over [plate | mask
    overlay | result] over [legend bar: column names, overlay colours]; the contact sheet
    stacks a few of the slated rows over one legend bar. Thumbnails keep the plate's
    displayed aspect (sar); timing (frame_timing) keeps a variable-rate plate's frame
    times."""

    def __init__(self, movie_path: str, sheet_path: str, *, plate_size: tuple[int, int],
                 fps: Fraction, frames: int, width: int = REVIEW_WIDTH,
                 sheet_frames: int = CONTACT_SHEET_FRAMES, shot_id: str = "",
                 engine: str = "", first_frame: int = 0, sar: Fraction = Fraction(1),
                 timing: dict | None = None):
        ph, pw = plate_size
        self.col_w = max(2, min(pw, width // 3) // 2 * 2)
        self.col_h = max(2, int(round(self.col_w * ph / (pw * float(sar)) / 2)) * 2)
        self.width = 3 * self.col_w
        self.movie_path, self.sheet_path = movie_path, sheet_path
        self.fps, self.timing = fps, timing or {}
        self.shot_id, self.engine, self.first_frame = shot_id, engine, first_frame
        picks = np.linspace(0, frames - 1, num=min(sheet_frames, frames)).round().astype(int)
        self.sheet_indices = set(picks.tolist())
        self.sheet_rows: list[np.ndarray] = []
        self.legend = legend_bar(self.width, self.col_w)
        self._cm = None
        self._writer = None

    @property
    def frame_size(self) -> tuple[int, int]:
        """(height, width) of a review movie frame."""
        return (self.col_h + 2 * BAR, self.width)

    def __enter__(self) -> ReviewWriter:
        self._cm = open_writer(self.movie_path, "h264", fps=self.fps, size=self.frame_size,
                               **self.timing)
        self._writer = self._cm.__enter__()
        return self

    def _thumb(self, frame: np.ndarray, interpolation=cv2.INTER_AREA) -> np.ndarray:
        return cv2.resize(frame, (self.col_w, self.col_h), interpolation=interpolation)

    def add(self, index: int, plate: np.ndarray, mask: np.ndarray, result: np.ndarray) -> None:
        p = to_uint8(self._thumb(plate))
        m = self._thumb(mask, cv2.INTER_NEAREST)
        row = np.concatenate([
            slate_bar(self.width, shot_id=self.shot_id, frame=self.first_frame + index,
                      engine=self.engine),
            np.concatenate([p, mask_overlay(p, m), to_uint8(self._thumb(result))], axis=1)])
        self._writer.write(np.concatenate([row, self.legend]))
        if index in self.sheet_indices:
            self.sheet_rows.append(row)

    def __exit__(self, exc_type, exc, tb) -> bool:
        ok = self._cm.__exit__(exc_type, exc, tb)
        if exc_type is None and self.sheet_rows:
            self._write_sheet(np.concatenate([*self.sheet_rows, self.legend], axis=0))
        return bool(ok)

    def _write_sheet(self, sheet: np.ndarray) -> None:
        ok, png = cv2.imencode(".png", np.ascontiguousarray(sheet[..., ::-1]))
        if not ok:
            raise OutputError(f"cannot encode contact sheet {self.sheet_path}")
        write_bytes(self.sheet_path, png.tobytes(), what="contact sheet")
