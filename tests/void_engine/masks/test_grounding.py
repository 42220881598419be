"""The grounding detector on its own, with tiny RANDOM-WEIGHT Grounding DINO and OWLv2 folders
built by the test and loaded like downloaded models. Random weights cannot find anything;
what is checked: the VLM's names are what the model is asked (as its text queries, token for
token), every detection carries one of those names and a box inside the image, the threshold
filters, the box geometry of each family, and load errors are clear."""
from __future__ import annotations

import json

import numpy as np
import pytest

from testkit.detectors import SpyProcessor, tiny_grounding_dino, tiny_owlv2
from void_engine.errors import ModelLoadError
from void_engine.masks.grounding import GroundingConfig, boxes_to_pixels, clean_nouns, load_detector

NOUNS = ["Blue box", "red cap"]


@pytest.fixture(scope="module", params=["owlv2", "grounding-dino"])
def detector(request, tmp_path_factory):
    build = {"owlv2": tiny_owlv2, "grounding-dino": tiny_grounding_dino}[request.param]
    folder = build(tmp_path_factory.mktemp(request.param))
    det = load_detector(GroundingConfig(model=folder, device="cpu", threshold=0.0))
    assert det.family == request.param
    return det


@pytest.fixture
def image():
    return np.random.default_rng(0).integers(0, 255, (96, 160, 3), dtype=np.uint8)


def test_names_are_the_text_queries(detector, image, monkeypatch):
    spy = SpyProcessor(detector.processor)
    monkeypatch.setattr(detector, "processor", spy)
    found = detector.detect(image, NOUNS)
    assert spy.texts == [[["blue box", "red cap"]]]
    assert found and {d.noun for d in found} <= {"blue box", "red cap"}
    for d in found:
        x0, y0, x1, y1 = d.box
        assert 0 <= x0 < x1 <= 160 and 0 <= y0 < y1 <= 96 and d.score > 0.0


def test_threshold_filters(detector, image):
    strict = type(detector)(GroundingConfig(model="x", threshold=1.0), detector.model,
                            detector.processor, detector.family, detector.device)
    assert strict.detect(image, NOUNS) == []
    scores = [d.score for d in detector.detect(image, NOUNS)]
    half = type(detector)(GroundingConfig(model="x", threshold=float(np.median(scores))),
                          detector.model, detector.processor, detector.family, detector.device)
    assert 0 < len(half.detect(image, NOUNS)) < len(scores)


def test_grounding_dino_scores_each_name_on_its_own_tokens(tmp_path, image):
    det = load_detector(GroundingConfig(model=tiny_grounding_dino(tmp_path), device="cpu"))
    inputs = det.processor(text=[clean_nouns(NOUNS)], images=[image], return_tensors="pt")
    ids = inputs["input_ids"][0].tolist()
    spans = det.token_spans(clean_nouns(NOUNS), ids)
    assert [det.processor.tokenizer.decode([ids[i] for i in s]) for s in spans] == \
        ["blue box", "red cap"]


def test_box_geometry_per_family():
    """OWLv2 pads the image to a square (bottom/right) before predicting, so its boxes are
    fractions of that square; Grounding DINO's are fractions of the image."""
    box = np.array([[0.5, 0.25, 0.2, 0.1]])  # cx, cy, w, h
    assert boxes_to_pixels(box, "owlv2", 100, 200).tolist() == [[80.0, 40.0, 120.0, 60.0]]
    assert boxes_to_pixels(box, "grounding-dino", 100, 200).tolist() == \
        [[80.0, 20.0, 120.0, 30.0]]
    # clipped to the image
    assert boxes_to_pixels(np.array([[0.95, 0.9, 0.2, 0.4]]), "grounding-dino", 100, 200
                           ).tolist() == [[170.0, 70.0, 200.0, 100.0]]


def test_clean_nouns():
    assert clean_nouns(["The  Hat.", "the hat", "", " . "]) == ["the hat"]


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(ModelLoadError, match="grounding model .* not found"):
        load_detector(GroundingConfig(model=str(tmp_path / "missing")))
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ModelLoadError, match="is a 'bert'; supported: grounding-dino, owlv2"):
        load_detector(GroundingConfig(model=str(tmp_path / "bert")))


def test_from_env(monkeypatch):
    monkeypatch.delenv("VOID_GROUNDING_MODEL", raising=False)
    assert GroundingConfig.from_env() is None
    monkeypatch.setenv("VOID_GROUNDING_MODEL", "IDEA-Research/grounding-dino-base")
    monkeypatch.setenv("VOID_GROUNDING_THRESHOLD", "0.4")
    assert GroundingConfig.from_env() == GroundingConfig(
        model="IDEA-Research/grounding-dino-base", threshold=0.4)
