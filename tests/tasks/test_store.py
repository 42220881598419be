"""Store trust on its own: digests in every entry, verification, quarantine, stale staging."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.cache import CacheStore, CorruptEntry, clean_stale_staging


def _entry(store: CacheStore, data: bytes = b"x" * 1000):
    with store.staging("pass1", "pass1-k") as tmp:
        (tmp / "pass1.npy").write_bytes(data)
        return store.commit("pass1", "pass1-k", tmp)


def test_entries_carry_digests_and_a_same_size_edit_is_caught(tmp_path):
    store = CacheStore(tmp_path)
    e = _entry(store)
    assert e.digests["pass1.npy"].startswith("sha256:")
    assert store.verify(e) == Path(e.uri)
    path = Path(e.file("pass1.npy"))
    path.write_bytes(b"y" * 1000)  # same size: the size check alone would not see it
    assert store.lookup("pass1", "pass1-k") is not None
    with pytest.raises(CorruptEntry, match="pass1-k.*pass1.npy"):
        store.verify(e)
    assert store.lookup("pass1", "pass1-k") is None  # quarantined: the next run recomputes
    assert len(os.listdir(tmp_path / ".corrupt")) == 1


def test_entries_without_digests_are_not_trusted(tmp_path):
    import json

    store = CacheStore(tmp_path)
    e = _entry(store)
    marker = Path(e.uri) / "_entry.json"
    d = json.loads(marker.read_text())
    d.pop("digests")
    marker.write_text(json.dumps(d))
    assert store.lookup("pass1", "pass1-k") is None


def test_stale_staging_of_dead_writers_is_cleaned_and_live_ones_kept(tmp_path):
    store = CacheStore(tmp_path)
    code = ("import os, sys; sys.path.insert(0, sys.argv[2]); from tasks.cache import "
            "CacheStore; s = CacheStore(sys.argv[1]); cm = s.staging('decode', 'decode-k'); "
            "d = cm.__enter__(); open(d / 'clip.npy', 'wb').write(b'1'); os._exit(0)")
    subprocess.run([sys.executable, "-c", code, str(tmp_path), os.getcwd()], check=True)
    staging = tmp_path / ".staging"
    (left,) = staging.iterdir()  # a killed writer's folder
    with store.staging("decode", "decode-live") as live:
        assert clean_stale_staging(staging) == 1
        assert not left.exists() and live.exists()


def test_model_ids_follow_the_contents_of_path_options(tmp_path):
    from tasks.records import EngineSpec

    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    a.write_bytes(b"lora-1")
    b.write_bytes(b"lora-2")
    one = EngineSpec.make("void", lora=[str(a), str(b)], lora_scale=[1.0, 0.5]).model_id
    assert EngineSpec.make("void", lora=[str(a), str(b)], lora_scale=[1.0, 0.5]).model_id == one
    b.write_bytes(b"lora-3")  # same name, other weights: another model
    assert EngineSpec.make("void", lora=[str(a), str(b)], lora_scale=[1.0, 0.5]).model_id != one
    single = EngineSpec.make("void", lora=str(a)).model_id
    a.write_bytes(b"lora-9")
    assert EngineSpec.make("void", lora=str(a)).model_id != single
