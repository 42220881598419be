"""Zero-shot object detection of the objects the VLM names (the grounding step).

The reference mask tool segments each noun the VLM names with a text-prompted segmenter (SAM3,
or LangSAM = Grounding DINO + SAM) before gridding. Here a zero-shot detector that
`transformers` ships turns the names into boxes on a few frames, and SAM2 (segment.run_sam2)
turns the boxes into masks propagated both ways. Two detector families are supported, loaded
through the Auto classes from a local folder or the Hugging Face cache (a hub id downloads
where a network exists):

- Grounding DINO (`model_type` "grounding-dino", e.g. IDEA-Research/grounding-dino-base):
  the names are joined into one caption ("blue box. hat."); a box's score for a name is its
  best token score over that name's tokens;
- OWLv2 (`owlv2`, e.g. google/owlv2-base-patch16-ensemble): one text query per name; boxes
  are relative to the image padded to a square (bottom/right), not to the image itself.
"""
from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass

import numpy as np

from void_engine.errors import ModelLoadError

log = logging.getLogger(__name__)

FAMILIES = {"grounding-dino": "grounding-dino", "owlv2": "owlv2"}


@dataclass(frozen=True)
class GroundingConfig:
    """Which detector to run and how strict it is. `model`: a folder with config.json, the
    processor files and weights, or a hub id found in the Hugging Face cache."""

    model: str
    device: str = "auto"  # "auto" -> cuda when available, else cpu
    threshold: float = 0.3  # a box counts for a name when its score is ABOVE this (0..1)
    detect_frames: int = 4  # frames of the clip the detector looks at (spread evenly)

    @classmethod
    def from_env(cls) -> GroundingConfig | None:
        """VOID_GROUNDING_MODEL (folder or hub id), VOID_GROUNDING_DEVICE,
        VOID_GROUNDING_THRESHOLD; None when no model is configured (grid cells only)."""
        env = os.environ
        if not env.get("VOID_GROUNDING_MODEL"):
            return None
        return cls(model=env["VOID_GROUNDING_MODEL"],
                   device=env.get("VOID_GROUNDING_DEVICE", cls.device),
                   threshold=float(env.get("VOID_GROUNDING_THRESHOLD", cls.threshold)))


@dataclass(frozen=True)
class Detection:
    noun: str
    score: float
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels of the image given


def clean_nouns(nouns: list[str]) -> list[str]:
    """Lower-cased, de-duplicated names without '.', which Grounding DINO uses as separator."""
    out: list[str] = []
    for n in nouns:
        n = " ".join(n.replace(".", " ").lower().split())
        if n and n not in out:
            out.append(n)
    return out


def boxes_to_pixels(cxcywh: np.ndarray, family: str, height: int,
                    width: int) -> np.ndarray:
    """(Q, 4) normalised centre/size boxes -> (Q, 4) x0, y0, x1, y1 pixels clipped to the image.
    OWLv2 normalises by the square the image was padded to; Grounding DINO by the image."""
    sx, sy = (max(height, width),) * 2 if family == "owlv2" else (width, height)
    cx, cy, w, h = (cxcywh[:, i] for i in range(4))
    xyxy = np.stack([(cx - w / 2) * sx, (cy - h / 2) * sy, (cx + w / 2) * sx,
                     (cy + h / 2) * sy], axis=1)
    xyxy[:, 0::2] = xyxy[:, 0::2].clip(0, width)
    xyxy[:, 1::2] = xyxy[:, 1::2].clip(0, height)
    return xyxy


class Detector:
    """A loaded zero-shot detector. `detect(image, nouns)` -> detections above the threshold."""

    def __init__(self, config: GroundingConfig, model, processor, family: str, device: str):
        self.config, self.model, self.processor = config, model, processor
        self.family, self.device = family, device

    def detect(self, image: np.ndarray, nouns: list[str]) -> list[Detection]:
        """Detections of each of `nouns` in one RGB uint8 image, best first per noun."""
        import torch

        nouns = clean_nouns(nouns)
        if not nouns:
            return []
        h, w = image.shape[:2]
        inputs = self.processor(text=[nouns], images=[image], return_tensors="pt")
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        with torch.inference_mode():
            out = self.model(**inputs)
        scores = self._noun_scores(out, inputs["input_ids"], nouns)  # (Q, N)
        boxes = boxes_to_pixels(out.pred_boxes[0].float().cpu().numpy(), self.family, h, w)
        found = []
        for k, noun in enumerate(nouns):
            for q in np.argsort(-scores[:, k]):
                x0, y0, x1, y1 = boxes[q]
                if scores[q, k] > self.config.threshold and x1 > x0 and y1 > y0:
                    found.append(Detection(noun, float(scores[q, k]),
                                           (float(x0), float(y0), float(x1), float(y1))))
        return found

    def _noun_scores(self, out, input_ids, nouns: list[str]) -> np.ndarray:
        probs = out.logits[0].float().sigmoid().cpu().numpy()  # (Q, N) or (Q, text tokens)
        if self.family == "owlv2":
            return probs[:, :len(nouns)]
        spans = self.token_spans(nouns, input_ids[0].tolist())
        return np.stack([probs[:, idx].max(axis=1) for idx in spans], axis=1)

    def token_spans(self, nouns: list[str], input_ids: list[int]) -> list[list[int]]:
        """Grounding DINO: positions of each noun's tokens in the caption the processor built
        ("a. b."), found through the tokenizer's character offsets."""
        caption = ". ".join(nouns) + "."
        enc = self.processor.tokenizer(caption, return_offsets_mapping=True)
        if enc["input_ids"] != input_ids[:len(enc["input_ids"])]:
            raise RuntimeError("the Grounding DINO processor built another caption than expected")
        spans, start = [], 0
        for noun in nouns:
            end = start + len(noun)
            spans.append([i for i, (a, b) in enumerate(enc["offset_mapping"])
                          if b > a and a >= start and b <= end])
            start = end + 2  # ". "
        return spans


_LOAD_LOCK = threading.Lock()


def load_detector(config: GroundingConfig) -> Detector:
    """Build the detector of `config` (callers keep it: masks.models.MaskModels)."""
    import torch
    from transformers import AutoConfig, AutoModelForZeroShotObjectDetection, AutoProcessor

    device = config.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    with _LOAD_LOCK:
        try:
            model_type = AutoConfig.from_pretrained(config.model).model_type
        except (OSError, ValueError) as exc:
            raise ModelLoadError(
                f"grounding model {config.model!r} not found: give a folder with config.json, "
                f"processor and weights, or a model in the Hugging Face cache ({exc})"[:400]
            ) from exc
        family = FAMILIES.get(model_type)
        if family is None:
            raise ModelLoadError(f"grounding model {config.model!r} is a {model_type!r}; "
                                 f"supported: {', '.join(FAMILIES)}")
        try:
            processor = AutoProcessor.from_pretrained(config.model)
            model = AutoModelForZeroShotObjectDetection.from_pretrained(config.model)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"grounding model {config.model!r} is incomplete: {exc}"[:400]
                                 ) from exc
    log.info("grounding detector %s (%s) on %s", config.model, family, device)
    return Detector(config, model.to(device).eval(), processor, family, device)
