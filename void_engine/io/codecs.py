"""The codecs void-batch writes, in one place: names, containers, file extensions and the
encoder settings of each (the writers, the CLI's choices, the manifest schema and the IO
benchmark all read them from here).

    h264    libx264 CRF 16 in .mp4 (yuv420p; 4:4:4 for odd sizes) - review-grade, lossy
    prores  ProRes 4444 (prores_ks, 10-bit 4:4:4) in .mov - near-lossless, 16-bit plates
    ffv1    FFV1 in .mkv, in RGB (bgr0 / gbrp16le) - lossless: decoding gives back the pixels
    png     8/16-bit PNG sequence (a folder) - lossless
    exr     half-float EXR sequence (a folder)

Grey (one-channel) frames, i.e. quadmask mattes, are written losslessly as FFV1 gray or
x264 -qp 0 yuv444p.
"""
from __future__ import annotations

import os

import numpy as np

from void_engine.errors import OutputError

# codec -> (file extension, ffmpeg container format)
VIDEO_CODECS: dict[str, dict[str, str]] = {
    "h264": {"ext": ".mp4", "format": "mp4"},
    "prores": {"ext": ".mov", "format": "mov"},
    "ffv1": {"ext": ".mkv", "format": "matroska"},
}
SEQUENCE_CODECS = ("png", "exr")
ALL_CODECS = (*VIDEO_CODECS, *SEQUENCE_CODECS)
CODEC_BY_EXT = {spec["ext"]: codec for codec, spec in VIDEO_CODECS.items()}
# Lossless grey writers for quadmask files, by extension.
MASK_CODEC_BY_EXT = {".mkv": "ffv1", ".mp4": "h264"}

# Audio codecs each container takes as a stream copy; others are re-encoded to AAC.
AUDIO_COPY = {
    "mp4": {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"},
    "mov": {"aac", "mp3", "ac3", "alac", "pcm_s16le", "pcm_s24le", "pcm_s16be", "pcm_s24be",
            "pcm_f32le"},
    "matroska": None,  # anything
}


def check_codec(codec: str) -> None:
    if codec not in ALL_CODECS:
        raise OutputError(f"unknown codec {codec!r} (have {', '.join(ALL_CODECS)})")


def codec_for_path(path: str) -> str | None:
    """The video codec a file name's extension stands for (.mp4 h264, .mov prores, .mkv
    ffv1), or None (a folder: png/exr sequences)."""
    return CODEC_BY_EXT.get(os.path.splitext(str(path).rstrip("/"))[1].lower())


def output_name(base: str, codec: str) -> str:
    """`base` with the extension `codec` writes (sequences are folders: no extension)."""
    check_codec(codec)
    return base if codec in SEQUENCE_CODECS else base + VIDEO_CODECS[codec]["ext"]


def strip_video_ext(uri: str) -> str:
    """A result URI without its container extension (sequence folders as they are)."""
    base, ext = os.path.splitext(uri.rstrip("/"))
    return base if ext.lower() in CODEC_BY_EXT else uri.rstrip("/")


def encoder_options(codec: str, *, w: int, h: int, dtype=np.uint8, channels: int = 3,
                    crf: int = 16) -> dict[str, str]:
    """ffmpeg output options (name -> value) of `codec`'s encoder for frames of w x h."""
    dtype = np.dtype(dtype)
    if channels == 1:  # lossless grey: the luma plane holds the values exactly
        if codec == "h264":
            return {"c:v": "libx264", "qp": "0", "preset": "fast", "pix_fmt": "yuv444p"}
        if codec == "ffv1":
            return {"c:v": "ffv1", "level": "3", "g": "1", "pix_fmt": "gray"}
        raise OutputError(f"grey frames are written as h264 or ffv1, not {codec}")
    if codec == "h264":
        # yuv420p plays everywhere but needs even sizes; odd plates get 4:4:4.
        pix = "yuv420p" if w % 2 == 0 and h % 2 == 0 else "yuv444p"
        return {"c:v": "libx264", "preset": "medium", "crf": str(crf), "pix_fmt": pix,
                "movflags": "+faststart"}
    if codec == "prores":
        return {"c:v": "prores_ks", "profile:v": "4", "pix_fmt": "yuv444p10le",
                "vendor": "apl0"}
    if codec != "ffv1":
        raise OutputError(f"unknown video codec {codec!r} (have {', '.join(VIDEO_CODECS)})")
    # FFV1 stays in RGB so a decode of the result gives back exactly the pixels written.
    # 16 slices: FFV1 threads over slices, so this is what lets the encoder use every core.
    return {"c:v": "ffv1", "level": "3", "g": "1", "slices": "16", "slicecrc": "1",
            "pix_fmt": "bgr0" if dtype == np.uint8 else "gbrp16le"}


def codec_args(codec: str, **kw) -> list[str]:
    """encoder_options as a command-line fragment (the IO benchmark's plain transcode)."""
    args: list[str] = []
    for name, value in encoder_options(codec, **kw).items():
        args += [f"-{name}", value]
    return args
