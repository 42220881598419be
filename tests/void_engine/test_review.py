"""Review media: side-by-side movie and contact sheet."""
from __future__ import annotations

from fractions import Fraction

import cv2
import numpy as np

from void_engine import io
from void_engine.quadmask import AFFECTED, KEEP, REMOVE
from void_engine.review import (
    BAR,
    OVERLAY,
    ReviewWriter,
    legend_bar,
    legend_swatches,
    mask_overlay,
    psnr,
    slate_bar,
)


def test_review_movie_and_contact_sheet_are_slated_and_carry_a_legend(tmp_path):
    plate = np.full((300, 400, 3), 100, np.uint8)
    mask = np.full((300, 400), KEEP, np.uint8)
    mask[100:200, 100:200] = REMOVE
    mask[100:200, 200:240] = AFFECTED
    result = np.full((300, 400, 3), 200, np.uint8)
    movie, sheet = str(tmp_path / "r.mp4"), str(tmp_path / "c.png")
    with ReviewWriter(movie, sheet, plate_size=(300, 400), fps=Fraction(12), frames=10,
                      width=600, shot_id="sh010", engine="propagate", first_frame=100) as rw:
        for i in range(10):
            rw.add(i, plate, mask, result)
    info = io.probe(movie)
    assert (info.width, info.height, info.frames) == (600, 150 + 2 * BAR, 10)
    img = cv2.imread(sheet)[..., ::-1]
    row_h = BAR + 150
    assert img.shape == (4 * row_h + BAR, 600, 3)  # 4 slated rows over one legend bar
    # columns under the slate: plate | overlay (red where removed) | result
    assert abs(int(img[BAR + 140, 100, 0]) - 100) < 3
    r, g, _ = img[BAR + 75, 250]
    assert r > 150 and g < 100
    assert abs(int(img[BAR + 140, 500, 0]) - 200) < 3
    # Each row's slate names the shot, its plate frame (first_frame + index) and the engine:
    # the sheet (lossless PNG) holds exactly those bars, and they differ from row to row.
    bars = [img[k * row_h:k * row_h + BAR] for k in range(4)]
    for bar, index in zip(bars, (0, 3, 6, 9), strict=True):
        assert np.array_equal(bar, slate_bar(600, shot_id="sh010", frame=100 + index,
                                             engine="propagate"))
        assert (bar > 200).sum() > 200  # white text on the dark bar
    assert not np.array_equal(bars[0], bars[1])
    # The legend: one swatch per overlay colour, painted in that colour exactly.
    legend = img[4 * row_h:]
    assert np.array_equal(legend, legend_bar(600, 200))
    for value, (ys, xs) in legend_swatches(600, 200).items():
        assert (legend[ys, xs] == OVERLAY[value]).all()
    # The movie's frame 5 carries frame 105's slate (h264: closest, not exact).
    frame5 = next(io.read_frames(info, first=5, count=1))[:BAR].astype(np.float64)
    near = {f: psnr(frame5, slate_bar(600, shot_id="sh010", frame=f, engine="propagate"))
            for f in (100, 105, 109)}
    assert max(near, key=near.get) == 105


def test_no_review_files_on_error(tmp_path):
    movie, sheet = str(tmp_path / "r.mp4"), str(tmp_path / "c.png")
    try:
        with ReviewWriter(movie, sheet, plate_size=(64, 64), fps=Fraction(12), frames=2) as rw:
            rw.add(0, np.zeros((64, 64, 3), np.uint8), np.full((64, 64), KEEP, np.uint8),
                   np.zeros((64, 64, 3), np.uint8))
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert list(tmp_path.iterdir()) == []


def test_overlay_and_psnr():
    frame = np.zeros((4, 4, 3), np.uint8)
    mask = np.full((4, 4), KEEP, np.uint8)
    mask[0, 0] = REMOVE
    over = mask_overlay(frame, mask)
    assert over[0, 0, 0] > 100 and (over[1:, 1:] == 0).all()
    assert psnr(frame, frame) == float("inf")
    assert abs(psnr(np.zeros(4), np.full(4, 255.0)) - 0.0) < 1e-9
