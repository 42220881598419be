"""Quality of a removal against its ground truth, streamed one plate frame at a time.

Regions come from the quadmask (void_engine.quadmask):
    object    the removed object (0 and 63)
    affected  shadows, reflections, what the object pushed (127 and 63)
    outside   everything else (255): the result must be the plate's own pixels there

Per region: PSNR (dB, from the mean squared error over all of the clip's pixels in it) and
SSIM (the Gaussian-window SSIM map of Wang et al. 2004, as scikit-image computes it,
averaged over the region's pixels). Temporal consistency in the change region: each frame
is warped onto the previous one with the ground truth's own optical flow, and the mean
absolute warp error of the result (grey levels) is compared with the ground truth's; the
excess is what the engine adds (flicker, wobble). 0 is perfect, higher is worse.
"""
from __future__ import annotations

import math

import numpy as np

from void_engine import optical_flow as flow
from void_engine import quadmask as qm

REGIONS = ("object", "affected", "outside")
SSIM_SIGMA = 1.5  # the standard Gaussian window (Wang et al. 2004)
_SSIM_MARGIN = 8  # context around a crop so its SSIM map equals the full frame's there
FLOW_MARGIN = 32  # context around the change region for flow (camera motion at its edge)
FB_MAX_PX = 1.0  # flow pairs whose forward-backward error is larger are left out


def region_masks(mask: np.ndarray) -> dict[str, np.ndarray]:
    return {"object": qm.remove_region(mask), "affected": qm.affected_region(mask),
            "outside": mask == qm.KEEP}


def psnr_from_mse(mse: float, peak: float = 255.0) -> float:
    """PSNR in dB; inf for identical pixels, nan when the region was empty."""
    if math.isnan(mse):
        return math.nan
    return math.inf if mse == 0 else 10.0 * math.log10(peak * peak / mse)


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM of two uint8 RGB images (mean over channels), float64 (H, W)."""
    from skimage.metrics import structural_similarity

    _, full = structural_similarity(a, b, channel_axis=-1, data_range=255,
                                    gaussian_weights=True, sigma=SSIM_SIGMA,
                                    use_sample_covariance=False, full=True)
    return full.mean(axis=-1)


def _grown(box: tuple[int, int, int, int] | None, margin: int,
           shape: tuple[int, int]) -> tuple[slice, slice] | None:
    if box is None:
        return None
    y0, y1, x0, x1 = box
    return (slice(max(0, y0 - margin), min(shape[0], y1 + margin)),
            slice(max(0, x0 - margin), min(shape[1], x1 + margin)))


def _union(a, b):
    if a is None or b is None:
        return a or b
    return min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])


class ClipScore:
    """Feed (result, truth, quadmask) per frame with add(); summary() gives the figures."""

    def __init__(self):
        self.sse = dict.fromkeys(REGIONS, 0.0)
        self.count = dict.fromkeys(REGIONS, 0)
        self.ssim_sum = dict.fromkeys(REGIONS, 0.0)
        self.exact = 0  # outside pixels equal to the ground truth in every channel
        self.frames = 0
        self.temporal: list[tuple[float, float]] = []  # (result, truth) warp error per pair
        self._prev = None

    def add(self, result: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> None:
        if result.shape != truth.shape or result.shape[:2] != mask.shape:
            raise ValueError(f"result {result.shape}, ground truth {truth.shape} and quadmask "
                             f"{mask.shape} differ in size")
        regions = region_masks(mask)
        diff = result.astype(np.int32) - truth
        sq = (diff * diff).sum(axis=-1)
        for name, where in regions.items():
            n = int(where.sum())
            self.sse[name] += float(sq[where].sum())
            self.count[name] += 3 * n
        self.exact += int(((sq == 0) & regions["outside"]).sum())
        box = qm.bounding_box(mask)
        self._add_ssim(result, truth, regions, box)
        if self._prev is not None:
            self._add_temporal(result, truth, mask, box)
        self._prev = (result, truth, mask, box)
        self.frames += 1

    def _add_ssim(self, result, truth, regions, box) -> None:
        crop = _grown(box, _SSIM_MARGIN + 4 * int(math.ceil(SSIM_SIGMA)), result.shape[:2])
        if crop is None:  # no change region: only outside pixels
            crop = (slice(0, result.shape[0]), slice(0, result.shape[1]))
        s = ssim_map(result[crop], truth[crop])
        for name, where in regions.items():
            self.ssim_sum[name] += float(s[where[crop]].sum())
        # Outside the crop the map is 1 wherever both images are equal: compute it only
        # when they are not (a result that altered pixels far from the change region).
        rest = regions["outside"].copy()
        rest[crop] = False
        if rest.any():
            if np.array_equal(result[rest], truth[rest]):
                self.ssim_sum["outside"] += float(rest.sum())
            else:
                self.ssim_sum["outside"] += float(ssim_map(result, truth)[rest].sum())

    def _add_temporal(self, result, truth, mask, box) -> None:
        p_result, p_truth, p_mask, p_box = self._prev
        crop = _grown(_union(box, p_box), FLOW_MARGIN, mask.shape)
        if crop is None:
            return
        change = (qm.change_region(p_mask) | qm.change_region(mask))[crop]
        ta, tb = p_truth[crop], truth[crop]
        fwd, bwd = flow.dis_flow(ta, tb), flow.dis_flow(tb, ta)
        ok = change & (flow.forward_backward_error(fwd, bwd) <= FB_MAX_PX) & \
            ~flow.out_of_frame(fwd)
        if not ok.any():
            return
        errs = []
        for before, after in ((p_result[crop], result[crop]), (ta, tb)):
            warped = flow.backward_warp(flow.to_gray(after), fwd).astype(np.float32)
            errs.append(float(np.abs(flow.to_gray(before).astype(np.float32) - warped)[ok]
                              .mean()))
        self.temporal.append((errs[0], errs[1]))

    def summary(self) -> dict[str, float]:
        out: dict[str, float] = {"frames": self.frames}
        for name in REGIONS:
            n = self.count[name]
            mse = self.sse[name] / n if n else math.nan
            out[f"psnr_{name}"] = psnr_from_mse(mse)
            out[f"ssim_{name}"] = self.ssim_sum[name] / (n / 3) if n else math.nan
            out[f"pixels_{name}"] = n // 3
        n_out = self.count["outside"] // 3
        out["outside_exact"] = self.exact / n_out if n_out else math.nan
        if self.temporal:
            res, tru = np.array(self.temporal).T
            out["temporal_error"] = float(res.mean())
            out["temporal_error_truth"] = float(tru.mean())
            out["temporal_excess"] = float(np.maximum(res - tru, 0).mean())
        else:
            out |= dict.fromkeys(("temporal_error", "temporal_error_truth",
                                  "temporal_excess"), math.nan)
        return out


def score_frames(results, truths, masks) -> dict[str, float]:
    """ClipScore over three aligned iterables of frames."""
    score = ClipScore()
    for r, t, m in zip(results, truths, masks, strict=True):
        score.add(np.asarray(r), np.asarray(t), np.asarray(m))
    return score.summary()


__all__ = ["REGIONS", "ClipScore", "psnr_from_mse", "region_masks", "score_frames",
           "ssim_map"]
