"""The mask stages in the flow: SAM2 segmentation and the VLM step run on the resident masks
actor (the flow process loads no model), and a degraded VLM answer is never cached as if it
were the real one: the next run asks the VLM again."""
from __future__ import annotations

import json

import numpy as np
import pytest

from flows.nightly_batch import nightly_batch
from flows.report import read_report
from manifests.loader import write_manifest
from tasks import records
from tasks.options import RunOptions
from testkit.flows import PLUGIN
from testkit.masks import TINY_SAM2, good_answer


@pytest.fixture
def masks_config(monkeypatch, vlm_server):
    """The workers' mask configuration (normally from VOID_SAM2_* / VOID_VLM_* variables):
    the tiny RANDOM-WEIGHT SAM2 and the scripted VLM on loopback."""
    from void_engine.masks.vlm.client import VlmConfig

    spec = records.MasksSpec(sam2=TINY_SAM2, vlm=VlmConfig(base_url=vlm_server.url,
                                                            model="scripted", max_retries=1))
    monkeypatch.setattr(records.MasksSpec, "from_env", classmethod(lambda cls: spec))
    return spec


def _row(push, **kw) -> dict:
    ys, xs = np.nonzero(push["clip"].pusher[0])
    return {"shot_id": "push", "plate_uri": push["plate"], "prompt": "a floor",
            "instruction": "remove the red box", "engine": "test-twopass", "passes": "1",
            "clicks": json.dumps([{"frame": 0, "x": float(xs.mean()), "y": float(ys.mean())}]),
            **kw}


def _run(tmp_path, manifest):
    options = RunOptions(manifest=str(manifest), output_root=str(tmp_path / "out"),
                         cache=str(tmp_path / "cache"), plugins=[PLUGIN], review=False)
    state = nightly_batch(options=options, return_state=True)
    assert state.is_completed(), state.message
    (row,) = read_report(tmp_path / "out")
    return row


def test_segmentation_runs_on_the_masks_actor(batch_env, masks_config, push, grid, vlm_server,
                                              tmp_path, monkeypatch):
    import os

    import ray

    from void_engine.masks import segment

    loaded_here = []  # SAM2 loads in this (the flow's) process would land here
    monkeypatch.setattr(segment, "load_predictor", lambda *a, **k: loaded_here.append(a))
    manifest = tmp_path / "m.parquet"
    write_manifest([_row(push)], manifest)
    vlm_server.play(("answer", json.dumps(good_answer(push["clip"], grid))))
    row = _run(tmp_path, manifest)
    assert row["status"] == "ok" and row["executed"][:2] == ["segmentation", "vlm_quadmask"]
    assert row["mask_path"] == "vlm"
    assert not loaded_here  # SAM2 was never loaded in the flow's process
    actors = [a for a in ray.util.list_named_actors(all_namespaces=True)
              if a["name"].startswith(f"void-masks-{masks_config.model_id}")]
    assert actors, "no resident masks actor"
    stats = ray.get(ray.get_actor(actors[0]["name"], namespace="void-batch").stats.remote())
    assert stats["pid"] != os.getpid() and stats["calls"] >= 2


def test_a_degraded_mask_is_not_cached_as_the_real_answer(batch_env, masks_config, push, grid,
                                                          vlm_server, tmp_path):
    manifest = tmp_path / "m.parquet"
    write_manifest([_row(push, clicks=None, black_mask_uri=push["black"])], manifest)

    vlm_server.play(("status", 503))  # the VLM is down: the fallback stands in
    first = _run(tmp_path, manifest)
    assert first["mask_path"].startswith("fallback (") and first["mask_degraded"]
    assert "503" in first["mask_path"]

    vlm_server.play(("status", 503))  # still down: the same stand-in (and all after it) reused
    again = _run(tmp_path, manifest)
    assert len(vlm_server.requests) >= 1  # ... but the VLM was asked again
    assert again["mask_degraded"] and again["executed"] == ["vlm_quadmask"]
    assert "pass1" in again["cache_hits"]

    vlm_server.play(("answer", json.dumps(good_answer(push["clip"], grid))))
    fixed = _run(tmp_path, manifest)
    assert fixed["mask_path"] == "vlm" and not fixed["mask_degraded"]
    assert fixed["executed"][:3] == ["vlm_quadmask", "decode", "pass1"]  # the better mask is used
