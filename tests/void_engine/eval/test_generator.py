"""The counterfactual generator: deterministic from its seed, lossless files, a quadmask that
covers exactly where the clip and its ground truth differ, a manifest `void-batch run` takes."""
from __future__ import annotations

import json

import numpy as np
import pytest

from manifests.loader import load_manifest
from void_engine import io
from void_engine import quadmask as qm
from void_engine.errors import InputError
from void_engine.eval.generator import (
    MASK,
    PLATE,
    TRUTH,
    SetOptions,
    generate_set,
    sample_spec,
)
from void_engine.eval.scene import Scene

SIZE = (96, 160)


def render(spec):
    frames = [Scene(spec).frame(t) for t in range(spec.frames)]
    return [np.stack(a) for a in zip(*frames, strict=True)]


@pytest.mark.parametrize("index", range(6))  # static/pan/zoom, mover/occluder, push
def test_same_seed_renders_the_same_bytes_and_another_seed_does_not(index):
    a = render(sample_spec(7, index, SIZE, 6))
    b = render(sample_spec(7, index, SIZE, 6))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    other = render(sample_spec(8, index, SIZE, 6))
    assert not np.array_equal(a[0], other[0])


@pytest.mark.parametrize("index", range(6))
def test_clip_and_truth_differ_only_inside_the_quadmask(index):
    clip, truth, masks = render(sample_spec(3, index, SIZE, 8))
    keep = masks == qm.KEEP
    assert qm.is_quantized(masks)
    assert np.array_equal(clip[keep], truth[keep])
    obj = qm.remove_region(masks)
    assert obj.any() and (clip[obj] != truth[obj]).any(axis=-1).mean() > 0.5


def test_effects_reach_the_affected_region():
    # index 2: zoom camera, shadow on, the object pushes a box
    spec = sample_spec(0, 2, SIZE, 12)
    assert spec.interaction and spec.shadow and spec.camera == "zoom"
    clip, truth, masks = render(spec)
    aff = masks == qm.AFFECTED
    assert aff[0].any()  # the shadow from the first frame on
    changed = (clip != truth).any(axis=-1)
    assert changed[aff].mean() > 0.3  # shadow/box pixels really differ from the truth
    # the box is still at rest in frame 0 and carried away by the end: the clean render
    # keeps it where it rested, so the affected region grows once the push starts
    assert aff[-1].sum() > aff[0].sum()


def test_written_set_is_lossless_and_loads_as_a_manifest(tmp_path):
    manifest = generate_set(tmp_path, SetOptions(clips=2, frames=5, seed=1, sizes=(SIZE,)))
    m = load_manifest(manifest)
    assert m.ok and len(m.shots) == 2
    shot = m.shots[1]
    info = json.loads((tmp_path / shot.shot_id / "clip.json").read_text())
    clip, truth, masks = render(sample_spec(1, 1, SIZE, 5))
    folder = tmp_path / shot.shot_id
    got_plate = np.stack(list(io.read_frames(io.probe(str(folder / PLATE)))))
    got_truth = np.stack(list(io.read_frames(io.probe(str(folder / TRUTH)))))
    got_mask = np.stack(list(qm.read_quadmask(str(folder / MASK))))
    assert np.array_equal(got_plate, clip)  # libx264rgb crf 0: lossless RGB
    assert np.array_equal(got_truth, truth)  # FFV1: lossless
    assert np.array_equal(got_mask, masks)  # x264 qp 0 grey: lossless
    assert info["properties"]["camera"] == "pan" and info["properties"]["frames"] == 5
    assert shot.plate_uri == str(folder / PLATE) and shot.quadmask_uri == str(folder / MASK)


def test_bad_options_are_refused(tmp_path):
    with pytest.raises(InputError, match="at least 1 clip"):
        generate_set(tmp_path, SetOptions(clips=0))
    with pytest.raises(InputError, match="outside"):
        generate_set(tmp_path, SetOptions(clips=1, sizes=((32, 32),)))
