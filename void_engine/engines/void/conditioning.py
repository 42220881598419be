"""What the VOID transformer is conditioned on, besides the prompt: the mask levels each pass
uses, the noise augmentation of the conditioning video, and the temporal multidiffusion windows.

Pure tensor functions, tested on their own and against the reference fixtures.
"""
from __future__ import annotations

import torch

MASK_MODES = ("trimask", "binary", "trimask_pass2")
# Mean of the training log-normal sigma, E[exp(N(-3, 0.5^2))]: the reference's default.
NOISE_AUG_STRENGTH = 0.0563
OVERLAP_LATENTS = 4  # the reference's multidiffusion stride of 16 frames


def mask_condition(mask: torch.Tensor, mode: str) -> torch.Tensor:
    """Pipeline mask levels from the loader's mask (1 remove, 0.75 overlap, 0.5 affected, 0 keep).

    trimask        pass 1 (and training): >0.75 -> 1, [0.25, 0.75] -> 127/255, <0.25 -> 0
    binary         reference pass 2: >0.5 -> 1 (the affected region joins "remove")
    trimask_pass2  pass 2 with the training levels (fixes the reference's binarisation)
    """
    if mode == "binary":
        return (mask > 0.5).to(mask.dtype)
    if mode in ("trimask", "trimask_pass2"):
        out = torch.where(mask > 0.75, torch.ones_like(mask), mask)
        out = torch.where((out >= 0.25) & (out <= 0.75), torch.full_like(mask, 127 / 255), out)
        return torch.where(out < 0.25, torch.zeros_like(mask), out)
    raise ValueError(f"unknown mask mode {mode!r} (choose {', '.join(MASK_MODES)})")


def augment_video(pixels: torch.Tensor, strength: float,
                  generator: torch.Generator | None) -> torch.Tensor:
    """Noise augmentation of the conditioning video (pixels in [-1, 1], (b, c, f, h, w)).

    generator=None reproduces the reference exactly: the global torch RNG, drawn with randn_like
    on a (b,c,f,h,w) view whose memory is (b,f,c,h,w) (the order the values come out of the CPU
    generator depends on that layout). A generator gives seeded, reproducible noise instead.
    Pixels at exactly -1 are left alone, as in the reference.
    """
    if generator is None:
        layout = pixels.permute(0, 2, 1, 3, 4).contiguous().permute(0, 2, 1, 3, 4)
        noise = torch.randn_like(layout)
    else:
        noise = torch.randn(pixels.shape, generator=generator, device=generator.device,
                            dtype=pixels.dtype).to(pixels.device)
    sigma = torch.full((pixels.shape[0],), strength, dtype=pixels.dtype, device=pixels.device)
    noise = noise * sigma[:, None, None, None, None]
    return pixels + torch.where(pixels == -1, torch.zeros_like(noise), noise)


# --- temporal multidiffusion ----------------------------------------------------------------
def window_plan(num_latents: int, window_latents: int,
                overlap: int = OVERLAP_LATENTS) -> list[tuple[int, int]]:
    """Latent windows [begin, end) of the reference's temporal multidiffusion."""
    if num_latents <= window_latents:
        return [(0, num_latents)]
    if window_latents <= overlap:
        raise ValueError(f"window of {window_latents} latents must exceed the overlap {overlap}")
    plans, begin = [], 0
    while True:
        end = min(begin + window_latents, num_latents)
        plans.append((begin, end))
        if end == num_latents:
            return plans
        begin = end - overlap


def window_latents_for(window_frames: int, patch_size_t: int | None = 2) -> int:
    """Latent length of a window of `window_frames` frames; odd counts drop one (patch_size_t 2)."""
    lat = (window_frames - 1) // 4 + 1
    if patch_size_t and lat % patch_size_t:
        lat -= lat % patch_size_t
    return lat


def blend_weights(length: int, first: bool, last: bool, overlap: int, dtype, device):
    """Per-latent blend weights: 1, with 0.2..0.8 ramps into the overlaps (made in `dtype`,
    like the reference, so bf16 runs round them the same way)."""
    w = torch.ones(length, dtype=dtype, device=device)
    ramp = torch.linspace(0, 1, overlap + 2, dtype=dtype, device=device)[1:-1]
    if not first:
        w[:overlap] = ramp
    if not last:
        w[-overlap:] = ramp.flip(0)
    return w.view(1, length, 1, 1, 1)


class WindowBlender:
    """Accumulates each window's stepped latents with its blend weights; `result()` is
    sum(w * x) / sum(w) in float32, cast back to the run dtype (the reference's order)."""

    def __init__(self, shape, windows: list[tuple[int, int]], overlap: int, dtype, device):
        self.windows, self.overlap, self.dtype = windows, overlap, dtype
        self.canvas = torch.zeros(shape, dtype=torch.float32, device=device)
        self.weight_sum = torch.zeros((1, shape[1], 1, 1, 1), dtype=torch.float32, device=device)
        self.single: torch.Tensor | None = None

    def add(self, index: int, stepped: torch.Tensor) -> None:
        if len(self.windows) == 1:  # no blending: keep the step's output bit for bit
            self.single = stepped
            return
        s, e = self.windows[index]
        w = blend_weights(e - s, index == 0, index == len(self.windows) - 1, self.overlap,
                          self.dtype, self.canvas.device).float()
        self.canvas[:, s:e] += stepped.float() * w
        self.weight_sum[:, s:e] += w

    def result(self) -> torch.Tensor:
        if self.single is not None:
            return self.single
        return (self.canvas / self.weight_sum).to(self.dtype)
