"""Evaluate an engine on a generated set, or score results that already exist.

run_engine:   for each clip of the set's manifest, the library's stages in a temp folder
              (decode_shot -> run_pass1 [-> run_pass2] -> encode_shot, lossless FFV1 result),
              then score_clip against the ground truth.
score_results: the same scoring for result files made elsewhere (e.g. on a GPU machine by
              `void-batch run` or `void-batch remove`), found by shot id in a folder.

Each clip gives one row: the clip's properties (generator.properties), the figures of
metrics.ClipScore, the engine label and the time the engine took. A clip that fails gets a
row with its `error` and the others go on.
"""
from __future__ import annotations

import glob
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from void_engine.errors import InputError, VoidError
from void_engine.eval.generator import TRUTH, load_clip_info

# (clip, stage, done, total): what a progress bar needs
Progress = Callable[[str, str, int, int], None]
RESULT_EXTS = (".mkv", ".mov", ".mp4")


def load_set(set_dir: str | Path) -> list:
    """The set's manifest rows (URIs resolved); InputError when it has bad rows."""
    from manifests.loader import load_manifest

    path = Path(set_dir) / "manifest.parquet"
    if not path.is_file():
        raise InputError(f"{set_dir} is not a generated set (no manifest.parquet); make one "
                         "with `void-batch eval generate`")
    m = load_manifest(path, check_files=True)
    if m.errors:
        raise InputError(f"set {set_dir}: {m.errors[0]}")
    return m.shots


def score_clip(shot, result_uri: str, progress: Progress | None = None) -> dict:
    """Metrics of one result (video file or frame folder at plate size) for a set's row:
    the ground-truth figures (metrics.ClipScore) and the QC figures every shot's report
    carries (void_engine.qc), so the two can be compared."""
    from void_engine.eval.metrics import ClipScore
    from void_engine.io import probe, read_frames
    from void_engine.qc import QCAccumulator
    from void_engine.quadmask import read_quadmask

    folder = os.path.dirname(shot.plate_uri)
    truth_info = probe(os.path.join(folder, TRUTH), what="ground truth")
    result_info = probe(result_uri, what="result")
    if result_info.size != truth_info.size or result_info.frames != truth_info.frames:
        raise InputError(f"shot {shot.shot_id}: result {result_uri} is {result_info.width}x"
                         f"{result_info.height}, {result_info.frames} frames; the ground truth "
                         f"is {truth_info.width}x{truth_info.height}, {truth_info.frames}")
    score, qc = ClipScore(), QCAccumulator()
    frames = zip(read_frames(result_info, uint8=True), read_frames(truth_info),
                 read_quadmask(shot.quadmask_uri), read_frames(probe(shot.plate_uri)),
                 strict=True)
    for i, (res, truth, mask, plate) in enumerate(frames):
        score.add(res, truth, mask)
        qc.add(plate, res, mask)
        if progress:
            progress(shot.shot_id, "score", i + 1, truth_info.frames)
    return score.summary() | qc.figures().as_row()


def clip_row(shot, label: str) -> dict:
    info = load_clip_info(os.path.dirname(shot.plate_uri))
    return {"engine": label, "clip": shot.shot_id, **info["properties"]}


def run_engine(set_dir: str | Path, engine, *, label: str | None = None,
               passes: str = "1", model_size: tuple[int, int] | None = None,
               results_dir: str | Path | None = None, seed: int = 42,
               progress: Progress | None = None) -> list[dict]:
    """Run `engine` (an Engine instance) over the set; results go to results_dir (kept)
    or a temp folder (removed). Returns one row per clip."""
    from void_engine.config import DEFAULT_MODEL_SIZE

    size = model_size or engine.model_size or DEFAULT_MODEL_SIZE
    label = label or engine.name
    rows = []
    with tempfile.TemporaryDirectory(prefix="void-eval-") as tmp:
        out = Path(results_dir or tmp)
        for shot in load_set(set_dir):
            row = clip_row(shot, label)
            try:
                started = time.perf_counter()
                result = _remove(shot, engine, passes, size, seed, Path(tmp) / shot.shot_id,
                                 out, progress)
                row["engine_seconds"] = time.perf_counter() - started
                row |= score_clip(shot, result, progress)
                row["result_uri"] = result if results_dir else ""
            except (VoidError, ValueError) as exc:
                row["error"] = " ".join(str(exc).split())
            rows.append(row)
    return rows


def _remove(shot, engine, passes, size, seed, work: Path, out: Path,
            progress: Progress | None) -> str:
    from void_engine import stages
    from void_engine.engines.base import RemovalParams

    def report(stage):
        return progress and (lambda done, total: progress(shot.shot_id, stage, done, total))

    params = RemovalParams(seed=seed, passes=passes)
    decoded = stages.decode_shot(shot.plate_uri, shot.quadmask_uri, work, shot_id=shot.shot_id,
                                 model_size=size, frame_rules=engine.frame_rules,
                                 progress=report("decode"))
    result = stages.run_pass1(decoded, engine, shot.prompt, params, work / "pass1.npy",
                              progress=report("pass 1"))
    if passes == "2":
        result = stages.run_pass2(decoded, result, engine, shot.prompt, params,
                                  work / "pass2.npy", progress=report("pass 2"))
    encoded = stages.encode_shot(decoded, result, out, codec="ffv1", review=False,
                                 progress=report("encode"),
                                 result_uri=str(out / f"{shot.shot_id}.mkv"))
    return encoded.result_uri


def find_result(results_dir: str | Path, shot_id: str) -> str | None:
    """A shot's result in a folder: <id>.mkv/.mov/.mp4, or the same inside <id>/ (how
    `void-batch run` delivers), or a <id>/ folder of PNG/EXR frames."""
    root = Path(results_dir)
    for base in (root, root / shot_id):
        for ext in RESULT_EXTS:
            if (base / f"{shot_id}{ext}").is_file():
                return str(base / f"{shot_id}{ext}")
    folder = root / shot_id
    if folder.is_dir() and (glob.glob(str(folder / "*.png")) or glob.glob(str(folder / "*.exr"))):
        return str(folder)
    return None


def score_results(set_dir: str | Path, results_dir: str | Path, *, label: str,
                  progress: Progress | None = None) -> list[dict]:
    """Score existing results (one per clip of the set, found by shot id)."""
    rows = []
    for shot in load_set(set_dir):
        row = clip_row(shot, label)
        result = find_result(results_dir, shot.shot_id)
        try:
            if result is None:
                raise InputError(f"shot {shot.shot_id}: no result in {results_dir}")
            row |= score_clip(shot, result, progress)
            row["result_uri"] = result
        except (VoidError, ValueError) as exc:
            row["error"] = " ".join(str(exc).split())
        rows.append(row)
    return rows
