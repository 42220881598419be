"""Preflight: what decode_shot would refuse about a shot's plate and quadmask, found without
decoding the shot (`void-batch manifest check --deep`).

Probes both files (size, frame count, rate, display rotation, field order) and reads a few
quadmask frames to check they hold the four values, using the very checks decode_shot makes,
so a manifest can be fixed before the night, not at 2 a.m.
"""
from __future__ import annotations

from void_engine.errors import InputError


def check_shot_inputs(plate_uri: str, quadmask_uri: str | None, *,
                      frame_range: tuple[int, int | None] | None = None,
                      fps: float | None = None, sample_frames: int = 3) -> list[str]:
    """Problems decode_shot would raise for these inputs (empty when none)."""
    from void_engine.decode import _align_mask, resolve_range
    from void_engine.io import local_input, probe
    from void_engine.io.maskfile import read_quadmask

    problems: list[str] = []
    try:
        with local_input(plate_uri, "plate") as plate_path:
            plate = probe(plate_path, what="plate", fps=fps)
            plate.check_progressive()
            fr = frame_range
            if fr is not None and fr[1] is None:
                fr = (fr[0], plate.frames - 1)
            first, n = resolve_range(fr, plate.frames)
            if quadmask_uri is None:
                return problems
            with local_input(quadmask_uri, "quadmask") as mask_path:
                minfo = probe(mask_path, what="quadmask")
                mask_first, _ = _align_mask(minfo, plate, first, n)
                step = max(1, n // max(1, sample_frames))
                for i in range(0, n, step)[:sample_frames]:
                    next(read_quadmask(mask_path, first=mask_first + i, count=1))
    except InputError as exc:
        problems.append(exc.problem)
    return problems
