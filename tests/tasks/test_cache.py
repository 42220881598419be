"""The content-addressed stage store and cache keys (tasks/cache.py)."""
from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

from tasks.cache import CacheStore, content_digest, stage_key, weights_id


def test_keys_depend_on_stage_inputs_params_version_weights():
    base = dict(inputs={"plate": "sha256:1"}, params={"seed": 1, "fps": 24.0})
    k = stage_key("pass1", "1", **base)
    assert k.startswith("pass1-") and k == stage_key("pass1", "1", **base)
    assert stage_key("pass2", "1", **base) != k  # same inputs, other stage: never shared
    assert stage_key("pass1", "2", **base) != k
    assert stage_key("pass1", "1", inputs={"plate": "sha256:2"}, params=base["params"]) != k
    assert stage_key("pass1", "1", inputs=base["inputs"], params={"seed": 2, "fps": 24}) != k
    assert stage_key("pass1", "1", inputs=base["inputs"], params={"fps": 24, "seed": 1}) == k
    assert stage_key("pass1", "1", **base, weights="weights:abc") != k


def test_content_digest_and_weights_id(tmp_path):
    f = tmp_path / "a.bin"
    f.write_bytes(b"one")
    d1 = content_digest(str(f))
    f.write_bytes(b"two!")
    assert content_digest(str(f)) != d1
    w = tmp_path / "w"
    w.mkdir()
    (w / "config.json").write_text('{"a": 1}')
    (w / "model.safetensors").write_bytes(b"x" * 10)
    i1 = weights_id(w)
    (w / "config.json").write_text('{"a": 2}')
    assert weights_id(w) != i1 and weights_id(None) is None


def _commit(args):
    root, n = args
    store = CacheStore(root)
    with store.staging("decode", "decode-k") as tmp:
        (tmp / "clip.npy").write_bytes(bytes([n]) * 200_000)
        (tmp / "decoded.json").write_text(json.dumps({"writer": n}))
        e = store.commit("decode", "decode-k", tmp, {"writer": n})
    return e.meta["writer"]


def test_concurrent_commits_leave_one_whole_entry(tmp_path):
    with mp.get_context("spawn").Pool(4) as pool:
        winners = pool.map(_commit, [(str(tmp_path), n) for n in range(8)])
    store = CacheStore(tmp_path)
    e = store.lookup("decode", "decode-k")
    assert e is not None and set(winners) == {e.meta["writer"]}  # everyone got the winner
    folder = Path(e.uri)
    data = (folder / "clip.npy").read_bytes()
    assert data == bytes([e.meta["writer"]]) * 200_000  # one writer's files, never mixed
    assert json.loads((folder / "decoded.json").read_text())["writer"] == e.meta["writer"]
    assert not list((tmp_path / ".staging").iterdir())


def test_broken_entries_are_misses_and_get_replaced(tmp_path):
    store = CacheStore(tmp_path)
    with store.staging("encode", "encode-k") as tmp:
        (tmp / "r.mkv").write_bytes(b"12345")
        e = store.commit("encode", "encode-k", tmp)
    assert store.has("encode", "encode-k")
    Path(e.file("r.mkv")).write_bytes(b"12")  # truncated on disk
    assert store.lookup("encode", "encode-k") is None
    (Path(e.uri) / "_entry.json").unlink()  # half-written leftover: no marker
    assert store.lookup("encode", "encode-k") is None
    with store.staging("encode", "encode-k") as tmp:
        (tmp / "r.mkv").write_bytes(b"abcde")
        store.commit("encode", "encode-k", tmp)
    assert Path(store.lookup("encode", "encode-k").file("r.mkv")).read_bytes() == b"abcde"
