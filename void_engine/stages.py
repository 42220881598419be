"""The per-shot stages as plain functions: files in, files out, typed records between them.

    plate + quadmask --decode_shot--> DecodedShot (model-space clip + mask as .npy, mapping)
                     --run_pass1----> pass1.npy (model space)
                     --run_pass2----> pass2.npy (model space)
                     --encode_shot--> EncodedShot (plate-resolution result, matte, review media)

`void-batch remove` chains them in one process; the Prefect tasks in tasks/ wrap each one with
content-addressed caching, retries and placement (GPU stages on a Ray actor). Records are
JSON-serialisable (`to_json`/`from_json`) so they can cross process boundaries as paths.
Every file written here goes to a temporary name first and is renamed into place.

Paths/URIs may be local or fsspec URIs (remote ones go through a temporary local copy).
"""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from void_engine.engines.base import Engine, FrameRules, ProgressFn, RemovalParams
from void_engine.errors import InputError, OutputError


@dataclass
class ModelSpaceMap:
    """How model-space frames relate to the plate (enough to undo the mapping)."""

    plate_size: tuple[int, int]  # (height, width) of the plate
    plate_fps: float
    first_frame: int  # first plate frame used (inclusive, 0-based within the plate)
    num_frames: int  # real (unpadded) frames taken from the plate
    model_size: tuple[int, int]  # (height, width) the engine works at
    frame_indices: list[int]  # for each model frame, the index (0..num_frames-1) it shows
    plate_fps_rational: str = ""  # exact plate rate, e.g. "24000/1001" (plate_fps rounds)


@dataclass
class DecodedShot:
    shot_id: str
    plate_uri: str
    quadmask_uri: str
    clip_path: str  # .npy uint8 (T, H, W, 3), model space, padded per the engine's FrameRules
    mask_path: str  # .npy uint8 (T, H, W), quantized quadmask, model space, padded
    mapping: ModelSpaceMap
    mask_histogram: dict[int, int] = field(default_factory=dict)  # at plate resolution
    mask_first_frame: int = 0  # first quadmask frame used (the mask may cover only the range)
    plate_depth: int = 8  # 8/16 (integer) or 32 (float EXR): the dtype plate frames decode to

    def to_json(self, path: str | Path) -> str:
        return _write_json(path, dataclasses.asdict(self))

    @classmethod
    def from_json(cls, path: str | Path) -> "DecodedShot":
        d = json.loads(Path(path).read_text())
        m = d.pop("mapping")
        m["plate_size"] = tuple(m["plate_size"])
        m["model_size"] = tuple(m["model_size"])
        d["mask_histogram"] = {int(k): v for k, v in d.get("mask_histogram", {}).items()}
        return cls(mapping=ModelSpaceMap(**m), **d)


@dataclass
class CompositeParams:
    """How the model-space result goes back into the plate."""

    dilate_px: int = 8  # grow the change region (at plate resolution) before blending
    feather_px: int = 8  # soft edge width outside the dilated region
    upscale: str = "lanczos"  # cv2 interpolation used to bring the result to plate size


@dataclass
class EncodedShot:
    shot_id: str
    result_uri: str
    matte_uri: str  # the quadmask at plate size, lossless
    review_movie_uri: str | None = None
    contact_sheet_uri: str | None = None
    frames: int = 0
    fps: float = 0.0
    size: tuple[int, int] = (0, 0)  # (height, width)
    fps_rational: str = ""  # exact output rate, e.g. "24000/1001"

    def to_json(self, path: str | Path) -> str:
        return _write_json(path, dataclasses.asdict(self))

    @classmethod
    def from_json(cls, path: str | Path) -> "EncodedShot":
        d = json.loads(Path(path).read_text())
        d["size"] = tuple(d["size"])
        return cls(**d)


def decode_shot(plate_uri: str, quadmask_uri: str, workdir: str | Path, *, shot_id: str,
                frame_range: tuple[int, int] | None = None,
                model_size: tuple[int, int] = (384, 672),
                frame_rules: FrameRules = FrameRules(),
                fps: float | None = None, progress: ProgressFn | None = None) -> DecodedShot:
    """Probe + validate plate and quadmask, bring both to model space (streaming decode,
    scaled inside ffmpeg), pad per frame_rules, write clip/mask .npy + decoded.json to workdir.
    frame_range is inclusive (first, last) in plate frames. Raises InputError naming shot_id.
    fps sets the rate of image-sequence plates (they carry none; default 24)."""
    try:
        return _decode_shot(plate_uri, quadmask_uri, Path(workdir), shot_id, frame_range,
                            tuple(model_size), frame_rules, fps, progress)
    except InputError as exc:
        raise exc.for_shot(shot_id) from None


def _decode_shot(plate_uri, quadmask_uri, workdir, shot_id, frame_range, model_size,
                 frame_rules, fps, progress) -> DecodedShot:
    from void_engine.io import local_input, probe, read_frames
    from void_engine.modelspace import pad_plan, resize_mask
    from void_engine.quadmask import KEEP, VALUES, read_quadmask

    workdir.mkdir(parents=True, exist_ok=True)
    mh, mw = model_size
    with local_input(plate_uri, "plate") as plate_path, \
            local_input(quadmask_uri, "quadmask") as mask_path:
        plate = probe(plate_path, what="plate", fps=fps)
        first, n = resolve_range(frame_range, plate.frames)
        minfo = probe(mask_path, what="quadmask")
        mask_first, mask_size = _align_mask(minfo, plate, first, n)
        # The mask first: it is cheaper to decode and most bad input is a bad mask.
        masks = np.empty((n, mh, mw), np.uint8)
        counts = np.zeros(256, np.int64)
        got = 0
        for i, m in enumerate(read_quadmask(mask_path, first=mask_first, count=n,
                                            size=mask_size)):
            counts += np.bincount(m.ravel(), minlength=256)
            masks[i] = resize_mask(m, model_size)
            got = i + 1
            if progress:
                progress(i + 1, 2 * n)
        if got != n:
            raise InputError(f"quadmask {quadmask_uri} decoded {got} of {n} frames "
                             "(truncated or corrupt)")
        if counts[KEEP] == counts.sum():
            raise InputError("quadmask is empty: no pixel is marked for removal (all 255)")
        clip = np.empty((n, mh, mw, 3), np.uint8)
        got = 0
        for i, frame in enumerate(read_frames(plate, first=first, count=n, size=model_size,
                                              uint8=True)):
            clip[i] = frame
            got = i + 1
            if progress:
                progress(n + i + 1, 2 * n)
        if got != n:
            raise InputError(f"plate {plate_uri} decoded {got} of {n} frames "
                             "(truncated or corrupt)")
    indices = pad_plan(n, frame_rules)
    clip_path = _save_npy(workdir / "clip.npy", clip[indices])
    mask_path_out = _save_npy(workdir / "mask.npy", masks[indices])
    mapping = ModelSpaceMap(plate_size=plate.size, plate_fps=float(plate.fps), first_frame=first,
                            num_frames=n, model_size=model_size, frame_indices=indices,
                            plate_fps_rational=f"{plate.fps.numerator}/{plate.fps.denominator}")
    decoded = DecodedShot(shot_id=shot_id, plate_uri=str(plate_uri),
                          quadmask_uri=str(quadmask_uri), clip_path=clip_path,
                          mask_path=mask_path_out, mapping=mapping,
                          mask_histogram={v: int(counts[v]) for v in VALUES},
                          mask_first_frame=mask_first, plate_depth=plate.depth)
    decoded.to_json(workdir / "decoded.json")
    return decoded


def resolve_range(frame_range: tuple[int, int] | None, total: int) -> tuple[int, int]:
    """(first, count) of an inclusive plate frame range; InputError when outside the plate."""
    if frame_range is None:
        return 0, total
    a, b = (int(v) for v in frame_range)
    if a < 0 or b < a:
        raise InputError(f"frame range {a}-{b} is invalid (need 0 <= first <= last)")
    if b >= total:
        raise InputError(f"frame range {a}-{b} is outside the plate's frames 0-{total - 1}")
    return a, b - a + 1


def _align_mask(minfo, plate, first: int, n: int) -> tuple[int, tuple[int, int] | None]:
    """Which mask frames go with the plate range, and the size to resize the mask to (None
    when it matches; a proxy-resolution mask with the plate's aspect ratio is accepted)."""
    if minfo.size == plate.size:
        size = None
    elif abs(minfo.width / minfo.height - plate.width / plate.height) < 0.01 * (
            plate.width / plate.height):
        size = plate.size
    else:
        raise InputError(f"quadmask is {minfo.width}x{minfo.height} but the plate is "
                         f"{plate.width}x{plate.height}")
    if minfo.frames == plate.frames:
        return first, size
    if minfo.frames == n:  # a mask made for the range only
        return 0, size
    raise InputError(f"quadmask has {minfo.frames} frames but the plate has {plate.frames}")


def run_pass1(decoded: DecodedShot, engine: Engine, prompt: str, params: RemovalParams,
              out_path: str | Path, progress: ProgressFn | None = None) -> str:
    """Engine pass 1 on the decoded clip; writes (T, H, W, 3) uint8 .npy; returns its path."""
    clip, mask = _load_model_space(decoded)
    out = engine.pass1(clip, mask, prompt, params, progress)
    return _save_npy(out_path, _check_result(out, clip, engine.name, "pass 1"))


def run_pass2(decoded: DecodedShot, pass1_path: str | Path, engine: Engine, prompt: str,
              params: RemovalParams, out_path: str | Path,
              progress: ProgressFn | None = None) -> str:
    """Engine pass 2 refining the pass-1 result; writes .npy; returns its path."""
    clip, mask = _load_model_space(decoded)
    pass1 = np.load(pass1_path)
    _check_result(pass1, clip, engine.name, "pass 1")
    out = engine.pass2(clip, mask, prompt, pass1, params, progress)
    return _save_npy(out_path, _check_result(out, clip, engine.name, "pass 2"))


def _load_model_space(decoded: DecodedShot) -> tuple[np.ndarray, np.ndarray]:
    from void_engine.engines.base import check_clip

    clip, mask = np.load(decoded.clip_path), np.load(decoded.mask_path)
    check_clip(clip, mask)
    return clip, mask


def _check_result(out: np.ndarray, clip: np.ndarray, engine: str, what: str) -> np.ndarray:
    out = np.asarray(out)
    if out.shape != clip.shape or out.dtype != np.uint8:
        raise OutputError(f"engine {engine!r} {what} returned {out.dtype} {out.shape}, "
                          f"expected uint8 {clip.shape}")
    return out


def encode_shot(decoded: DecodedShot, result_path: str | Path, out_dir: str | Path, *,
                codec: str = "ffv1", composite: CompositeParams = CompositeParams(),
                review: bool = True, progress: ProgressFn | None = None,
                result_uri: str | None = None) -> EncodedShot:
    """Drop padding, upscale, composite into the plate (streaming), encode with `codec`,
    write the matte and review media into out_dir.

    result_uri overrides the result's location (default <out_dir>/<shot_id>.<ext>, a folder
    for png/exr); matte and review media sit beside it as <stem>_matte.mkv,
    <stem>_review.mp4 and <stem>_contact.png."""
    from void_engine.io import ALL_CODECS, check_writable, output_name

    if codec not in ALL_CODECS:
        raise OutputError(f"unknown codec {codec!r} (have {', '.join(ALL_CODECS)})")
    result_uri = result_uri or output_name(os.path.join(str(out_dir), decoded.shot_id), codec)
    stem = _strip_ext(result_uri)
    outputs = {"result": result_uri, "matte": f"{stem}_matte.mkv"}
    if review:
        outputs |= {"review": f"{stem}_review.mp4", "contact": f"{stem}_contact.png"}
    for what, uri in outputs.items():
        check_writable(uri, what)
    try:
        frames = _encode(decoded, result_path, codec, composite, outputs, progress)
    except InputError as exc:
        raise exc.for_shot(decoded.shot_id) from None
    m = decoded.mapping
    fps = _fps(m)
    return EncodedShot(shot_id=decoded.shot_id, result_uri=result_uri,
                       matte_uri=outputs["matte"], review_movie_uri=outputs.get("review"),
                       contact_sheet_uri=outputs.get("contact"), frames=frames,
                       fps=float(fps), size=tuple(m.plate_size),
                       fps_rational=f"{fps.numerator}/{fps.denominator}")


def _encode(decoded, result_path, codec, composite, outputs, progress) -> int:
    import contextlib

    from void_engine.io import (SEQUENCE_CODECS, VIDEO_CODECS, local_input, open_writer,
                                probe, read_frames)
    from void_engine.modelspace import composite_frame, first_occurrence
    from void_engine.quadmask import open_quadmask_writer, read_quadmask
    from void_engine.review import ReviewWriter

    m = decoded.mapping
    n, fps = m.num_frames, _fps(m)
    result = np.load(result_path, mmap_mode="r")
    expected = (len(m.frame_indices), *m.model_size, 3)
    if result.shape != expected or result.dtype != np.uint8:
        raise InputError(f"result {result_path} is {result.dtype} {result.shape}, "
                         f"expected uint8 {expected}")
    pick = first_occurrence(m.frame_indices, n)  # drops the ping-pong padding
    with contextlib.ExitStack() as stack:
        plate_path = stack.enter_context(local_input(decoded.plate_uri, "plate"))
        mask_path = stack.enter_context(local_input(decoded.quadmask_uri, "quadmask"))
        plate = probe(plate_path, what="plate", fps=fps)
        if plate.size != tuple(m.plate_size):
            raise InputError(f"plate {decoded.plate_uri} changed size since decode_shot")
        minfo = probe(mask_path, what="quadmask")
        audio = None
        if plate.kind == "video" and plate.audio_codec and codec in VIDEO_CODECS:
            whole = m.first_frame == 0 and n == plate.frames
            audio = (plate_path, float(m.first_frame / fps), None if whole else float(n / fps))
        out_dtype = _output_dtype(codec, plate.dtype)
        writer = stack.enter_context(open_writer(
            outputs["result"], codec, fps=fps, size=plate.size, dtype=out_dtype, audio=audio,
            audio_codec=plate.audio_codec,
            start_number=m.first_frame if codec in SEQUENCE_CODECS else 0))
        matte = stack.enter_context(open_quadmask_writer(outputs["matte"], fps=fps,
                                                         size=plate.size))
        reviewer = None
        if "review" in outputs:
            reviewer = stack.enter_context(ReviewWriter(
                outputs["review"], outputs["contact"], plate_size=plate.size, fps=fps,
                frames=n))
        masks = read_quadmask(mask_path, first=decoded.mask_first_frame, count=n,
                              size=None if minfo.size == plate.size else plate.size,
                              strict=False)
        done = 0
        for j, (frame, mask) in enumerate(zip(read_frames(plate, first=m.first_frame,
                                                          count=n), masks)):
            plate_frame = frame.copy() if reviewer else frame
            out = composite_frame(frame, mask, result[pick[j]], dilate_px=composite.dilate_px,
                                  feather_px=composite.feather_px, upscale=composite.upscale)
            writer.write(_convert(out, out_dtype))
            matte.write(mask)
            if reviewer:
                reviewer.add(j, plate_frame, mask, out)
            done = j + 1
            if progress:
                progress(done, n)
        if done != n:
            raise InputError(f"plate/quadmask gave {done} of {n} frames while encoding")
    return done


def _output_dtype(codec: str, plate_dtype: np.dtype) -> np.dtype:
    """Keep the plate's depth where the codec can hold it (FFV1/ProRes/PNG 16-bit, EXR)."""
    if codec == "h264":
        return np.dtype(np.uint8)
    if codec == "exr":
        return np.dtype(plate_dtype)
    return np.dtype(np.uint8) if plate_dtype == np.uint8 else np.dtype(np.uint16)


def _convert(frame: np.ndarray, dtype: np.dtype) -> np.ndarray:
    from void_engine.io import from_float, to_uint8

    if frame.dtype == dtype:
        return frame
    if dtype == np.uint8:
        return to_uint8(frame)
    return from_float(frame.astype(np.float32) * 65535.0, dtype)  # float plate -> 16-bit


def _fps(m: ModelSpaceMap) -> Fraction:
    if m.plate_fps_rational:
        return Fraction(m.plate_fps_rational)
    return Fraction(m.plate_fps).limit_denominator(100000)


def _strip_ext(uri: str) -> str:
    base, ext = os.path.splitext(uri.rstrip("/"))
    return base if ext.lower() in (".mp4", ".mov", ".mkv") else uri.rstrip("/")


def _save_npy(path: str | Path, array: np.ndarray) -> str:
    from void_engine.io.uri import make_public

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array)
        make_public(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return str(path)


def _write_json(path: str | Path, payload: dict) -> str:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=list))
    tmp.replace(path)
    return str(path)
