"""Per-frame cost of the QC accumulator (void_engine.qc) on the 4K samples.

    python benchmarks/qc_cost.py [--frames 12]

Reads the first frames of `lime` and `moving_ball` (3840x2160) with their quadmasks, feeds
(plate, result, quadmask) to QCAccumulator with the plate standing in for the result (the
cost does not depend on the pixels' values), and prints the median wall and CPU milliseconds
per add() (the decode is not counted: encode_shot pays it anyway).
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from void_engine import io
from void_engine import quadmask as qm
from void_engine.qc import QCAccumulator

SHARED = Path(os.environ.get("VOID_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=12)
    args = ap.parse_args()
    for name in ("lime", "moving_ball"):
        folder = SHARED / "samples" / name
        info = io.probe(str(folder / "input_video.mp4"))
        plates = list(io.read_frames(info, count=args.frames))
        masks = list(qm.read_quadmask(qm.find_quadmask(str(folder)), count=args.frames))
        acc = QCAccumulator()
        times, cpu = [], []
        for p, m in zip(plates, masks, strict=True):
            t0, c0 = time.perf_counter(), time.process_time()
            acc.add(p, p, m)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        box = [qm.bounding_box(m) for m in masks]
        area = np.mean([(b[1] - b[0]) * (b[3] - b[2]) / m.size if b else 0
                        for b, m in zip(box, masks, strict=True)])
        print(f"{name}: {info.width}x{info.height}, change box {100 * area:.0f}% of the "
              f"frame: {1000 * float(np.median(times[1:])):.1f} ms/frame median "
              f"wall, {1000 * float(np.median(cpu[1:])):.1f} ms CPU (max {1000 * max(times):.1f}"
              f" ms wall); load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
