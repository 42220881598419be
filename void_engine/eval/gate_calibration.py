"""The morphing gate's threshold, measured on a generated set.

The gate (void_engine.masks.gate) scores a pass-1 result and asks for pass 2 when the
synthesized content in the change region changes shape from frame to frame. For each clip
of a set, pass-1 results whose answer is known are scored, at the engine's working size:

  truth        the ground truth itself: the ideal pass 1                  -> no pass 2
  propagate    `propagate`'s real pass 1 (background only, no object)     -> no pass 2
  rigid        the truth with an object synthesized in the change region
               that moves but keeps its outline and texture               -> no pass 2
  morph-A      the same object, its outline and texture deforming every
               frame by a relative amplitude A (the morphing variant)     -> pass 2

and the scores give an ROC: its area, the threshold with the best balanced accuracy, and
the accuracy of any given threshold (the current default's).
"""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from void_engine import quadmask as qm
from void_engine.eval.generator import TRUTH
from void_engine.eval.scene import texture

MORPH_AMPLITUDES = (0.08, 0.15, 0.3, 0.5)


def model_space(shot, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(plate, truth, quadmask) of a set's clip at the engine's working size, as
    decode_shot makes them (area-averaged frames, area-averaged + re-quantized mask)."""
    from void_engine.io import probe, read_frames
    from void_engine.modelspace import resize_mask

    folder = Path(shot.plate_uri).parent
    plate = np.stack(list(read_frames(probe(shot.plate_uri), size=size, uint8=True)))
    truth = np.stack(list(read_frames(probe(str(folder / TRUTH)), size=size, uint8=True)))
    masks = np.stack([resize_mask(m, size) for m in qm.read_quadmask(shot.quadmask_uri)])
    return plate, truth, masks


def synthesized_object(truth: np.ndarray, masks: np.ndarray, amplitude: float,
                       seed: int, contrast: float = 1.3) -> np.ndarray:
    """The truth with a textured blob drawn in each frame's change region, following the
    region's centre. amplitude 0: rigid (same outline, texture carried along); > 0: the
    outline's radius wobbles by that fraction and the texture is redrawn every frame (a
    pass-1 object that morphs)."""
    rng = np.random.default_rng(seed)
    t_count, h, w = masks.shape
    out = truth.copy()
    change = np.stack([qm.change_region(m) for m in masks])
    radius = max(4.0, 0.45 * math.sqrt(change.sum(axis=(1, 2)).mean() / math.pi))
    side = int(4 * radius) + 4
    tex = texture(side, side, rng, contrast=contrast)
    phase = rng.uniform(0, 2 * math.pi, 3)
    for t in range(t_count):
        ys, xs = np.nonzero(change[t])
        if not len(ys):
            continue
        cy, cx = float(ys.mean()), float(xs.mean())
        angles = np.linspace(0, 2 * math.pi, 48, endpoint=False)
        wobble = amplitude * np.sin(3 * angles + phase[0] + 1.7 * t) + 0.5 * amplitude * \
            np.sin(5 * angles + phase[1] - 2.3 * t)
        r = radius * (1 + wobble)
        pts = np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], -1)
        blob = np.zeros((h, w), np.uint8)
        cv2.fillPoly(blob, [np.rint(pts * 16).astype(np.int32)], 1, cv2.LINE_AA, shift=4)
        if amplitude > 0:  # a new texture each frame: what the object is made of drifts
            tex = texture(side, side, np.random.default_rng([seed, t]), contrast=contrast)
        m = np.float32([[1, 0, cx - side / 2], [0, 1, cy - side / 2]])
        layer = cv2.warpAffine(tex, m, (w, h), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT)
        on = blob.astype(bool) & change[t]
        out[t][on] = np.clip(np.rint(layer[on]), 0, 255).astype(np.uint8)
    return out


def candidates(plate, truth, masks, seed: int, propagate=None) -> list[tuple[str, bool,
                                                                               np.ndarray]]:
    """(kind, needs pass 2, pass-1 result) for one clip. The synthesized object's texture
    contrast varies from clip to clip (0.5 to 2.5): the warp error scales with it."""
    contrast = float(np.random.default_rng(seed).uniform(0.5, 2.5))
    out = [("truth", False, truth), ("rigid", False, synthesized_object(
        truth, masks, 0.0, seed, contrast))]
    if propagate is not None:
        out.append(("propagate", False, propagate.pass1(plate, masks, "", _params())))
    out += [(f"morph-{a:g}", True, synthesized_object(truth, masks, a, seed, contrast))
            for a in MORPH_AMPLITUDES]
    return out


def _params():
    from void_engine.engines.base import RemovalParams

    return RemovalParams()


def score_set(set_dir, size: tuple[int, int], *, with_propagate: bool = True,
              progress=None) -> pd.DataFrame:
    """One row per (clip, candidate): its gate score and whether it needs pass 2."""
    from void_engine.engines.base import create_engine
    from void_engine.eval.runner import load_set
    from void_engine.masks.gate import real_pairs, warp_error_score

    engine = create_engine("propagate") if with_propagate else None
    rows = []
    shots = load_set(set_dir)
    for i, shot in enumerate(shots):
        plate, truth, masks = model_space(shot, size)
        pairs = real_pairs([], len(masks))
        for kind, positive, video in candidates(plate, truth, masks, seed=i, propagate=engine):
            score, _ = warp_error_score(video, masks, pairs)
            rows.append({"clip": shot.shot_id, "kind": kind, "needs_pass2": positive,
                         "score": score})
        if progress:
            progress("gate", "clips scored", i + 1, len(shots))
    return pd.DataFrame(rows)


def roc(df: pd.DataFrame, current: float) -> dict:
    """Area under the ROC curve, the best balanced-accuracy threshold and how the current
    threshold does, from scored candidates."""
    pos = df.loc[df["needs_pass2"], "score"].to_numpy()
    neg = df.loc[~df["needs_pass2"], "score"].to_numpy()
    # AUC = P(score of a random positive > score of a random negative), ties count half
    auc = float(((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :])
                 .sum()) / (len(pos) * len(neg)))
    cuts = np.unique(df["score"])
    mids = np.concatenate([[cuts[0] - 1e-6], (cuts[:-1] + cuts[1:]) / 2, [cuts[-1] + 1e-6]])
    bal = np.array([_balanced(pos, neg, c) for c in mids])
    optimal = mids[bal == bal.max()]
    best = float(optimal[len(optimal) // 2])  # the middle one of the optimal cuts
    return {"auc": auc, "positives": len(pos), "negatives": len(neg),
            "best_threshold": float(best), **_rates(pos, neg, best, "best"),
            "current_threshold": current, **_rates(pos, neg, current, "current")}


def _balanced(pos, neg, c) -> float:
    return 0.5 * (float((pos > c).mean()) + float((neg <= c).mean()))


def _rates(pos, neg, c, name) -> dict:
    tp, tn = int((pos > c).sum()), int((neg <= c).sum())
    return {f"{name}_tpr": tp / len(pos), f"{name}_fpr": 1 - tn / len(neg),
            f"{name}_accuracy": (tp + tn) / (len(pos) + len(neg)),
            f"{name}_balanced_accuracy": _balanced(pos, neg, c)}


def write_outputs(df: pd.DataFrame, summary: dict, out_dir) -> dict[str, str]:
    """gate.parquet (the scores) and gate_scores.png (scores by kind, the thresholds)."""
    import os

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"table": str(out / "gate.parquet"), "plot": str(out / "gate_scores.png")}
    tmp = out / ".gate.parquet.tmp"
    df.to_parquet(tmp, index=False)
    os.replace(tmp, paths["table"])
    kinds = list(dict.fromkeys(df["kind"]))
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for i, kind in enumerate(kinds):
        rows = df[df["kind"] == kind]
        ax.scatter(np.full(len(rows), i) + np.linspace(-0.2, 0.2, len(rows)), rows["score"],
                   s=14, c="tab:red" if rows["needs_pass2"].iloc[0] else "tab:blue")
    for name, style in (("best", "-"), ("current", "--")):
        ax.axhline(summary[f"{name}_threshold"], color="k", ls=style, lw=1,
                   label=f"{name} threshold {summary[f'{name}_threshold']:.2f}")
    ax.set_xticks(range(len(kinds)), kinds)
    ax.set_ylabel("gate score (grey levels)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = out / ".gate_scores.tmp.png"
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, paths["plot"])
    return paths
