"""Helpers of the flow tests: tiny synthetic shots written with the engine's own video IO, and
manifest rows for them."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

TESTS = Path(__file__).resolve().parents[1]  # on PYTHONPATH for Ray workers: testkit.engines
REPO = TESTS.parent
PLUGIN = "testkit.engines"


def write_shot(folder: Path, name: str, *, frames: int = 6, size=(36, 64), seed: int = 0):
    """A tiny plate (moving gradient) and its quadmask (a moving square to remove)."""
    from void_engine.io import open_writer

    rng = np.random.default_rng(seed)
    h, w = size
    d = folder / name
    d.mkdir(parents=True, exist_ok=True)
    base = rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)
    with open_writer(str(d / "plate.mkv"), "ffv1", fps=Fraction(24), size=size) as wr:
        for t in range(frames):
            wr.write(np.roll(base, t, axis=1))
    mask = np.full((h, w), 255, np.uint8)
    with open_writer(str(d / "quadmask.mkv"), "ffv1", fps=Fraction(24), size=size,
                     channels=1) as wr:
        for t in range(frames):
            m = mask.copy()
            m[8:20, 10 + t:22 + t] = 0
            m[20:26, 10 + t:22 + t] = 127
            wr.write(m)
    return d


def tiny_rows(dirs: list[Path], **overrides) -> list[dict]:
    return [{"shot_id": d.name, "plate_uri": str(d / "plate.mkv"),
             "quadmask_uri": str(d / "quadmask.mkv"), "prompt": "empty", "codec": "ffv1",
             "passes": "2", "engine": "test-twopass", **overrides} for d in dirs]
