"""Engines registered by the integration tests (imported in the driver and, through
EngineSpec.plugins, in the Ray engine actors). Deterministic, tiny, no weights.

"test-twopass": pass 1 paints the mask's non-KEEP pixels with the frame's mean KEEP colour;
pass 2 shifts that by `pass2_steps` grey levels. Every call appends "<pass> <pid>" to `log`;
`delay` seconds of sleep per call give the actor-kill test a window."""
from __future__ import annotations

import os
import time

import numpy as np

from void_engine.engines.base import Engine, FrameRules, register_engine
from void_engine.quadmask import KEEP


@register_engine("test-twopass")
class TwoPassTestEngine(Engine):
    name = "test-twopass"
    supports_pass2 = True
    frame_rules = FrameRules()
    model_size = (32, 48)

    def __init__(self, log: str | None = None, delay: float = 0.0):
        self.log, self.delay = log, float(delay)

    def _note(self, what: str, progress=None) -> None:
        if self.log:
            with open(self.log, "a") as f:
                f.write(f"{what} {os.getpid()}\n")
        steps = int(self.delay * 10)  # "denoising steps" of 0.1 s, each reported
        for i in range(steps):
            time.sleep(0.1)
            if progress:
                progress(i + 1, steps)

    def pass1(self, clip, quadmask, prompt, params, progress=None):
        self._note("pass1", progress)
        out = clip.copy()
        for t in range(len(clip)):
            keep = quadmask[t] == KEEP
            mean = clip[t][keep].mean(axis=0) if keep.any() else np.zeros(3)
            out[t][~keep] = mean.astype(np.uint8)
        return out

    def pass2(self, clip, quadmask, prompt, pass1, params, progress=None):
        self._note("pass2", progress)
        shift = int(params.pass2_steps or 1)
        out = pass1.astype(np.int16)
        out[quadmask != KEEP] += shift
        return np.clip(out, 0, 255).astype(np.uint8)


@register_engine("test-identity")
class IdentityTestEngine(Engine):
    """Both passes return their input unchanged: the flow's morphing gate then scores the plate's
    own object, which lets a test choose the gate's decision by choosing the plate."""

    name = "test-identity"
    supports_pass2 = True
    frame_rules = FrameRules()
    model_size = (96, 160)

    def __init__(self, log: str | None = None, delay: float = 0.0):
        self.log, self.delay = log, float(delay)

    _note = TwoPassTestEngine._note

    def pass1(self, clip, quadmask, prompt, params, progress=None):
        self._note("pass1", progress)
        return clip.copy()

    def pass2(self, clip, quadmask, prompt, pass1, params, progress=None):
        self._note("pass2", progress)
        return pass1.copy()


@register_engine("test-fails")
class FailingTestEngine(Engine):
    """Pass 1 raises `message` (a multi-line text, as a remote service's error might be, with
    colour codes and the request's credentials echoed): the report must show one clean line."""

    name = "test-fails"
    frame_rules = FrameRules()
    model_size = (32, 48)

    def __init__(self, message: str = "failed"):
        self.message = message

    def pass1(self, clip, quadmask, prompt, params, progress=None):
        raise RuntimeError(self.message)
