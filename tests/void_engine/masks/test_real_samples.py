"""The quadmask paths on a real sample (BigBen, 544x360, 50 frames): its shipped quadmask is
split into black + grey, then rebuilt through build_quadmask."""
from __future__ import annotations

import numpy as np
import pytest

from void_engine import quadmask
from void_engine.masks import maskio
from void_engine.masks.grid import Grid
from void_engine.masks.reasoning import build_quadmask


@pytest.fixture(scope="module")
def bigben(samples_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("bigben")
    folder = samples_dir / "BigBen"
    q = np.stack(list(quadmask.read_quadmask(str(folder / "trimask_quadmask.mp4"))))
    size = q.shape[1:]
    black = maskio.write_mask(str(d / "black.mp4"),
                              np.where(quadmask.remove_region(q), 0, 255).astype(np.uint8),
                              fps=12, size=size)
    grey = maskio.write_mask(str(d / "grey.mp4"),
                             np.where(quadmask.affected_region(q), 127, 255).astype(np.uint8),
                             fps=12, size=size)
    return {"dir": d, "plate": str(folder / "input_video.mp4"), "q": q, "black": black,
            "grey": grey}


def read(uri):
    with maskio.opened(uri, "quadmask") as info:
        return np.stack(list(maskio.read_mask(info)))


def test_given_grey_rebuilds_the_shipped_quadmask(bigben):
    r = build_quadmask(bigben["plate"], bigben["black"], str(bigben["dir"] / "q.mp4"),
                       shot_id="BigBen", instruction="", grey_mask_uri=bigben["grey"])
    out, ref = read(r.quadmask_uri), bigben["q"]
    assert r.path == "given" and out.shape == ref.shape
    assert np.array_equal(out[1:], ref[1:])  # lossless, exact rule
    # frame 0: the shipped mask keeps grey there; the convention clears it
    assert not quadmask.affected_region(out[0]).any()
    assert np.array_equal(quadmask.remove_region(out[0]), quadmask.remove_region(ref[0]))


def test_fallback_on_a_real_plate_stays_near_the_object(bigben):
    r = build_quadmask(bigben["plate"], bigben["black"], str(bigben["dir"] / "f.mp4"),
                       shot_id="BigBen", instruction="remove the boat")
    out = read(r.quadmask_uri)
    assert (r.path, r.error) == ("fallback", None)
    assert len(out) == 50 and quadmask.is_quantized(out)
    grid = Grid.for_size(544, 360)
    assert r.details["grid"] == [grid.rows, grid.cols]
    obj = quadmask.remove_region(bigben["q"])
    for t in range(1, 50):
        aff = grid.cells_touched(quadmask.affected_region(out[t]))
        objc = grid.cells_touched(obj[t])
        # every grey cell lies within two cells of the object (contact ring + nearby motion)
        near = np.zeros_like(objc)
        for dr in range(-2, 3):
            for dc in range(-2, 3):
                near |= np.roll(np.roll(objc, dr, 0), dc, 1)
        assert not (aff & ~near).any(), t
