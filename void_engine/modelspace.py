"""Plate <-> model space: working size, frame rules (padding), and compositing back.

Going in, a plate is stretched to the model's working size (aspect ratio ignored, like the
reference) and padded in time to the engine's FrameRules by ping-pong repetition. Going out,
the padding is dropped (the reference never does this and returns padded, 12 fps clips),
the result is upscaled to plate size and blended into the plate inside the quadmask's change
region only: outside it (dilated + feathered) every output pixel is the plate's own.
"""
from __future__ import annotations

from fractions import Fraction

import cv2
import numpy as np

from void_engine.engines.base import FrameRules
from void_engine.io.pixels import from_float, scale_of
from void_engine.quadmask import KEEP, bounding_box

_INTERP = {"lanczos": cv2.INTER_LANCZOS4, "cubic": cv2.INTER_CUBIC,
           "linear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST}


def padded_length(n: int, rules: FrameRules) -> int:
    """Smallest T >= max(n, min_frames) with T = m*k + 1 (k odd when rules.odd_k).

    For VOID (m=4, odd k, min 85): 46 or 62 -> 85, 86 -> 93, 100 -> 101, 197 -> 197.
    """
    if n <= 0:
        raise ValueError("a clip needs at least one frame")
    t = max(n, rules.min_frames)
    m = max(1, rules.temporal_multiple)
    while True:
        k, rem = divmod(t - 1, m)
        if rem == 0 and (not rules.odd_k or k % 2 == 1):
            return t
        t += 1


def ping_pong(n: int, length: int) -> list[int]:
    """Frame indices of a clip of n frames lengthened to `length` by appending its reversed
    copy repeatedly: 0..n-1, n-1..0, 0..n-1, ... (end frames appear twice, as in the
    reference's temporal padding)."""
    period = 2 * n
    return [i % period if i % period < n else period - 1 - i % period for i in range(length)]


def pad_plan(n: int, rules: FrameRules) -> list[int]:
    """For each model frame, the real frame (0..n-1) it shows."""
    return ping_pong(n, padded_length(n, rules))


def first_occurrence(frame_indices: list[int], n: int) -> list[int]:
    """For each real frame 0..n-1, the model frame that first shows it (drops the padding)."""
    where: dict[int, int] = {}
    for k, j in enumerate(frame_indices):
        where.setdefault(j, k)
    missing = [j for j in range(n) if j not in where]
    if missing:
        raise ValueError(f"model frames never show plate frames {missing[:5]}")
    return [where[j] for j in range(n)]


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Quadmask to (h, w): area-average then re-quantize, as the reference loader does.

    A downscale only resizes the grid-aligned window around the pixels that are not KEEP
    (everything else averages to exactly KEEP): the same pixels as a whole-frame INTER_AREA
    resize for a fraction of its cost on a 4K mask whose object covers a corner of it."""
    from void_engine.quadmask import quantize

    (h, w), (sh, sw) = mask.shape[:2], tuple(size)
    if (h, w) == (sh, sw):
        return mask
    if h < sh or w < sw or mask.ndim != 2:  # INTER_AREA interpolates when upscaling
        return quantize(cv2.resize(mask, (sw, sh), interpolation=cv2.INTER_AREA))
    out = np.full((sh, sw), KEEP, np.uint8)
    box = bounding_box(mask)
    if box is not None:
        oy0, oy1, iy0, iy1 = _aligned_span(sh, h, box[0], box[1], 0)
        ox0, ox1, ix0, ix1 = _aligned_span(sw, w, box[2], box[3], 0)
        out[oy0:oy1, ox0:ox1] = quantize(cv2.resize(
            mask[iy0:iy1, ix0:ix1], (ox1 - ox0, oy1 - oy0), interpolation=cv2.INTER_AREA))
    return out


def blend_alpha(change: np.ndarray, dilate_px: int, feather_px: int, *,
                u8: bool = False) -> np.ndarray:
    """float32 alpha: 1 within dilate_px of the change region, a linear ramp to 0 over the
    next feather_px pixels, exactly 0 beyond. u8=True: round(255 * alpha) as uint8, in one
    saturating pass (what an encoder-side overlay takes)."""
    outside = np.ascontiguousarray(~change, dtype=np.uint8)
    dist = cv2.distanceTransform(outside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    ramp = feather_px + 1.0
    scale = 255.0 if u8 else 1.0
    # (dilate + feather + 1 - dist) / (feather + 1), clipped to [0, 1] (saturated for u8).
    alpha = cv2.addWeighted(dist, -scale / ramp, dist, 0.0, scale * (dilate_px + ramp) / ramp,
                            dtype=cv2.CV_8U if u8 else cv2.CV_32F)
    return alpha if u8 else np.clip(alpha, 0.0, 1.0, out=alpha)


def change_box(change: np.ndarray) -> tuple[int, int, int, int] | None:
    """Tight (y0, y1, x0, x1) box of the True/nonzero pixels of `change`, or None."""
    x, y, w, h = cv2.boundingRect(np.ascontiguousarray(change, dtype=np.uint8))
    return None if w == 0 or h == 0 else (y, y + h, x, x + w)


def _grow(box: tuple[int, int, int, int], margin: int,
          size: tuple[int, int]) -> tuple[slice, slice]:
    y0, y1, x0, x1 = box
    return (slice(max(0, y0 - margin), min(size[0], y1 + margin)),
            slice(max(0, x0 - margin), min(size[1], x1 + margin)))


def _aligned_span(small: int, plate: int, a: int, b: int, pad: int) -> tuple[int, int, int, int]:
    """Source span [s0, s1) and plate span [d0, d1) covering plate pixels [a, b) such that
    resizing the source span to the plate span maps pixels exactly as resizing the whole
    axis does (spans start on a common grid point), with `pad` source pixels of context.
    Either way round: resize_mask uses it with the model size as `small`, the plate as
    `plate`, to downscale only a window."""
    ratio = Fraction(plate, small)
    step_d, step_s = ratio.numerator, ratio.denominator  # plate / source pixels per grid cell
    blocks = -(-pad // step_s)
    s0 = max(0, (a // step_d - blocks) * step_s)
    s1 = min(small, (-(-b // step_d) + blocks) * step_s)
    return s0, s1, s0 // step_s * step_d, -(-s1 // step_s) * step_d if s1 < small else plate


def upscale_crop(small: np.ndarray, plate_size: tuple[int, int], ys: slice, xs: slice,
                 method: str = "lanczos") -> np.ndarray:
    """The (ys, xs) crop of `small` resized to plate_size, computed for the crop only.

    cv2.resize of a source window whose edges sit on the grid where source and plate pixel
    edges coincide gives the full resize's pixels (to within 1 level of rounding) at a
    fraction of its cost; 4 source pixels of context cover the widest (Lanczos) kernel."""
    sh, sw = small.shape[:2]
    ph, pw = plate_size
    if method == "nearest":  # cv2.resize's own index rule, which no window reproduces
        iy = np.minimum(np.floor(np.arange(ys.start, ys.stop) * (1.0 / (ph / sh))), sh - 1)
        ix = np.minimum(np.floor(np.arange(xs.start, xs.stop) * (1.0 / (pw / sw))), sw - 1)
        return small[iy.astype(np.intp)[:, None], ix.astype(np.intp)[None, :]]
    sy0, sy1, dy0, dy1 = _aligned_span(sh, ph, ys.start, ys.stop, 4)
    sx0, sx1, dx0, dx1 = _aligned_span(sw, pw, xs.start, xs.stop, 4)
    src = np.ascontiguousarray(small[sy0:sy1, sx0:sx1])
    lanczos_u8 = method == "lanczos" and src.dtype == np.uint8
    if lanczos_u8:  # OpenCV's 8-bit Lanczos has no SIMD path: float32 takes half the CPU
        src = src.astype(np.float32)
    big = cv2.resize(src, (dx1 - dx0, dy1 - dy0), interpolation=_INTERP[method])
    big = big[ys.start - dy0:ys.stop - dy0, xs.start - dx0:xs.stop - dx0]
    return cv2.multiply(big, 1.0, dtype=cv2.CV_8U) if lanczos_u8 else big  # rounds, saturates


def region_blend(plate_size: tuple[int, int], box: tuple[int, int, int, int],
                 change: np.ndarray, result_small: np.ndarray, *, dilate_px: int = 8,
                 feather_px: int = 8, upscale: str = "lanczos", alpha_u8: bool = False):
    """What compositing needs for one frame: (ys, xs, alpha, result) over the change box
    grown by the blend margin. change is the boolean change map inside `box` (y0, y1, x0,
    x1); alpha is float32 (0 = plate, 1 = result; alpha_u8: 0..255 uint8), result the
    upscaled uint8 model output."""
    margin = dilate_px + feather_px + 2
    ys, xs = _grow(box, margin, plate_size)
    grown = np.zeros((ys.stop - ys.start, xs.stop - xs.start), bool)
    y0, y1, x0, x1 = box
    grown[y0 - ys.start:y1 - ys.start, x0 - xs.start:x1 - xs.start] = change
    alpha = blend_alpha(grown, dilate_px, feather_px, u8=alpha_u8)
    return ys, xs, alpha, upscale_crop(result_small, plate_size, ys, xs, upscale)


def blend_into(plate: np.ndarray, ys: slice, xs: slice, alpha: np.ndarray,
               res: np.ndarray) -> None:
    """plate[ys, xs] = plate + alpha * (res - plate), in place, touching only alpha > 0."""
    crop = plate[ys, xs]
    inside = alpha > 0
    if plate.dtype == np.uint8:  # one fused, threaded OpenCV pass (rounded, saturated)
        blended = cv2.blendLinear(np.ascontiguousarray(crop), res, 1.0 - alpha, alpha)
    else:
        r = res.astype(np.float32)
        r *= scale_of(plate.dtype) / 255.0
        base = crop.astype(np.float32)
        blended = from_float(base + alpha[..., None] * (r - base), plate.dtype)
    np.copyto(crop, blended, where=inside[..., None])


def composite_frame(plate: np.ndarray, mask: np.ndarray, result_small: np.ndarray, *,
                    dilate_px: int = 8, feather_px: int = 8,
                    upscale: str = "lanczos") -> np.ndarray:
    """Blend the model-space result into one plate frame.

    plate: (H, W, 3) uint8/uint16/float32; mask: (H, W) quantized quadmask at plate size;
    result_small: (h, w, 3) uint8 model-space result. Works on the change region's bounding
    box only; every pixel outside the dilated + feathered region is the plate's, bit for bit.
    """
    out = plate if plate.flags.writeable else plate.copy()
    box = bounding_box(mask)
    if box is not None:
        y0, y1, x0, x1 = box
        composite_region(out, box, mask[y0:y1, x0:x1] != KEEP, result_small, dilate_px=dilate_px,
                         feather_px=feather_px, upscale=upscale)
    return out


def composite_region(plate: np.ndarray, box, change: np.ndarray, result_small: np.ndarray,
                     **blend) -> np.ndarray:
    """composite_frame from a stored change box + map (see ChangeRegions), in place."""
    ys, xs, alpha, res = region_blend(plate.shape[:2], box, change, result_small, **blend)
    blend_into(plate, ys, xs, alpha, res)
    return plate


class ChangeRegionWriter:
    """Streams, per plate frame, the change region's tight box and its boolean map (packed
    bits) into one .npz, so encode_shot can composite without decoding the 4K mask again.
    Written to a temp name; close() renames it into place (void_engine.io.atomic)."""

    def __init__(self, path: str, plate_size: tuple[int, int]):
        import zipfile

        from void_engine.io.atomic import AtomicPath

        self.path, self.plate_size = str(path), tuple(plate_size)
        self._target = AtomicPath(self.path, what="change regions")
        self.tmp = self._target.__enter__()
        try:
            self._zip = zipfile.ZipFile(self.tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=1)
        except BaseException:
            self._target.discard()
            raise
        self.boxes: list[tuple[int, int, int, int]] = []

    def add(self, change: np.ndarray | None, origin: tuple[int, int] = (0, 0)) -> None:
        """The next frame's change map (bool, or uint8 nonzero = change): the whole frame,
        or a window of it with its top-left corner at `origin` (nothing changes outside);
        None for a frame without change."""
        box = None if change is None else change_box(change)
        if box is None:
            self.boxes.append((0, 0, 0, 0))
            return
        y0, y1, x0, x1 = box
        oy, ox = origin
        self.boxes.append((y0 + oy, y1 + oy, x0 + ox, x1 + ox))
        self._put(f"f{len(self.boxes) - 1}", np.packbits(change[y0:y1, x0:x1]))

    def _put(self, name: str, array: np.ndarray) -> None:
        with self._zip.open(name + ".npy", "w") as f:
            np.lib.format.write_array(f, np.ascontiguousarray(array), allow_pickle=False)

    def close(self) -> str:
        try:
            self._put("boxes", np.asarray(self.boxes, np.int32).reshape(-1, 4))
            self._put("plate_size", np.asarray(self.plate_size, np.int32))
            self._zip.close()
        except BaseException as exc:
            self.abort()
            self._target.__exit__(type(exc), exc, None)  # a full disk: OutputError
            raise
        return self._target.commit()

    def abort(self) -> None:
        """Drop the temp file; safe after a failed write (a full disk fails close() too)."""
        try:
            self._zip.close()
        except OSError:
            pass  # the file is removed either way
        finally:
            self._target.discard()


class ChangeRegions:
    """Reader of a ChangeRegionWriter file: regions[i] -> (box, bool map) or None."""

    def __init__(self, path: str):
        self._npz = np.load(path)
        self.boxes = self._npz["boxes"]
        self.plate_size = tuple(int(v) for v in self._npz["plate_size"])

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, i: int):
        y0, y1, x0, x1 = (int(v) for v in self.boxes[i])
        if y1 <= y0:
            return None
        bits = np.unpackbits(self._npz[f"f{i}"], count=(y1 - y0) * (x1 - x0))
        return (y0, y1, x0, x1), bits.reshape(y1 - y0, x1 - x0).view(bool)

    def union(self, margin: int) -> tuple[slice, slice] | None:
        """Smallest (ys, xs) holding every frame's box grown by `margin`."""
        live = self.boxes[self.boxes[:, 1] > self.boxes[:, 0]]
        if not len(live):
            return None
        box = (int(live[:, 0].min()), int(live[:, 1].max()), int(live[:, 2].min()),
               int(live[:, 3].max()))
        return _grow(box, margin, self.plate_size)

    def close(self) -> None:
        self._npz.close()


def overlay_patches(regions: ChangeRegions, results, origin: tuple[int, int],
                    size: tuple[int, int], *, bgra: bool = False, **blend):
    """Per plate frame, the RGBA (bgra=True: BGRA) patch (size, at plate position
    origin=(y, x)) that an encoder blends onto the plate (io.PlateOverlay): the upscaled
    result with alpha = round(255 * blend alpha), alpha 0 outside the frame's region.
    `results[j]` is frame j's model-space result. The same array is reused: write it before
    asking for the next."""
    patch = np.zeros((*size, 4), np.uint8)
    oy, ox = origin
    last = None  # where the previous frame's region was written: its alpha is cleared
    for j in range(len(regions)):
        if last is not None:
            patch[last][..., 3] = 0
            last = None
        region = regions[j]
        if region is not None:
            ys, xs, a8, res = region_blend(regions.plate_size, *region, results[j],
                                           alpha_u8=True, **blend)
            last = slice(ys.start - oy, ys.stop - oy), slice(xs.start - ox, xs.stop - ox)
            r, g, b = cv2.split(res)
            patch[last] = cv2.merge((b, g, r, a8) if bgra else (r, g, b, a8))
        yield patch
