"""Helpers of the VOID parity tests: golden loading, tolerance checks, the step recorder."""
from __future__ import annotations

import json

import numpy as np
import torch
from diffusers.callbacks import PipelineCallback
from safetensors.torch import load_file

ATOL = 1e-4  # docs/parity.md: float tensors
FRAME_TOL, FRAME_SHARE = 1, 0.999  # uint8 frames within +-1 on >= 99.9% of values


class Golden:
    """One fixture case: tensors (safetensors), uint8 arrays (npz) and the manifest (json)."""

    def __init__(self, parity_dir, name):
        self.t = load_file(str(parity_dir / f"{name}.safetensors"))
        npz = parity_dir / f"{name}_uint8.npz"
        self.u8 = dict(np.load(npz)) if npz.exists() else {}
        self.manifest = json.loads((parity_dir / f"{name}.json").read_text())
        self.meta = self.manifest["meta"]

    def __getitem__(self, key):
        return self.t[key] if key in self.t else self.u8[key]


def assert_close(got, want, name="", atol=ATOL):
    got = torch.as_tensor(got).detach().float().cpu()
    want = torch.as_tensor(want).float()
    assert got.shape == want.shape, f"{name}: shape {tuple(got.shape)} != {tuple(want.shape)}"
    err = (got - want).abs().max().item()
    assert err <= atol, f"{name}: max abs error {err:.3g} > {atol}"
    return err


def f16_ulp(x: torch.Tensor) -> torch.Tensor:
    """The spacing of float16 values at |x| (subnormal spacing below 2**-14)."""
    mag = x.abs().float().clamp(min=2.0 ** -14)
    return torch.exp2(torch.floor(torch.log2(mag)) - 10)


def assert_frames_close(got: np.ndarray, want: np.ndarray, name=""):
    assert got.shape == want.shape and got.dtype == np.uint8, (got.shape, got.dtype, want.shape)
    diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
    share = float((diff <= FRAME_TOL).mean())
    assert share >= FRAME_SHARE, f"{name}: only {share:.5f} of values within +-{FRAME_TOL}"
    return share


class Recorder(PipelineCallback):
    """A diffusers callback_on_step_end for VOIDPipeline that keeps every tensor the fixtures
    store, under the fixtures' names (the conditioning once, then per step and window)."""

    COND = ("prompt_embeds", "mask_condition", "mask_latents", "masked_video_latents")
    WINDOW = (("window_latents", "transformer_in"), ("window_model_outputs", "transformer_out"),
              ("window_steps", "scheduler_out"))
    tensor_inputs = ["latents", *COND, *(name for name, _ in WINDOW)]

    def __init__(self):
        super().__init__()
        self.rec: dict[str, torch.Tensor] = {}

    def callback_fn(self, pipeline, step_index, timestep, callback_kwargs):
        if step_index == 0:
            for k in self.COND:
                self.rec[f"cond.{k}"] = callback_kwargs[k].detach().clone()
        step = f"denoise.step{step_index:03d}"
        for name, part in self.WINDOW:
            for w, x in enumerate(callback_kwargs[name]):
                self.rec[f"{step}.win{w}.{part}"] = x.detach().clone()
        self.rec[f"{step}.latents_after"] = callback_kwargs["latents"].detach().clone()
        return {}
