"""Helpers of the VOID parity tests: golden loading, tolerance checks, the step recorder."""
from __future__ import annotations

import json

import numpy as np
import torch
from safetensors.torch import load_file

ATOL = 1e-4  # parity README §6: float tensors
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


class Recorder:
    """step_callback for VOIDPipeline that keeps every tensor under the fixtures' names."""

    def __init__(self):
        self.rec: dict[str, torch.Tensor] = {}

    def __call__(self, r):
        kind = r["kind"]
        if kind == "cond":
            for k, v in r.items():
                if k != "kind":
                    self.rec[f"cond.{k}"] = v.detach().clone()
            return
        step = f"denoise.step{r['step']:03d}"
        if kind == "window":
            for k in ("transformer_in", "transformer_out", "scheduler_out"):
                self.rec[f"{step}.win{r['window']}.{k}"] = r[k].detach().clone()
        else:
            self.rec[f"{step}.latents_after"] = r["latents_after"].detach().clone()


