"""Atomic writes (void_engine.io.atomic) and a full output disk (issue 9: nothing half-written,
no hidden temp files left on any error path, an error that says what happened)."""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
import uuid

import fsspec
import numpy as np
import pytest

from void_engine.errors import OutputError
from void_engine.io import atomic


def test_helpers_write_replace_and_leave_nothing_else(tmp_path):
    target = tmp_path / "sub" / "a.json"
    atomic.write_json(target, {"x": (1, 2)})
    assert json.loads(target.read_text()) == {"x": [1, 2]}
    atomic.write_json(target, {"x": 3})  # replaces
    assert json.loads(target.read_text()) == {"x": 3}
    atomic.save_npy(tmp_path / "a.npy", np.arange(5))
    assert np.array_equal(np.load(tmp_path / "a.npy"), np.arange(5))
    atomic.copy_file(tmp_path / "a.npy", tmp_path / "b.npy")
    assert (tmp_path / "b.npy").read_bytes() == (tmp_path / "a.npy").read_bytes()
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.json", "a.npy", "b.npy", "sub"]
    mode = (tmp_path / "b.npy").stat().st_mode & 0o777
    assert mode == 0o666 & ~_umask()  # not mkstemp's 0600


def test_an_error_inside_the_block_keeps_the_old_file_and_removes_the_temp(tmp_path):
    target = tmp_path / "keep.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic.atomic_open(target, "w") as f:
        f.write("half")
        raise RuntimeError("crash")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["keep.txt"]


def test_folders_are_replaced_whole(tmp_path):
    target = tmp_path / "seq"
    for content in ("one", "two"):
        with atomic.atomic_path(target, folder=True) as tmp, \
                open(os.path.join(tmp, f"{content}.txt"), "w") as f:
            f.write(content)
    assert os.listdir(target) == ["two.txt"] and os.listdir(tmp_path) == ["seq"]


def test_fsspec_uris_are_uploaded_under_a_partial_name_then_moved(tmp_path):
    fs = fsspec.filesystem("memory")
    root = f"memory://atomic-{uuid.uuid4().hex}"
    atomic.write_text(f"{root}/out/a.txt", "hello")
    assert fs.cat(f"{root}/out/a.txt") == b"hello"
    assert fs.ls(f"{root}/out", detail=False) == [f"/{root[9:]}/out/a.txt"]
    with pytest.raises(RuntimeError), atomic.atomic_open(f"{root}/out/b.txt") as f:
        f.write(b"x")
        raise RuntimeError("crash")
    assert not fs.exists(f"{root}/out/b.txt")
    assert fs.ls(f"{root}/out", detail=False) == [f"/{root[9:]}/out/a.txt"]
    atomic.write_text(f"file://{tmp_path}/c.txt", "local")  # file:// is a local path
    assert (tmp_path / "c.txt").read_text() == "local"


# --- a full disk -------------------------------------------------------------------------------
# Each case runs in a child process whose file size limit (RLIMIT_FSIZE) is far below what it
# writes: writes then fail as on a full disk (EFBIG for Python; ffmpeg is stopped by SIGXFSZ).
CHILD = textwrap.dedent("""
    import json, os, resource, signal, sys
    from fractions import Fraction
    import numpy as np
    from void_engine.errors import VoidError
    from void_engine import io
    from void_engine.io import atomic
    from void_engine.io.maskfile import write_quadmask

    out = sys.argv[1]
    big = np.random.default_rng(0).integers(0, 256, (512, 768, 3), dtype=np.uint8)
    def video(codec):
        with io.open_writer(os.path.join(out, "r" + io.VIDEO_CODECS[codec]["ext"]), codec,
                            fps=Fraction(24), size=big.shape[:2]) as w:
            for i in range(12):  # fresh noise: repeated or moved frames cost h264 nothing
                w.write(np.random.default_rng(i).integers(0, 256, big.shape, np.uint8))
    def sequence():
        with io.open_writer(os.path.join(out, "seq"), "png", fps=Fraction(24),
                            size=big.shape[:2]) as w:
            for _ in range(12):
                w.write(big)
    cases = {
        "ffv1": lambda: video("ffv1"), "h264": lambda: video("h264"), "png": sequence,
        "npy": lambda: atomic.save_npy(os.path.join(out, "clip.npy"), np.zeros(10**6)),
        "json": lambda: atomic.write_json(os.path.join(out, "d.json"), {"x": "y" * 2 * 10**6}),
        "mask": lambda: write_quadmask(os.path.join(out, "m.mkv"),
                                       [np.random.default_rng(1).choice(
                                           np.array([0, 63, 127, 255], np.uint8), (512, 768))
                                        for _ in range(16)]),
    }
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # Python: EFBIG instead of a signal
    limit = int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    said = {}
    for name, case in cases.items():
        try:
            case()
            said[name] = "no error"
        except VoidError as exc:
            said[name] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(said))
""")


def _run_child(folder, limit: int) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run([sys.executable, "-c", CHILD, str(folder), str(limit)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_file_size_limit_fails_every_writer_cleanly_and_says_so(tmp_path):
    said = _run_child(tmp_path, 64 * 1024)
    for name, message in said.items():
        assert message.startswith("OutputError: cannot write"), (name, message)
        assert "file too large" in message or "file size limit" in message, (name, message)
    assert os.listdir(tmp_path) == []  # no hidden temp file or folder left behind


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs (needs root, as the CI machine has; skipped where mount is refused)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (not root)")
    try:
        yield mount
    finally:
        with contextlib.suppress(Exception):
            subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_fails_every_writer_cleanly_and_says_so(small_disk):
    said = _run_child(small_disk, 1 << 40)
    for name, message in said.items():
        assert message.startswith("OutputError: cannot write"), (name, message)
        assert "disk full" in message, (name, message)
    assert os.listdir(small_disk) == []
    with pytest.raises(OutputError, match="disk full"):
        atomic.write_bytes(small_disk / "x.bin", b"0" * (2 << 20))
    assert os.listdir(small_disk) == []


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
