"""Image sequences: 8/16-bit PNG (OpenCV) and EXR (OpenEXR), one file per frame.

Frames are RGB: uint8 or uint16 from PNG, float32 from EXR (values as stored; no transfer
function is applied, so a linear EXR stays linear).
"""
from __future__ import annotations

import os
from fractions import Fraction

import cv2
import numpy as np
import OpenEXR

from void_engine.errors import InputError, OutputError
from void_engine.io.atomic import AtomicPath


def read_image(path: str) -> np.ndarray:
    """One frame as RGB (H, W, 3): uint8/uint16 for PNG, float32 for EXR."""
    if path.lower().endswith(".exr"):
        try:
            with OpenEXR.File(path) as f:  # channels are only valid while the file is open
                channels = f.channels()
                if "RGB" in channels:
                    rgb = np.array(channels["RGB"].pixels, dtype=np.float32)
                elif "RGBA" in channels:
                    rgb = np.array(channels["RGBA"].pixels[..., :3], dtype=np.float32)
                elif "Y" in channels:
                    rgb = np.repeat(np.asarray(channels["Y"].pixels, np.float32)[..., None], 3, -1)
                else:
                    rgb = None
                names = sorted(channels)
        except Exception as exc:  # noqa: BLE001 - OpenEXR raises plain exceptions
            raise InputError(f"cannot read EXR frame {path}: {exc}") from None
        if rgb is None:
            raise InputError(f"EXR frame {path} has no RGB/Y channels ({names})")
        return np.ascontiguousarray(rgb, dtype=np.float32)
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputError(f"cannot read image frame {path} (missing or corrupt)")
    if img.ndim == 2:
        return np.repeat(img[..., None], 3, axis=-1)
    return np.ascontiguousarray(img[..., 2::-1])  # BGR(A) -> RGB, alpha dropped


def write_image(path: str, frame: np.ndarray, *, sar: Fraction | None = None) -> None:
    """Write an RGB frame: PNG keeps uint8/uint16; EXR stores half floats (uint8/uint16 input
    is scaled to 0..1) and records a non-square pixel aspect (sar)."""
    if path.lower().endswith(".exr"):
        f = frame.astype(np.float32)
        if frame.dtype == np.uint8:
            f /= 255.0
        elif frame.dtype == np.uint16:
            f /= 65535.0
        header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
        if sar is not None and sar != 1:
            header["pixelAspectRatio"] = float(sar)
        try:
            OpenEXR.File(header, {"RGB": f.astype(np.float16)}).write(path)
        except Exception as exc:  # noqa: BLE001 - OpenEXR raises plain exceptions
            raise OutputError(f"cannot write {path}: {exc}") from None
        return
    if sar is not None and sar != 1:
        raise OutputError(f"cannot write {path}: PNG frames cannot record non-square pixels "
                          f"(SAR {sar}); use exr, ffv1, prores or h264")
    if frame.dtype not in (np.uint8, np.uint16):
        raise OutputError(f"PNG frames must be uint8 or uint16, got {frame.dtype}")
    # Compression 1: PNG stays lossless; higher levels cost time, not quality. Encoded in
    # memory and written here, so a full disk is an OSError that says so (imwrite only
    # returns False).
    ok, data = cv2.imencode(".png", np.ascontiguousarray(frame[..., ::-1]),
                            [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise OutputError(f"cannot encode PNG frame {path}")
    with open(path, "wb") as f:
        f.write(data)


class SequenceWriter:
    """Writes frames as <folder>/<name>.<NNNNNN>.<ext> into a hidden temp folder that is
    renamed into place on close() (void_engine.io.atomic; folder may be an fsspec URI);
    abort() leaves nothing behind."""

    def __init__(self, folder: str, ext: str = "png", *, start_number: int = 0,
                 dtype: np.dtype | None = None, sar: Fraction | None = None):
        self.folder = str(folder)
        self.ext = ext.lower().lstrip(".")
        if self.ext == "png" and sar is not None and sar != 1:
            raise OutputError(f"cannot write {folder}: PNG frames cannot record non-square "
                              f"pixels (SAR {sar}); use exr, ffv1, prores or h264")
        self.dtype, self.sar = dtype, sar
        self.number = start_number
        self._target = AtomicPath(self.folder, what="sequence", folder=True)
        self.tmp = self._target.__enter__()
        self.name = os.path.basename(self.folder.rstrip("/"))
        self.count = 0

    def write(self, frame: np.ndarray) -> None:
        if self.dtype is not None and frame.dtype != self.dtype:
            frame = frame.astype(self.dtype)
        write_image(os.path.join(self.tmp, f"{self.name}.{self.number:06d}.{self.ext}"), frame,
                    sar=self.sar)
        self.number += 1
        self.count += 1

    def close(self) -> str:
        self._target.commit()
        return self.folder

    def abort(self) -> None:
        self._target.discard()
