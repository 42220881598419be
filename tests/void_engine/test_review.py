"""Review media: side-by-side movie and contact sheet."""
from __future__ import annotations

from fractions import Fraction

import cv2
import numpy as np

from void_engine import io
from void_engine.quadmask import KEEP, REMOVE
from void_engine.review import ReviewWriter, mask_overlay, psnr


def test_review_movie_and_contact_sheet(tmp_path):
    plate = np.full((300, 400, 3), 100, np.uint8)
    mask = np.full((300, 400), KEEP, np.uint8)
    mask[100:200, 100:200] = REMOVE
    result = np.full((300, 400, 3), 200, np.uint8)
    movie, sheet = str(tmp_path / "r.mp4"), str(tmp_path / "c.png")
    with ReviewWriter(movie, sheet, plate_size=(300, 400), fps=Fraction(12), frames=10,
                      width=600) as rw:
        for i in range(10):
            rw.add(i, plate, mask, result)
    info = io.probe(movie)
    assert (info.width, info.height, info.frames) == (600, 150, 10)
    img = cv2.imread(sheet)[..., ::-1]
    assert img.shape == (4 * 150, 600, 3)
    # columns: plate | overlay (red where removed) | result
    assert abs(int(img[140, 100, 0]) - 100) < 3
    r, g, _ = img[75, 250]
    assert r > 150 and g < 100
    assert abs(int(img[140, 500, 0]) - 200) < 3


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
