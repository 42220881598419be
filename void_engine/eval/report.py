"""The evaluation's outputs in one folder: eval.parquet (one row per engine x clip, through
pandas), eval.html (per-engine summary, per-clip rows, plots) and the plots as PNG files
(matplotlib, no display needed). Rows of an engine label evaluated again replace its old
rows, so several engines (or settings, by label) accumulate in one table.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

TABLE, PAGE = "eval.parquet", "eval.html"
# Identical pixels give an infinite PSNR; averages cap it here (a plate's own pixels).
PSNR_CAP = 100.0
SUMMARY_COLUMNS = ("psnr_object", "ssim_object", "psnr_affected", "ssim_affected",
                   "psnr_outside", "ssim_outside", "outside_exact", "temporal_excess",
                   "qc_flicker_ratio", "qc_seam", "qc_flagged", "engine_seconds")
PLOT_AXES = (("object_area", "object size (fraction of the frame)"),
             ("object_motion", "object motion (frame heights per frame)"),
             ("camera_motion", "camera motion (frame heights per frame)"))


def merge(old: pd.DataFrame | None, new: pd.DataFrame) -> pd.DataFrame:
    if old is None or old.empty:
        return new.reset_index(drop=True)
    kept = old[~old["engine"].isin(set(new["engine"]))]
    return pd.concat([kept, new], ignore_index=True)


def read_table(out_dir: str | Path) -> pd.DataFrame | None:
    path = Path(out_dir) / TABLE
    return pd.read_parquet(path) if path.is_file() else None


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Mean of each figure per engine over its scored clips (PSNR capped, see PSNR_CAP),
    with the number of clips scored and failed."""
    ok = df[df["error"].isna()] if "error" in df else df
    cols = [c for c in SUMMARY_COLUMNS if c in ok]
    capped = ok[cols].astype(float).clip(upper=PSNR_CAP)  # qc_flagged: the flagged fraction
    table = capped.groupby(ok["engine"]).mean()
    table.insert(0, "clips", ok.groupby("engine").size())
    failed = (df.groupby("engine").size() - table["clips"]).fillna(0).astype(int)
    table.insert(1, "failed", failed.reindex(table.index).fillna(0).astype(int))
    return table


def write_outputs(df: pd.DataFrame, out_dir: str | Path) -> dict[str, str]:
    """Write the table, plots and page (each to a temp name, then renamed)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if "error" not in df:
        df = df.assign(error=None)
    paths = {"table": str(out / TABLE), "page": str(out / PAGE)}
    tmp = out / f".{TABLE}.tmp"
    df.to_parquet(tmp, index=False)
    os.replace(tmp, paths["table"])
    plots = write_plots(df, out)
    tmp = out / f".{PAGE}.tmp"
    tmp.write_text(render_html(df, [os.path.basename(p) for p in plots]))
    os.replace(tmp, paths["page"])
    return paths | {f"plot_{i}": p for i, p in enumerate(plots)}


def write_plots(df: pd.DataFrame, out: Path) -> list[str]:
    """Quality in the object and affected regions against each clip property, one point
    per clip, one colour per engine."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = df[df["error"].isna()]
    paths = []
    for prop, title in PLOT_AXES:
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
        for engine, rows in ok.groupby("engine"):
            for ax, metric in zip(axes, ("psnr_object", "psnr_affected", "temporal_excess"),
                                  strict=True):
                ax.scatter(rows[prop], rows[metric].clip(upper=PSNR_CAP), label=engine, s=22)
        for ax, metric in zip(axes, ("PSNR object (dB)", "PSNR affected (dB)",
                                     "temporal excess (grey levels)"), strict=True):
            ax.set_xlabel(title)
            ax.set_ylabel(metric)
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=8)
        fig.tight_layout()
        path = out / f"eval_{prop}.png"
        tmp = out / f".eval_{prop}.tmp.png"
        fig.savefig(tmp, dpi=90)
        plt.close(fig)
        os.replace(tmp, path)
        paths.append(str(path))
    return paths


def _fmt(v) -> str:
    if isinstance(v, float | np.floating):
        if math.isnan(v):
            return ""
        return "inf" if math.isinf(v) else f"{v:.4g}"
    return str(v)


def render_html(df: pd.DataFrame, plots: list[str]) -> str:
    from jinja2 import Template

    clip_cols = ["engine", "clip", "size", "camera", "kind", "object_area", "object_motion",
                 "camera_motion", "shadow", "reflection", "interaction", *[
                     c for c in SUMMARY_COLUMNS if c in df], "error"]
    per_clip = df[[c for c in clip_cols if c in df]]
    return Template(_PAGE).render(
        summary=summary(df).to_html(float_format=_fmt, na_rep="", border=0),
        clips=per_clip.to_html(index=False, formatters=dict.fromkeys(per_clip.columns, _fmt),
                               na_rep="", border=0),
        plots=plots, cap=PSNR_CAP)


_PAGE = """<!doctype html><meta charset="utf-8"><title>void-batch eval</title>
<style>body{font:13px sans-serif;margin:1em}td,th{border:1px solid #ccc;padding:2px 6px}
table{border-collapse:collapse;margin-bottom:1em}img{max-width:100%}</style>
<h1>Removal quality against ground truth</h1>
<p>PSNR (dB) and SSIM per region of the quadmask: <b>object</b> (0/63), <b>affected</b>
(127/63: shadows, reflections, what the object pushed) and <b>outside</b> (255, where the
result must be the plate's own pixels; <i>outside_exact</i> is the fraction that is, bit for
bit). <b>temporal_excess</b>: the result's flow-warped frame-to-frame error in the change
region minus the ground truth's (grey levels; 0 is as steady as the truth). <b>qc_*</b>: the
figures every shot's report carries without ground truth (flicker against the plate's own,
seam at the region's edge; qc_flagged: the fraction of clips flagged). Averages cap PSNR at
{{ cap }} dB (identical pixels).</p>
<h2>Per engine</h2>{{ summary }}
<h2>Quality against clip properties</h2>
{% for p in plots %}<img src="{{ p }}"><br>{% endfor %}
<h2>Per clip</h2>{{ clips }}
"""
