"""Image sequences: 8/16-bit PNG (OpenCV) and EXR (OpenEXR), one file per frame.

Frames are RGB: uint8 or uint16 from PNG, float32 from EXR (values as stored; no transfer
function is applied, so a linear EXR stays linear).
"""
from __future__ import annotations

import os
import shutil
import tempfile

import cv2
import numpy as np
import OpenEXR

from void_engine.errors import InputError, OutputError


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


def write_image(path: str, frame: np.ndarray) -> None:
    """Write an RGB frame: PNG keeps uint8/uint16; EXR stores half floats (uint8/uint16 input
    is scaled to 0..1)."""
    if path.lower().endswith(".exr"):
        f = frame.astype(np.float32)
        if frame.dtype == np.uint8:
            f /= 255.0
        elif frame.dtype == np.uint16:
            f /= 65535.0
        header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
        OpenEXR.File(header, {"RGB": f.astype(np.float16)}).write(path)
        return
    if frame.dtype not in (np.uint8, np.uint16):
        raise OutputError(f"PNG frames must be uint8 or uint16, got {frame.dtype}")
    # Compression 1: PNG stays lossless; higher levels cost time, not quality.
    if not cv2.imwrite(path, np.ascontiguousarray(frame[..., ::-1]),
                       [cv2.IMWRITE_PNG_COMPRESSION, 1]):
        raise OutputError(f"cannot write {path}")


class SequenceWriter:
    """Writes frames as <folder>/<name>.<NNNNNN>.<ext> into a hidden temp folder that is
    renamed into place on close(); abort() leaves nothing behind."""

    def __init__(self, folder: str, ext: str = "png", *, start_number: int = 0,
                 dtype: np.dtype | None = None):
        self.folder = os.path.abspath(folder)
        self.ext = ext.lower().lstrip(".")
        self.dtype = dtype
        self.number = start_number
        parent = os.path.dirname(self.folder)
        os.makedirs(parent, exist_ok=True)
        self.tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(self.folder)}.part-", dir=parent)
        os.chmod(self.tmp, 0o777 & ~_umask())
        self.name = os.path.basename(self.folder)
        self.count = 0

    def write(self, frame: np.ndarray) -> None:
        if self.dtype is not None and frame.dtype != self.dtype:
            frame = frame.astype(self.dtype)
        write_image(os.path.join(self.tmp, f"{self.name}.{self.number:06d}.{self.ext}"), frame)
        self.number += 1
        self.count += 1

    def close(self) -> str:
        if os.path.isdir(self.folder):  # replace: move the old one aside, then drop it
            old = self.folder + f".old-{os.getpid()}"
            os.replace(self.folder, old)
            os.replace(self.tmp, self.folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self.tmp, self.folder)
        return self.folder

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
