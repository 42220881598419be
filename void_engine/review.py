"""Review media per shot: a side-by-side movie (plate | mask overlay | result) and a contact
sheet PNG of a few frames with the same three columns, plus the PSNR used to judge results.

Built while encode_shot streams the plate, so it costs three small resizes per frame.
"""
from __future__ import annotations

import os
import tempfile
from fractions import Fraction

import cv2
import numpy as np

from void_engine.config import CONTACT_SHEET_FRAMES, REVIEW_WIDTH
from void_engine.errors import OutputError
from void_engine.io import open_writer, to_uint8
from void_engine.io.uri import make_public
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


class ReviewWriter:
    """Context manager: `add(index, plate, mask, result)` per frame; on a clean exit the movie
    (h264) and the contact sheet (PNG) appear, on error neither does."""

    def __init__(self, movie_path: str, sheet_path: str, *, plate_size: tuple[int, int],
                 fps: Fraction, frames: int, width: int = REVIEW_WIDTH,
                 sheet_frames: int = CONTACT_SHEET_FRAMES):
        ph, pw = plate_size
        self.col_w = max(2, min(pw, width // 3) // 2 * 2)
        self.col_h = max(2, int(round(self.col_w * ph / pw / 2)) * 2)
        self.movie_path, self.sheet_path = movie_path, sheet_path
        self.fps = fps
        picks = np.linspace(0, frames - 1, num=min(sheet_frames, frames)).round().astype(int)
        self.sheet_indices = set(picks.tolist())
        self.sheet_rows: list[np.ndarray] = []
        self._cm = None
        self._writer = None

    def __enter__(self) -> ReviewWriter:
        self._cm = open_writer(self.movie_path, "h264", fps=self.fps,
                               size=(self.col_h, 3 * self.col_w))
        self._writer = self._cm.__enter__()
        return self

    def _thumb(self, frame: np.ndarray, interpolation=cv2.INTER_AREA) -> np.ndarray:
        return cv2.resize(frame, (self.col_w, self.col_h), interpolation=interpolation)

    def add(self, index: int, plate: np.ndarray, mask: np.ndarray, result: np.ndarray) -> None:
        p = to_uint8(self._thumb(plate))
        m = self._thumb(mask, cv2.INTER_NEAREST)
        row = np.concatenate([p, mask_overlay(p, m), to_uint8(self._thumb(result))], axis=1)
        self._writer.write(row)
        if index in self.sheet_indices:
            labelled = row.copy()
            cv2.putText(labelled, f"frame {index}", (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7,
                        (255, 255, 255), 2, cv2.LINE_AA)
            self.sheet_rows.append(labelled)

    def __exit__(self, exc_type, exc, tb) -> bool:
        ok = self._cm.__exit__(exc_type, exc, tb)
        if exc_type is None and self.sheet_rows:
            self._write_sheet(np.concatenate(self.sheet_rows, axis=0))
        return bool(ok)

    def _write_sheet(self, sheet: np.ndarray) -> None:
        folder = os.path.dirname(os.path.abspath(self.sheet_path))
        fd, tmp = tempfile.mkstemp(prefix=".contact.", suffix=".png", dir=folder)
        os.close(fd)
        make_public(tmp)
        if not cv2.imwrite(tmp, np.ascontiguousarray(sheet[..., ::-1])):
            os.remove(tmp)
            raise OutputError(f"cannot write contact sheet {self.sheet_path}")
        os.replace(tmp, self.sheet_path)
