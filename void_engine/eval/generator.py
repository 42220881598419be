"""Counterfactual clip sets: scenes sampled from a seed, each written in the samples' folder
layout with its ground truth, plus a manifest that `void-batch run` accepts.

    <set>/manifest.parquet            one row per clip (paths relative to the set)
    <set>/set.json                    how the set was made (seed, sizes, frames, clip names)
    <set>/<clip>/input_video.mp4      the plate: H.264 RGB, lossless (libx264rgb, crf 0)
    <set>/<clip>/quadmask_0.mp4       the quadmask: H.264 grey, lossless (qp 0, yuv444p)
    <set>/<clip>/ground_truth.mkv     the scene without the object: FFV1 RGB, lossless
    <set>/<clip>/prompt.json          {"bg": ...}
    <set>/<clip>/clip.json            the SceneSpec and measured properties

Every file is lossless, so a metric measures the engine and the compositing, never a codec:
outside the quadmask the plate and the ground truth decode to the same bytes.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from void_engine.errors import InputError
from void_engine.eval.scene import Scene, SceneSpec

PLATE, MASK, TRUTH, INFO = "input_video.mp4", "quadmask_0.mp4", "ground_truth.mkv", "clip.json"
FPS = 12
# The default set: small enough for a CPU run in minutes, broad enough to cover each case.
DEFAULT_SIZES = ((384, 672), (360, 640), (720, 1280), (1080, 1920))
DEFAULT_CLIPS, DEFAULT_FRAMES, DEFAULT_SEED = 8, 24, 0
# Lossless RGB H.264 for the plate: the samples' layout wants input_video.mp4, and plain
# H.264 (yuv420p) would blur colour edges the metrics would then blame on the engine.
PLATE_ENCODER = {"c:v": "libx264rgb", "crf": "0", "preset": "veryfast", "pix_fmt": "rgb24"}


@dataclass(frozen=True)
class SetOptions:
    clips: int = DEFAULT_CLIPS
    frames: int = DEFAULT_FRAMES
    seed: int = DEFAULT_SEED
    sizes: tuple[tuple[int, int], ...] = DEFAULT_SIZES


def sample_spec(seed: int, index: int, size: tuple[int, int], frames: int) -> SceneSpec:
    """The index-th scene of a set. Camera, kind and effects cycle with the index so that
    even a small set covers each case; sizes, speeds and placement come from the seed."""
    rng = np.random.default_rng([seed, index])
    h, w = size
    unit = min(h, w) / 384.0  # lengths scale with the clip, so every size sees the same scene
    camera = ("static", "pan", "zoom")[index % 3]
    kind = "occluder" if index % 4 == 3 else "mover"
    radius = float(rng.uniform(0.07, 0.16) * min(h, w)) if kind == "mover" else float(
        rng.uniform(0.22, 0.3) * min(h, w))
    # movers: from a crawl (most of what they cover is never seen) to several sizes a clip
    speed = float(rng.uniform(1.5, 10.0) * unit)
    angle = float(rng.uniform(-0.4, 0.4)) + (np.pi if rng.uniform() < 0.5 else 0.0)
    velocity = (speed * np.cos(angle), speed * np.sin(angle))
    if kind == "mover":  # start where the path stays in view (frame 0's world)
        sx = w / 2 - velocity[0] * (frames - 1) / 2
        sy = float(rng.uniform(0.35, 0.55) * h)
    else:  # the occluder comes down from above the view (its reflection, hanging below
        # it, too), large, and stops at mid-clip
        sx = float(rng.uniform(0.35, 0.65) * w)
        sy = -3.2 * radius
        velocity = (0.0, (float(rng.uniform(0.3, 0.45) * h) - sy) / max(1, frames // 2))
    cam_v = (0.0, 0.0)
    if camera == "pan":
        pan = float(rng.uniform(1.0, 3.0) * unit)
        cam_v = (pan * (1 if rng.uniform() < 0.5 else -1), float(rng.uniform(-0.5, 0.5)))
    return SceneSpec(
        seed=int(rng.integers(2**31)), height=h, width=w, frames=frames, camera=camera,
        camera_velocity=cam_v, zoom_rate=float(rng.uniform(0.004, 0.01)) if camera == "zoom"
        else 0.0, kind=kind, radius=radius, start=(float(sx), sy), velocity=velocity,
        shadow=bool(index % 5 != 4), shadow_strength=float(rng.uniform(0.4, 0.65)),
        reflection=bool(index % 2 == 1), interaction=bool(kind == "mover" and index % 3 == 2))


def clip_name(index: int, spec: SceneSpec) -> str:
    return f"clip{index:03d}_{spec.camera}_{spec.kind}_{spec.height}p"


def write_clip(spec: SceneSpec, folder: str | Path,
               progress: Callable[[int, int], None] | None = None) -> dict:
    """Render `spec` and write the clip folder (temp folder, then rename). Returns the
    clip's properties (also in clip.json)."""
    from void_engine.io import open_writer
    from void_engine.io.writer import VideoWriter
    from void_engine.quadmask import open_quadmask_writer

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; the set is shared data
    scene, size, fps = Scene(spec), (spec.height, spec.width), Fraction(FPS)
    area, affected = [], []
    try:
        plate = VideoWriter(str(tmp / PLATE), "h264", fps=fps, size=size,
                            encoder=PLATE_ENCODER)
        try:
            with open_writer(str(tmp / TRUTH), "ffv1", fps=fps, size=size) as truth, \
                    open_quadmask_writer(str(tmp / MASK), fps=fps, size=size) as mask:
                for t in range(spec.frames):
                    clip, clean, q = scene.frame(t)
                    plate.write(clip)
                    truth.write(clean)
                    mask.write(q)
                    area.append(float(np.mean(q <= 63)))
                    affected.append(float(np.mean((q == 127) | (q == 63))))
                    if progress:
                        progress(t + 1, spec.frames)
        except BaseException:
            plate.abort()
            raise
        plate.close()
        info = {"spec": spec.to_dict(), "properties": properties(scene, area, affected)}
        (tmp / INFO).write_text(json.dumps(info, indent=2))
        (tmp / "prompt.json").write_text(json.dumps({"bg": prompt_for(spec)}))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info["properties"]


def properties(scene: Scene, area: list[float], affected: list[float]) -> dict:
    """What the quality plots are drawn against."""
    s = scene.spec
    pairs = range(max(1, s.frames - 1))
    return {
        "size": f"{s.width}x{s.height}", "height": s.height, "frames": s.frames,
        "camera": s.camera, "kind": s.kind,
        "object_area": float(np.mean(area)),  # fraction of the frame, mean over frames
        "affected_area": float(np.mean(affected)),
        "object_motion": float(np.mean([scene.object_speed(t) for t in pairs])) / s.height,
        "camera_motion": float(np.mean([scene.camera_speed(t) for t in pairs])) / s.height,
        "shadow": s.shadow, "reflection": s.reflection, "interaction": s.interaction,
    }


def prompt_for(spec: SceneSpec) -> str:
    return ("A textured wall" + (" seen by a panning camera" if spec.camera == "pan" else "")
            + (" with a box resting on it" if spec.interaction else "") + ".")


def generate_set(out: str | Path, options: SetOptions = SetOptions(),
                 progress: Callable[[str, int, int], None] | None = None) -> str:
    """Write a set of `options.clips` clips and its manifest into `out`; returns the
    manifest's path. The same options give the same bytes in every file but the videos'
    container metadata."""
    from manifests.loader import rows_from_folder, write_manifest

    if options.clips < 1 or options.frames < 2:
        raise InputError(f"a set needs at least 1 clip of 2 frames, got {options.clips} "
                         f"clips of {options.frames}")
    for h, w in options.sizes:
        if h < 64 or w < 64 or h > 2160 or w > 3840:
            raise InputError(f"clip size {h}x{w} is outside 64x64 .. 2160x3840")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(options.clips):
        size = options.sizes[i % len(options.sizes)]
        spec = sample_spec(options.seed, i, size, options.frames)
        name = clip_name(i, spec)
        write_clip(spec, out / name, progress and (
            lambda done, total, n=name: progress(n, done, total)))
        names.append(name)
    (out / "set.json").write_text(json.dumps({
        "seed": options.seed, "frames": options.frames, "clips": names,
        "sizes": [list(s) for s in options.sizes]}, indent=2))
    rows = [r.model_copy(update={"passes": "1", "tags": ["eval"]})
            for r in rows_from_folder(out, relative_to=out) if r.shot_id in names]
    return write_manifest(rows, out / "manifest.parquet")


def load_clip_info(folder: str | Path) -> dict:
    path = Path(folder) / INFO
    if not path.is_file():
        raise InputError(f"{folder} is not a generated clip (no {INFO})")
    return json.loads(path.read_text())
