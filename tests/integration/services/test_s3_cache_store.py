"""tasks.cache.CacheStore on a real S3 API (moto's server on loopback, through s3fs): round trip,
concurrent committers of one key, a committer killed mid-upload, and the credentials never
showing in logs, error texts or the entries."""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tasks.cache import CacheStore
from testkit.cli import wait_until
from testkit.flows import REPO, TESTS

KEY = "pass1-0123456789abcdef0123456789abcdef"


def _commit(store: CacheStore, tag: str, sizes=(3000, 70000)) -> object:
    """Commit an entry whose every file says who wrote it (to detect mixed entries)."""
    with store.staging("pass1", KEY) as tmp:
        for i, n in enumerate(sizes):
            (tmp / f"f{i}.bin").write_bytes((tag.encode() * n)[:n])
        return store.commit("pass1", KEY, tmp, {"writer": tag})


def _writers(store: CacheStore, entry) -> set[str]:
    folder = store.local_dir(entry)
    return {(folder / name).read_bytes()[:8].decode() for name in entry.files}


def test_round_trip(s3_bucket):
    store = CacheStore(f"s3://{s3_bucket}/cache")
    assert store.lookup("pass1", KEY) is None
    entry = _commit(store, "writer-0")
    again = CacheStore(f"s3://{s3_bucket}/cache").lookup("pass1", KEY)
    assert again is not None and again.files == entry.files and again.uri == entry.uri
    assert _writers(store, again) == {"writer-0"}


def test_concurrent_committers_never_mix_an_entry(s3_bucket):
    """Eight committers of the same key, different bytes of the same sizes (two GPU runs of a
    non-deterministic stage), released together: the entry is whole and from one of them."""
    store = CacheStore(f"s3://{s3_bucket}/cache")
    start = threading.Barrier(8)
    results, errors = [], []

    def committer(i: int) -> None:
        start.wait()
        try:
            results.append(_commit(store, f"writer-{i}"))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=committer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    entry = CacheStore(f"s3://{s3_bucket}/cache").lookup("pass1", KEY)
    assert entry is not None
    writers = _writers(store, entry)
    assert len(writers) == 1, writers  # every file of the entry from one commit
    assert writers <= {f"writer-{i}" for i in range(8)}


KILLED_COMMITTER = """
import sys, time
from pathlib import Path
from tasks.cache import CacheStore
store = CacheStore(sys.argv[1])
with store.staging("pass1", sys.argv[2]) as tmp:
    for i in range(6):
        (tmp / f"f{i}.bin").write_bytes(b"k" * 4_000_000)
    print("uploading", flush=True)
    store.commit("pass1", sys.argv[2], tmp, {})
print("committed", flush=True)
"""


def test_committer_killed_mid_upload_leaves_no_entry(s3_bucket, tmp_path):
    import s3fs

    uri = f"s3://{s3_bucket}/cache"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(TESTS)])}
    proc = subprocess.Popen([sys.executable, "-c", KILLED_COMMITTER, uri, KEY], env=env,
                            cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "uploading"
    fs = s3fs.S3FileSystem()
    prefix = f"{s3_bucket}/cache/pass1/{KEY}"
    # kill once the first of its files is in the bucket, the marker not yet
    wait_until(lambda: fs.find(prefix, refresh=True), 60, "the first uploaded file",
               interval=0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    fs.invalidate_cache()
    assert fs.find(prefix)  # it did upload something ...
    assert not fs.exists(f"{prefix}/_entry.json")
    store = CacheStore(uri)
    assert store.lookup("pass1", KEY) is None  # ... and no entry is visible
    entry = _commit(store, "writer-9")  # the next run commits normally
    assert _writers(store, CacheStore(uri).lookup("pass1", KEY)) == {"writer-9"}
    assert entry.uri.startswith(f"{uri}/pass1/{KEY}/v-")


def test_credentials_never_reach_logs_errors_or_entries(s3_bucket, s3_server, caplog):
    secret = s3_server["AWS_SECRET_ACCESS_KEY"]
    caplog.set_level(logging.DEBUG)  # botocore/s3fs debug logging included
    store = CacheStore(f"s3://{s3_bucket}/cache")
    entry = _commit(store, "writer-0")
    marker = Path(store.local_dir(entry)) / "_entry.json"
    texts = [caplog.text, repr(store), store.uri, entry.uri, marker.read_text()]

    # An S3 error (the bucket does not exist) and what the user sees of it.
    with pytest.raises(Exception) as info:
        _commit(CacheStore(f"s3://{s3_bucket}-missing/cache"), "writer-1")
    chain, exc = [], info.value
    while exc is not None:
        chain.append(f"{type(exc).__name__}: {exc}")
        exc = exc.__cause__ or exc.__context__
    texts += chain + [caplog.text]
    assert "NoSuchBucket" in "\n".join(chain) or "does not exist" in "\n".join(chain)
    for text in texts:
        assert secret not in text
    assert s3_server["AWS_ACCESS_KEY_ID"] not in "\n".join(chain)
