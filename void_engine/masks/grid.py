"""The analysis grid: the one home of grid cells (VLM prompt, fallback, grey masks).

Same grid as the reference mask tool (docs/masks.md) so answers and shipped masks line up:
`min_grid` cells on the short side, the long side gets max(min_grid, round(min_grid * ratio)),
and cell (r, c) spans rows [int(r*h/R), int((r+1)*h/R)) and columns [int(c*w/C), int((c+1)*w/C)).
Cells are proportional, so a cell set means the same region at plate, model or preview size;
grey masks travel as (T, R, C) boolean cell maps and are rasterised at whatever size is needed.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Grid:
    rows: int
    cols: int

    @classmethod
    def for_size(cls, width: int, height: int, min_grid: int = 8) -> Grid:
        if width <= 0 or height <= 0 or min_grid <= 0:
            raise ValueError(f"bad grid request {width}x{height} min_grid={min_grid}")
        if width >= height:
            return cls(min_grid, max(min_grid, round(min_grid * width / height)))
        return cls(max(min_grid, round(min_grid * height / width)), min_grid)

    def row_edges(self, height: int) -> np.ndarray:
        return np.array([int(r * height / self.rows) for r in range(self.rows + 1)])

    def col_edges(self, width: int) -> np.ndarray:
        return np.array([int(c * width / self.cols) for c in range(self.cols + 1)])

    def cell_of_pixel(self, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-pixel row index (H,) and column index (W,) at this image size."""
        ry = np.searchsorted(self.row_edges(height), np.arange(height), side="right") - 1
        cx = np.searchsorted(self.col_edges(width), np.arange(width), side="right") - 1
        return ry, cx

    def cells_touched(self, mask: np.ndarray) -> np.ndarray:
        """(R, C) bool: cells containing at least one True pixel of the (H, W) mask."""
        m = np.asarray(mask, dtype=bool)
        h, w = m.shape
        ry, cx = self.cell_of_pixel(h, w)
        out = np.zeros((self.rows, self.cols), dtype=bool)
        ys, xs = np.nonzero(m)
        out[ry[ys], cx[xs]] = True
        return out

    def rasterize(self, cells: np.ndarray, height: int, width: int) -> np.ndarray:
        """(H, W) bool: every pixel of every True cell (cells is (R, C))."""
        cells = np.asarray(cells, dtype=bool)
        if cells.shape != (self.rows, self.cols):
            raise ValueError(f"cell map {cells.shape} does not match grid {self.rows}x{self.cols}")
        ry, cx = self.cell_of_pixel(height, width)
        return cells[ry[:, None], cx[None, :]]

    def draw(self, image: np.ndarray, colour: tuple[int, int, int] = (255, 255, 0),
             label: str | None = None) -> np.ndarray:
        """Copy of an RGB uint8 image with grid lines in `colour` (RGB), row numbers on the
        left, column numbers on top and an optional caption (e.g. "frame 12") bottom-left."""
        out = np.ascontiguousarray(image.copy())
        h, w = out.shape[:2]
        thick = max(1, round(min(h, w) / 300))
        for y in self.row_edges(h)[1:-1]:
            cv2.line(out, (0, int(y)), (w - 1, int(y)), colour, thick)
        for x in self.col_edges(w)[1:-1]:
            cv2.line(out, (int(x), 0), (int(x), h - 1), colour, thick)
        scale = max(0.3, min(h, w) / 900)
        rows, cols = self.row_edges(h), self.col_edges(w)
        for r in range(self.rows):
            _text(out, str(r), (2, int(rows[r]) + int(14 * scale / 0.4)), scale, colour)
        for c in range(self.cols):
            _text(out, str(c), (int(cols[c]) + 3, int(12 * scale / 0.4)), scale, colour)
        if label:
            _text(out, label, (4, h - 6), scale * 1.3, colour)
        return out


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float,
          colour: tuple[int, int, int]) -> None:
    # dark outline first so labels stay readable on bright plates
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def fill_box(cells: np.ndarray, center_row: float, center_col: float, size_rows: int,
             size_cols: int) -> None:
    """Set a size_rows x size_cols block of cells centred on (center_row, center_col), clipped."""
    rows, cols = cells.shape
    r0 = int(np.floor(center_row - (size_rows - 1) / 2 + 0.5))
    c0 = int(np.floor(center_col - (size_cols - 1) / 2 + 0.5))
    cells[max(0, r0):max(0, min(rows, r0 + size_rows)),
          max(0, c0):max(0, min(cols, c0 + size_cols))] = True
