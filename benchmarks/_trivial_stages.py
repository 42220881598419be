"""Benchmark plugin: swaps void_engine's stage bodies for trivial file writers and registers a
trivial engine, so benchmarks/orchestration.py measures Prefect + Ray + cache overhead only.
Imported in the driver and (as an EngineSpec plugin) in the engine actors. Never used by the
product: it exists only for the benchmark."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from void_engine import stages
from void_engine.engines.base import Engine, register_engine


@register_engine("bench-trivial")
class TrivialEngine(Engine):
    name = "bench-trivial"
    supports_pass2 = True

    def pass1(self, clip, quadmask, prompt, params, progress=None):
        return clip

    def pass2(self, clip, quadmask, prompt, pass1, params, progress=None):
        return pass1


def decode_shot(plate_uri, quadmask_uri, workdir, *, shot_id, frame_range=None,
                model_size=(4, 4), frame_rules=None, fps=None, progress=None):
    w = Path(workdir)
    np.save(w / "clip.npy", np.zeros((2, 4, 4, 3), np.uint8))
    np.save(w / "mask.npy", np.full((2, 4, 4), 255, np.uint8))
    m = stages.ModelSpaceMap(plate_size=(4, 4), plate_fps=24.0, first_frame=0, num_frames=2,
                             model_size=(4, 4), frame_indices=[0, 1])
    d = stages.DecodedShot(shot_id, plate_uri, quadmask_uri, str(w / "clip.npy"),
                           str(w / "mask.npy"), m)
    d.to_json(w / "decoded.json")
    return d


def encode_shot(decoded, result_path, out_dir, *, codec="ffv1", composite=None, review=True,
                progress=None, result_uri=None, shot_id=None, engine=""):
    out = Path(out_dir)
    (out / f"{decoded.shot_id}.mkv").write_bytes(Path(result_path).read_bytes())
    (out / f"{decoded.shot_id}_matte.mkv").write_bytes(b"matte")
    return stages.EncodedShot(decoded.shot_id, str(out / f"{decoded.shot_id}.mkv"),
                              str(out / f"{decoded.shot_id}_matte.mkv"), frames=2, fps=24.0,
                              size=(4, 4))


stages.decode_shot = decode_shot
stages.encode_shot = encode_shot
