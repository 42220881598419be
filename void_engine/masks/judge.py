"""A VLM judge for the morphing gate (gate.morphing_gate(..., judge=vlm_judge(config))).

The measured gate catches shape drift that optical flow cannot explain; a VLM looking at the
pass-1 result can also see what flow does not measure (an object that melts slowly, a texture
that swims). The judge is shown a few pass-1 frames with the synthesized region outlined and
asked whether that content morphs. Its vote can only ADD pass 2 (the gate ignores a "no"
when the measure says yes); a judge that fails (outage, bad answer) adds nothing and says why,
so the measured decision stands.
"""
from __future__ import annotations

import json
import logging
import re

import cv2
import jsonschema
import numpy as np

from void_engine import quadmask
from void_engine.masks.vlm.client import VlmConfig, ask, make_backend
from void_engine.masks.vlm.errors import VlmError
from void_engine.masks.vlm.prompt import VlmRequest, sample_indices
from void_engine.redact import redact

log = logging.getLogger(__name__)

JUDGE_VERSION = "gate-judge-v1"  # in the request text, so in every cache key
OUTLINE = (255, 0, 255)  # RGB magenta; the text names it
SCHEMA = {"type": "object", "additionalProperties": False,
          "required": ["run_pass2", "confidence", "why"],
          "properties": {"run_pass2": {"type": "boolean"},
                         "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                         "why": {"type": "string", "maxLength": 400}}}
SYSTEM = ("You review the results of a visual-effects object-removal tool. You answer with one "
          "JSON object that follows the given schema, and nothing else.")
_FENCE = re.compile(r"^\s*```(?:json)?\s*|\s*```\s*$", re.IGNORECASE)


def parse_verdict(text: str) -> dict:
    """The judge's JSON answer, validated; VlmError (bad_json / schema) otherwise."""
    try:
        data = json.loads(_FENCE.sub("", str(text or "").strip()))
    except json.JSONDecodeError as exc:
        raise VlmError("bad_json", f"verdict is not valid JSON ({exc.msg})") from None
    try:
        jsonschema.validate(data, SCHEMA)
    except jsonschema.ValidationError as exc:
        raise VlmError("schema", f"verdict: {exc.message[:200]}") from None
    return data


def judge_request(video: np.ndarray, masks: np.ndarray, *, frames: int = 6,
                  max_side: int = 512) -> VlmRequest:
    """Sampled pass-1 frames (T, H, W, 3) with the change region of `masks` (T, H, W)
    outlined, and the question."""
    idx = sample_indices(len(video), frames)
    images = []
    for i in idx:
        img = np.ascontiguousarray(video[i])
        region = quadmask.change_region(masks[i]).astype(np.uint8)
        contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        img = cv2.drawContours(img.copy(), contours, -1, OUTLINE, max(1, min(img.shape[:2]) // 200))
        s = min(1.0, max_side / max(img.shape[:2]))
        if s < 1:
            img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, 85])
        if not ok:
            raise RuntimeError("JPEG encoding of a judge frame failed")
        images.append(buf.tobytes())
    text = (f"[{JUDGE_VERSION}] The images are frames {', '.join(map(str, idx))} (in order) of a "
            f"shot after an object was removed. Inside the magenta outline the picture was "
            "synthesized. Does the synthesized content morph between frames: objects that "
            "change shape or outline, melt, wobble, or a texture that swims or flickers? Rigid "
            "or smoothly moving content, and a static background, do NOT count. Set run_pass2 "
            "to true only if you see such morphing; give your confidence (0-1) and one sentence "
            "why.")
    return VlmRequest(system=SYSTEM, text=text, images=images, schema=SCHEMA, rows=1, cols=1,
                      num_frames=len(video), frame_indices=idx)


def vlm_judge(vlm: VlmConfig | object, *, min_confidence: float = 0.5, frames: int = 6):
    """judge(video, masks) -> {"run_pass2", "confidence", "why", "model"} or, when the VLM
    could not answer, {"run_pass2": False, "error": ...}. vlm: a VlmConfig or a ready backend.
    A "yes" below min_confidence does not count."""
    state: dict = {}

    def judge(video: np.ndarray, masks: np.ndarray) -> dict:
        cfg = vlm.config if hasattr(vlm, "complete") else vlm
        try:
            if "backend" not in state:
                state["backend"] = vlm if hasattr(vlm, "complete") else make_backend(vlm)
            res = ask(state["backend"], judge_request(video, masks, frames=frames,
                                                      max_side=cfg.max_side),
                      parse=parse_verdict)
        except (VlmError, ValueError) as exc:
            log.warning("gate judge %s not used: %s", cfg.model, exc)
            return {"run_pass2": False, "model": cfg.model, "error": redact(str(exc))}
        v = res.answer
        return {"run_pass2": bool(v["run_pass2"] and v["confidence"] >= min_confidence),
                "said": v["run_pass2"], "confidence": v["confidence"], "why": redact(v["why"]),
                "model": cfg.model, "cached": res.cached}

    return judge
