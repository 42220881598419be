"""One Prefect test server and one local Ray (2 CPUs, one declared fake GPU) for the whole
integration session, plus tiny synthetic shots written with the engine's own video IO."""
from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
PLUGIN = "vb_test_engines"


@pytest.fixture(scope="session")
def prefect_server():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture(scope="session")
def ray_local():
    import ray

    # The engine actors import the test engines: make this folder importable in Ray workers.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(HERE), os.environ.get("PYTHONPATH")) if p)
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False,
             namespace="void-batch")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def batch_env(prefect_server, ray_local):
    """Everything a flow run needs."""
    import vb_test_engines  # noqa: F401  (registers test-twopass in the driver)

    return None


def write_shot(folder: Path, name: str, *, frames: int = 6, size=(36, 64), seed: int = 0):
    """A tiny plate (moving gradient) and its quadmask (a moving square to remove)."""
    from void_engine.io import open_writer

    rng = np.random.default_rng(seed)
    h, w = size
    d = folder / name
    d.mkdir(parents=True, exist_ok=True)
    base = rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)
    with open_writer(str(d / "plate.mkv"), "ffv1", fps=Fraction(24), size=size) as wr:
        for t in range(frames):
            wr.write(np.roll(base, t, axis=1))
    mask = np.full((h, w), 255, np.uint8)
    with open_writer(str(d / "quadmask.mkv"), "ffv1", fps=Fraction(24), size=size,
                     channels=1) as wr:
        for t in range(frames):
            m = mask.copy()
            m[8:20, 10 + t:22 + t] = 0
            m[20:26, 10 + t:22 + t] = 127
            wr.write(m)
    return d


@pytest.fixture
def tiny_shots(tmp_path):
    """A factory: n synthetic shot folders under tmp_path/shots."""
    def make(n: int = 2, **kw) -> list[Path]:
        return [write_shot(tmp_path / "shots", f"shot{i:02d}", seed=i, **kw) for i in range(n)]
    return make


def tiny_rows(dirs: list[Path], **overrides) -> list[dict]:
    return [{"shot_id": d.name, "plate_uri": str(d / "plate.mkv"),
             "quadmask_uri": str(d / "quadmask.mkv"), "prompt": "empty", "codec": "ffv1",
             "passes": "2", "engine": "test-twopass", **overrides} for d in dirs]
