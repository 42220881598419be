"""The grounded path end to end: a scripted VLM answer names an object in the synthetic push
clip (and a belonging of the primary), a tiny RANDOM-WEIGHT OWLv2 looks for the names, its
boxes prompt a tiny RANDOM-WEIGHT SAM2, and the masks become grey cells (affected object) or
join the black mask (belonging).

What random weights can prove: the names reach the detector as its text queries; each SAM2
prompt box is exactly a detection that lies near the primary; the grey cells of every frame
are exactly the VLM's cells plus the cells of that object's SAM2 mask from its first frame on;
the belonging's mask is exactly what joins the black mask; nothing found = today's grid cells,
bit for bit; models load once for many shots.
What they cannot prove: that the detector finds a blue box, that SAM2's mask follows it, or
the thresholds that suit real footage. That needs the real checkpoints (a GPU run).
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from testkit.detectors import SpyProcessor, tiny_owlv2
from testkit.masks import FAST_SAM2, good_answer
from testkit.masks import read_quadmask_frames as read
from void_engine import quadmask
from void_engine.errors import ModelLoadError
from void_engine.masks import grounding, locate, segment
from void_engine.masks.grey import object_cells
from void_engine.masks.grid import Grid
from void_engine.masks.grounding import GroundingConfig
from void_engine.masks.models import MaskModels, shared_models
from void_engine.masks.reasoning import build_quadmask
from void_engine.masks.vlm.client import VlmConfig
from void_engine.masks.vlm.schema import parse_answer


def vlm(server) -> VlmConfig:
    return VlmConfig(model="scripted-qwen-vl", base_url=server.url, timeout_s=5.0,
                     max_retries=0, frames=4, max_side=256)


@pytest.fixture(scope="module")
def owl(tmp_path_factory):
    return tiny_owlv2(tmp_path_factory.mktemp("owl"))


@pytest.fixture(scope="module")
def grid(push):
    h, w = push["clip"].frames.shape[1:3]
    return Grid.for_size(w, h)


@pytest.fixture(scope="module")
def grounded(push, grid, owl, vlm_server, tmp_path_factory):
    """Two shots on one MaskModels: a grounded quadmask, then a segmentation. Spies record
    the model loads, the detector's text queries and every SAM2 prompt and output."""
    clip = push["clip"]
    answer = good_answer(clip, grid)
    answer["integral_belongings"] = [{"noun": "red cap", "why": "worn by the red box"}]
    loads, sam2_runs = [], []
    real_run, real_sam2, real_det = locate.run_sam2, segment.load_predictor, \
        grounding.load_detector

    def spy_run(predictor, frames_dir, prompts, *, scale, progress=None, sink=None):
        seen: dict = {}

        def tee(frame, ids, logits):
            for oid, lg in zip(ids, logits, strict=True):
                seen[oid, frame] = np.maximum(seen.get((oid, frame), -np.inf), lg)
            sink(frame, ids, logits)

        sam2_runs.append({"prompts": prompts, "logits": seen})
        return real_run(predictor, frames_dir, prompts, scale=scale, progress=progress,
                        sink=tee)

    def spy_det(cfg):
        det = real_det(cfg)
        det.processor = SpyProcessor(det.processor)
        loads.append(("grounding", det))
        return det

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(locate, "run_sam2", spy_run)
        mp.setattr(segment, "load_predictor", lambda c: loads.append(("sam2", c)) or
                   real_sam2(c))
        mp.setattr(grounding, "load_detector", spy_det)
        models = MaskModels(sam2=FAST_SAM2,
                            grounding=GroundingConfig(model=owl, device="cpu", threshold=0.0,
                                                      detect_frames=3))
        out = tmp_path_factory.mktemp("grounded")
        vlm_server.play(("answer", json.dumps(answer)))
        result = models.build_quadmask(push["plate"], push["black"], str(out / "q.mp4"),
                                       shot_id="push", instruction="remove the red box",
                                       vlm=vlm(vlm_server))
        second = models.segment_shot(push["plate"],
                                     {"clicks": [{"frame": 4, "x": 40, "y": 48, "label": 1}]},
                                     str(out / "black2.mp4"), shot_id="push2")
    return {"result": result, "models": models, "loads": loads, "runs": sam2_runs,
            "answer": parse_answer(json.dumps(answer), rows=grid.rows, cols=grid.cols,
                                   num_frames=len(clip.frames)), "second": second}


def test_grounded_path_and_the_names_as_text_queries(grounded):
    r = grounded["result"]
    assert (r.path, r.degraded) == ("grounded", False)
    assert r.reason == "VLM scripted-qwen-vl answered; grounded: blue box, red cap"
    detector = next(m for kind, m in grounded["loads"] if kind == "grounding")
    frames_checked = len(detector.processor.texts)
    assert frames_checked >= 3
    assert detector.processor.texts == [[["blue box", "red cap"]]] * frames_checked
    assert r.details["locate"]["queries"] == ["blue box", "red cap"]


def test_sam2_is_prompted_with_the_detections_near_the_primary(grounded, push, grid):
    clip = push["clip"]
    short = min(clip.frames.shape[1:3])
    objects = {o["noun"]: o for o in grounded["result"].details["locate"]["objects"]}
    vlm_cells = object_cells(grounded["answer"].affected_objects[0], grid, len(clip.frames))
    prompts = grounded["runs"][0]["prompts"]
    for oid, noun, frac in ((1, "blue box", locate.NEAR_FRAC), (2, "red cap", locate.BELONG_FRAC)):
        dets = objects[noun]["detections"]
        assert dets, f"no detection kept for {noun}"
        for d in dets:
            f = d["frame"]
            box = prompts[f, oid].box
            assert np.allclose(box, d["box"], atol=0.05)  # details round to 0.1 px
            region = locate._dilate(clip.pusher[f], round(frac * short))
            if oid == 1:
                region |= grid.rasterize(vlm_cells[f], *region.shape)
            x0, y0, x1, y1 = box
            assert region[int(y0):int(np.ceil(y1)), int(x0):int(np.ceil(x1))].any()
        assert sorted({f for f, o in prompts if o == oid}) == objects[noun]["prompted_frames"]
    assert all(d["frame"] >= clip.contact for d in objects["blue box"]["detections"])


def test_grey_cells_are_vlm_cells_plus_the_sam2_mask_from_the_first_frame_on(grounded, push,
                                                                             grid):
    clip = push["clip"]
    q = read(grounded["result"].quadmask_uri)
    obj = grounded["answer"].affected_objects[0]
    vlm_cells = object_cells(obj, grid, len(q))
    logits = grounded["runs"][0]["logits"]
    added = 0
    for t in range(len(q)):
        expect = vlm_cells[t].copy()
        if t >= obj.first_appears_frame:
            sam2 = grid.cells_touched(logits[1, t] > 0)
            added += int((sam2 & ~expect).sum())
            expect |= sam2
        if t == 0:
            expect[:] = False  # nothing is affected on the clip's first frame
        got = grid.cells_touched(quadmask.affected_region(q[t]))
        assert np.array_equal(got, expect), f"frame {t}"
    assert obj.first_appears_frame == clip.contact > 0
    assert added > 0  # SAM2 contributed cells the VLM did not give


def test_the_belonging_joins_the_black_mask(grounded, push):
    clip = push["clip"]
    q = read(grounded["result"].quadmask_uri)
    logits = grounded["runs"][0]["logits"]
    extra = 0
    for t in range(len(q)):
        belong = logits[2, t].astype(np.float16).astype(np.float32) > 0  # stored as float16
        assert np.array_equal(quadmask.remove_region(q[t]), clip.pusher[t] | belong), t
        extra += int((belong & ~clip.pusher[t]).sum())
    assert extra > 0


def test_models_load_once_for_many_shots(grounded):
    assert [k for k, _ in grounded["loads"]] == ["grounding", "sam2"]
    m = grounded["models"]
    assert m.loads == {"sam2": 1, "grounding": 1}
    assert m.describe()["shots"] == {"segmentation": 1, "quadmask": 1}
    assert len(read(grounded["second"])) == 12
    # the module-level stage functions share one MaskModels per configuration
    assert shared_models(sam2=FAST_SAM2) is shared_models(sam2=FAST_SAM2)


def test_nothing_found_is_the_grid_cell_path_bit_for_bit(push, grid, owl, vlm_server, tmp_path):
    """Grounding that finds nothing (threshold 1.0: no score is above it) leaves today's VLM
    grid cells unchanged, says so, and never loads SAM2 (nothing to segment)."""
    answer = json.dumps(good_answer(push["clip"], grid))
    models = MaskModels(sam2=FAST_SAM2, grounding=GroundingConfig(model=owl, device="cpu",
                                                                  threshold=1.0))
    vlm_server.play(("answer", answer))
    r = models.build_quadmask(push["plate"], push["black"], str(tmp_path / "g.mp4"),
                              shot_id="push", instruction="", vlm=vlm(vlm_server))
    vlm_server.play(("answer", answer))
    plain = build_quadmask(push["plate"], push["black"], str(tmp_path / "p.mp4"),
                           shot_id="push", instruction="", vlm=vlm(vlm_server))
    assert (r.path, r.degraded, plain.path) == ("vlm", False, "vlm")
    assert "grounding found none of: blue box (VLM cells used)" in r.reason
    assert "no SAM2 or grounding model configured" in plain.reason
    assert np.array_equal(read(r.quadmask_uri), read(plain.quadmask_uri))
    assert models.loads == {"sam2": 0, "grounding": 1}


def test_grounding_needs_sam2(owl):
    with pytest.raises(ModelLoadError, match="needs SAM2"):
        MaskModels(sam2=None, grounding=GroundingConfig(model=owl))
