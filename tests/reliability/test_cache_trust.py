"""Issue 9, "wrong results delivered as ok" in the cache: deliverables are independent files,
cache entries are checked against their digests before they are trusted, and shots with
identical content are delivered under their own names."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from flows.nightly_batch import nightly_batch
from flows.report import read_report
from manifests.loader import write_manifest
from tasks.cache import CacheStore
from tasks.options import RunOptions
from testkit.flows import PLUGIN, tiny_rows


def _run(manifest: Path, tmp_path: Path):
    options = RunOptions(manifest=str(manifest), output_root=str(tmp_path / "out"),
                         cache=str(tmp_path / "cache"), plugins=[PLUGIN])
    state = nightly_batch(options=options, return_state=True)
    assert state.is_completed(), state.message
    return {r["shot_id"]: r for r in read_report(tmp_path / "out")}


def _frames(uri: str) -> np.ndarray:
    from void_engine import io

    return np.stack(list(io.read_frames(io.probe(uri))))


def _patch_in_place(path: str) -> None:
    """What a metadata-patching tool does: same size, a few bytes changed, in place."""
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        b = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([b[0] ^ 0xFF]))


def test_deliveries_are_independent_and_corrupt_entries_are_recomputed(
        batch_env, tiny_shots, tmp_path):
    (d,) = tiny_shots(1)
    twin = shutil.copytree(d, d.parent / "twin")  # identical content, another shot id
    manifest = tmp_path / "m.parquet"
    write_manifest(tiny_rows([d, twin], passes="1"), manifest)
    first = _run(manifest, tmp_path)

    # Each shot's deliverables carry its own shot id, even with identical content.
    for sid, r in first.items():
        assert Path(r["result_uri"]).name == f"{sid}.mkv", r["result_uri"]
        assert Path(r["matte_uri"]).name == f"{sid}_matte.mkv"
    good = Path(first[d.name]["result_uri"]).read_bytes()
    frames = _frames(first[d.name]["result_uri"])
    assert np.array_equal(_frames(first["twin"]["result_uri"]), frames)

    # A delivered file patched in place is not a hard link into the cache: nothing else moves.
    _patch_in_place(first[d.name]["result_uri"])
    store = CacheStore(tmp_path / "cache")
    entries = [Path(store.root) / "encode" / k for k in os.listdir(Path(store.root) / "encode")]
    for e in entries:
        for f in e.iterdir():
            assert f.stat().st_nlink == 1
    second = _run(manifest, tmp_path)
    assert second[d.name]["executed"] == [] and second["twin"]["executed"] == []
    assert Path(second[d.name]["result_uri"]).read_bytes() == good  # redelivered intact

    # The cache entry itself patched in place (same size): detected at delivery, taken out of
    # the store, recomputed; the report says so.
    entry = next(e for e in entries if (e / f"{d.name}.mkv").exists())
    _patch_in_place(str(entry / f"{d.name}.mkv"))
    third = _run(manifest, tmp_path)
    r = third[d.name]
    assert r["status"] == "ok" and r["executed"] == ["encode"], r
    assert any("corrupt" in n and "recomputed" in n for n in r["notes"]), r["notes"]
    assert np.array_equal(_frames(r["result_uri"]), frames)  # (the container's ids differ)
    assert os.listdir(Path(store.root) / ".corrupt")  # kept aside for a look
    assert third["twin"]["executed"] == []
