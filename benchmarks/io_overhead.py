"""IO overhead of the engine-core pipeline on a 4K plate.

Times decode_shot + encode_shot (composite + encode, no review media) with an identity
"engine" (the model-space clip is the result), so only IO and compositing are measured, and
compares it with a plain ffmpeg transcode of the same plate to the same codec settings.
Prints the ratio and the peak resident memory of this process plus its ffmpeg children
(sampled every 20 ms with psutil), and ru_maxrss for reference.

    .venv/bin/python benchmarks/io_overhead.py [--sample lime] [--codec ffv1]

Targets (issue 2): ratio <= 1.5, peak RSS <= 2 GB.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from void_engine import stages  # noqa: E402
from void_engine.engines.base import FrameRules  # noqa: E402
from void_engine.io import probe  # noqa: E402
from void_engine.io.video import CODECS  # noqa: E402
from void_engine.quadmask import find_quadmask  # noqa: E402


class PeakRSS:
    """Peak of (this process + all its children) RSS, sampled in a thread."""

    def __init__(self, interval: float = 0.02):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._me = psutil.Process()

    def _total(self) -> int:
        total = self._me.memory_info().rss
        for child in self._me.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        return total

    def __enter__(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._total())
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def ffmpeg_args(codec: str, depth: int, size: tuple[int, int]) -> list[str]:
    """The encoder settings VideoWriter uses (io.codec_args), for a like-for-like transcode."""
    import numpy as np

    from void_engine.io import codec_args

    return codec_args(codec, w=size[1], h=size[0], dtype=np.uint8 if depth == 8 else np.uint16)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample", default="lime")
    ap.add_argument("--samples-dir", default=os.environ.get(
        "VOID_SAMPLES", str(REPO.parent / "shared" / "samples")))
    ap.add_argument("--codec", default="ffv1", choices=sorted(CODECS))
    args = ap.parse_args()
    folder = Path(args.samples_dir) / args.sample
    plate, mask = str(folder / "input_video.mp4"), find_quadmask(str(folder))
    info = probe(plate)
    print(f"plate {plate}: {info.width}x{info.height}, {info.frames} frames, "
          f"{info.fps} fps, codec {args.codec}")
    with tempfile.TemporaryDirectory(prefix="void-bench-") as tmp:
        tmp = Path(tmp)
        with PeakRSS() as rss:
            t0 = time.perf_counter()
            decoded = stages.decode_shot(plate, mask, tmp / "work", shot_id=args.sample,
                                         frame_rules=FrameRules())
            t1 = time.perf_counter()
            stages.encode_shot(decoded, decoded.clip_path, tmp / "out", codec=args.codec,
                               review=False)
            t2 = time.perf_counter()
        pipeline = t2 - t0
        out = tmp / ("plain" + CODECS[args.codec]["ext"])
        cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", plate, "-map", "0:v:0",
               "-map", "0:a?", "-c:a", "copy", *ffmpeg_args(args.codec, info.depth, info.size),
               str(out)]
        t3 = time.perf_counter()
        subprocess.run(cmd, check=True)
        plain = time.perf_counter() - t3
    self_max = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_max = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"pipeline decode_shot      {t1 - t0:7.2f} s")
    print(f"pipeline encode_shot      {t2 - t1:7.2f} s  (composite + {args.codec} + matte)")
    print(f"pipeline total            {pipeline:7.2f} s")
    print(f"plain ffmpeg transcode    {plain:7.2f} s  ({' '.join(cmd[9:])})")
    print(f"ratio pipeline / ffmpeg   {pipeline / plain:7.2f}   (target <= 1.5)")
    print(f"peak RSS (self+children)  {rss.peak / 2**20:7.0f} MiB (target <= 2048)")
    print(f"ru_maxrss self / largest child  {self_max:.0f} / {child_max:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
