"""encode_shot: a model-space result back to plate resolution (see void_engine.stages).

Drops the padding, upscales the result inside each frame's change region only and blends it
into the plate; 8-bit video plates are composited inside the encoder (only the region's
patches cross a pipe), everything else frame by frame here.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from void_engine.engines.base import ProgressFn
from void_engine.errors import InputError
from void_engine.shot import CompositeParams, DecodedShot, EncodedShot, fps_of


def encode_shot(decoded: DecodedShot, result_path: str | Path, out_dir: str | Path, *,
                codec: str = "ffv1", composite: CompositeParams = CompositeParams(),
                review: bool = True, progress: ProgressFn | None = None,
                result_uri: str | None = None, shot_id: str | None = None,
                engine: str = "", qc: bool = True) -> EncodedShot:
    """Drop padding, upscale, composite into the plate (streaming), encode with `codec`,
    write the matte and review media into out_dir.

    result_uri overrides the result's location (default <out_dir>/<shot_id>.<ext>, a folder
    for png/exr); matte and review media sit beside it as <stem>_matte.mkv,
    <stem>_review.mp4 and <stem>_contact.png. shot_id (default: the decoded shot's) and
    engine are burnt into the review media. The result displays as the plate does: upright
    (a rotated plate's display rotation applied), the plate's pixel aspect and, for a
    variable-rate plate, every frame's own timestamp; a codec that cannot hold one of them
    is refused before any work. qc: measure the QC figures (void_engine.qc) while the
    frames go by; they need the plate frame in hand, so a result composited inside the
    encoder (8-bit video plate, no review media) is not measured."""
    from void_engine.io import check_codec, check_writable, output_name

    check_codec(codec)
    shot_id = shot_id or decoded.shot_id
    result_uri = result_uri or output_name(os.path.join(str(out_dir), shot_id), codec)
    stem = result_stem(result_uri)
    outputs = {"result": result_uri, "matte": f"{stem}_matte.mkv"}
    if review:
        outputs |= {"review": f"{stem}_review.mp4", "contact": f"{stem}_contact.png"}
    for what, uri in outputs.items():
        check_writable(uri, what)
    slate = {"shot_id": shot_id, "engine": engine}
    try:
        frames, notes, figures = _encode(decoded, result_path, codec, composite, outputs,
                                         progress, slate, qc)
    except InputError as exc:
        raise exc.for_shot(shot_id) from None
    m = decoded.mapping
    fps = fps_of(m)
    return EncodedShot(shot_id=shot_id, result_uri=result_uri,
                       matte_uri=outputs["matte"], review_movie_uri=outputs.get("review"),
                       contact_sheet_uri=outputs.get("contact"), frames=frames,
                       fps=float(fps), size=tuple(m.plate_size),
                       fps_rational=f"{fps.numerator}/{fps.denominator}",
                       display_note="; ".join(notes), qc=figures)


def _encode(decoded, result_path, codec, composite, outputs, progress, slate, qc):
    import contextlib

    from void_engine.io import (
        SEQUENCE_CODECS,
        VIDEO_CODECS,
        frame_timing,
        local_input,
        open_writer,
        probe,
    )
    from void_engine.io.atomic import copy_file
    from void_engine.modelspace import ChangeRegions, first_occurrence, overlay_patches

    m = decoded.mapping
    n, fps = m.num_frames, fps_of(m)
    result = np.load(result_path, mmap_mode="r")
    expected = (len(m.frame_indices), *m.model_size, 3)
    if result.shape != expected or result.dtype != np.uint8:
        raise InputError(f"result {result_path} is {result.dtype} {result.shape}, "
                         f"expected uint8 {expected}")
    pick = first_occurrence(m.frame_indices, n)  # drops the ping-pong padding
    blend = {"dilate_px": composite.dilate_px, "feather_px": composite.feather_px,
             "upscale": composite.upscale}
    # decode_shot stores the change regions and the matte beside its record: the 4K mask is
    # never decoded twice.
    missing = [f"{what} ({f})" if f else what
               for f, what in ((decoded.regions_file, "change regions"),
                               (decoded.matte_file, "matte"))
               if not f or not os.path.exists(decoded.beside(f))]
    if missing:
        raise InputError(f"the decode record lacks {', '.join(missing)}: decode the shot again")
    with contextlib.ExitStack() as stack:
        plate_path = stack.enter_context(local_input(decoded.plate_uri, "plate"))
        plate = probe(plate_path, what="plate", fps=fps)
        if plate.size != tuple(m.plate_size):
            raise InputError(f"plate {decoded.plate_uri} changed size since decode_shot")
        notes = _deliverable_notes(plate, codec)
        timing = frame_timing(plate, m.first_frame, n)
        audio = None
        if plate.kind == "video" and plate.audio_codec and codec in VIDEO_CODECS:
            audio = (plate_path, *_audio_span(plate, m.first_frame, n))
        out_dtype = _output_dtype(codec, plate.dtype)
        overlay = None  # composite in Python
        regions = ChangeRegions(decoded.beside(decoded.regions_file))
        stack.callback(regions.close)
        if len(regions) != n or regions.plate_size != plate.size:
            raise InputError(f"change regions in {decoded.regions_file} do not match the plate")
        acc, on_tap = _qc_accumulator() if qc else None, None
        if ("review" not in outputs and plate.kind == "video"
                and out_dtype == np.uint8 and plate.depth == 8 and codec in VIDEO_CODECS):
            overlay, on_tap = _in_encoder(decoded, plate, plate_path, regions, composite, acc,
                                          stack)
        writer = stack.enter_context(open_writer(
            outputs["result"], codec, fps=fps, size=plate.size, dtype=out_dtype, audio=audio,
            audio_codec=plate.audio_codec, overlay=overlay, sar=plate.sar, **timing,
            start_number=m.first_frame if codec in SEQUENCE_CODECS else 0, on_tap=on_tap))
        done = 0
        if overlay is not None:
            small = (result[k] for k in pick)
            for done, patch in enumerate(overlay_patches(
                    regions, list(small), (overlay.y, overlay.x), overlay.size,
                    bgra=overlay.bgra, **blend), 1):
                writer.write(patch)
                if progress:
                    progress(done, n)
        else:
            done = _composite_in_python(decoded, plate, regions, result, pick, blend, outputs,
                                        writer, out_dtype, stack, progress, slate, timing, acc)
        if done != n:
            raise InputError(f"plate/quadmask gave {done} of {n} frames while encoding")
    figures = _qc_figures(acc, overlay, n)  # after the writer closed: the tap is all in
    copy_file(decoded.beside(decoded.matte_file), outputs["matte"], what="matte")
    return done, notes, figures


def _qc_accumulator():
    from void_engine.qc import QCAccumulator

    return QCAccumulator()


def _qc_figures(acc, overlay, n: int) -> dict:
    if acc is None:
        return {}
    if overlay is not None and overlay.tap is None:  # no change anywhere: nothing tapped
        for _ in range(n):
            acc.add_change(None, None, None, None)
    return acc.figures().as_row(prefix="")


def _in_encoder(decoded, plate, plate_path, regions, composite, acc, stack):
    """(PlateOverlay, tap consumer or None): composite inside the encoder, so only the
    region's patches cross a pipe (and, for QC, the window it measures: plate and result
    as encoded)."""
    from void_engine.io import PlateOverlay, bgra_exact

    m = decoded.mapping
    union = regions.union(composite.dilate_px + composite.feather_px + 2)
    ys, xs = union or (slice(0, 1), slice(0, 1))
    tap, on_tap = None, None
    if acc is not None:
        tap, on_tap = _qc_tap(acc, decoded.beside(decoded.regions_file), plate.size, stack)
    overlay = PlateOverlay(plate_path, m.first_frame, m.num_frames, ys.start, xs.start,
                           (ys.stop - ys.start, xs.stop - xs.start),
                           bgra=bgra_exact(plate.pix_fmt), tap=tap)
    return overlay, on_tap


def _qc_tap(acc, regions_file: str, plate_size, stack):
    """(window, consumer) measuring QC on the encoder's tap: the window QC reads, cropped
    out of the plate and of the composited frame as ffmpeg encodes them; None, None when
    no frame has a change region."""
    import cv2

    from void_engine.modelspace import ChangeRegions
    from void_engine.qc import measured_window

    regions = ChangeRegions(regions_file)  # the tap thread's own reader
    stack.callback(regions.close)
    window = measured_window(regions.boxes, plate_size)
    if window is None:
        return None, None
    y0, _, x0, x1 = window
    w, frames = x1 - x0, iter(range(len(regions)))

    def consume(pair: np.ndarray) -> None:
        # QC reads grey: one conversion of the window here (per pixel, so the same grey as
        # QC's own of each crop) keeps two small frames alive instead of two RGB pairs.
        grey = cv2.cvtColor(pair, cv2.COLOR_RGB2GRAY)
        plate_g, result_g = grey[:, :w], grey[:, w:]
        region = regions[next(frames)]
        if region is None:
            acc.add_change(plate_g, result_g, None, None)
            return
        (by0, by1, bx0, bx1), change = region
        acc.add_change(plate_g, result_g, (by0 - y0, by1 - y0, bx0 - x0, bx1 - x0), change)

    return window, consume


def _deliverable_notes(plate, codec: str) -> list[str]:
    """What the result keeps of the plate's display side data (for the report), refusing a
    codec that cannot keep it: timing and pixel aspect are never changed silently."""
    from void_engine.io import SEQUENCE_CODECS

    notes = []
    if plate.rotation:
        notes.append(f"plate displayed turned {plate.rotation}° counter-clockwise: result "
                     "written upright as displayed, without a rotation tag")
    if plate.sar != 1:
        if codec == "png":
            raise InputError(f"plate has non-square pixels (SAR {plate.sar.numerator}:"
                             f"{plate.sar.denominator}) and PNG cannot record them: choose "
                             "exr, ffv1, prores or h264")
        notes.append(f"pixel aspect {plate.sar.numerator}:{plate.sar.denominator} kept")
    if plate.variable_rate:
        if codec in SEQUENCE_CODECS:
            raise InputError(f"plate has a variable frame rate and {codec} sequences have no "
                             "frame times: choose ffv1, prores or h264 (they keep each "
                             "frame's timestamp)")
        notes.append("variable frame rate: every frame's timestamp kept")
    return notes


def _audio_span(plate, first: int, n: int) -> tuple[float, float | None]:
    """(start, duration) in seconds of frames first..first+n-1 in the plate's audio; duration
    None for the whole plate (stream copy). Variable-rate plates use their frame times."""
    if first == 0 and n == plate.frames:
        return 0.0, None
    if not plate.variable_rate:
        return float(first / plate.fps), float(n / plate.fps)
    ts, tb = plate.timestamps, plate.time_base
    end = ts[first + n] if first + n < len(ts) else ts[-1] + (ts[-1] - ts[-2])
    return float(ts[first] * tb), float((end - ts[first]) * tb)


def _composite_in_python(decoded, plate, regions, result, pick, blend, outputs, writer,
                         out_dtype, stack, progress, slate, timing, qc=None) -> int:
    """Composite each full plate frame here (any depth, any codec, review media); the plate
    is read a couple of frames ahead on a thread."""
    import itertools

    from void_engine.io import Prefetch, read_frames
    from void_engine.io.maskfile import read_quadmask
    from void_engine.modelspace import composite_region
    from void_engine.review import ReviewWriter

    m = decoded.mapping
    n, fps = m.num_frames, fps_of(m)
    reviewer = None
    if "review" in outputs:
        reviewer = stack.enter_context(ReviewWriter(
            outputs["review"], outputs["contact"], plate_size=plate.size, fps=fps, frames=n,
            first_frame=m.first_frame, sar=plate.sar, timing=timing, **slate))
    # Review thumbnails only need the mask at their own size: ffmpeg scales the matte.
    masks = (read_quadmask(decoded.beside(decoded.matte_file), count=n, strict=False,
                           size=(reviewer.col_h, reviewer.col_w))
             if reviewer else itertools.repeat(None))
    frames = stack.enter_context(Prefetch(read_frames(plate, first=m.first_frame, count=n,
                                                      threads=2), depth=2))
    done = 0
    for j, (frame, mask) in enumerate(zip(frames, masks, strict=False)):
        plate_frame = frame.copy() if reviewer or qc else frame
        out = frame if frame.flags.writeable else frame.copy()
        region = regions[j]
        if region is not None:
            composite_region(out, *region, result[pick[j]], **blend)
        if qc is not None:
            qc.add_change(plate_frame, out, *(region or (None, None)))
        writer.write(_convert(out, out_dtype))
        if reviewer:
            reviewer.add(j, plate_frame, mask, out)
        done = j + 1
        if progress:
            progress(done, n)
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


def result_stem(uri: str) -> str:
    """A result URI without its container extension (sequence folders as they are): the
    stem that matte and review media are named after."""
    from void_engine.io.codecs import strip_video_ext

    return strip_video_ext(uri)
