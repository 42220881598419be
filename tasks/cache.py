"""The one home of cache keys and of the content-addressed stage store.

Key of a stage run = sha256 over a canonical JSON of
    stage name + stage version + content digests of its input files (or the keys of the upstream
    entries that produced them) + the stage's parameters (+ the engine's weights id).
Upstream *keys* stand in for upstream file digests: an entry's files are a pure function of its
key, so chaining keys (like a build system's action keys) invalidates exactly the downstream
stages of a change and never needs to re-hash big intermediates.

Store layout (any fsspec URI, local folder by default):
    <root>/<stage>/<key>/<files...>
    <root>/<stage>/<key>/_entry.json      written last; an entry without it does not exist
The marker lists every file with its size and sha256. A lookup checks the sizes (cheap); the
digests are checked before an entry's files are trusted (`verify`: when a stage reads them, and
while a deliverable is copied out), so an entry edited in place, even at the same size, is
detected, moved to <root>/.corrupt/ and recomputed.
Local stores commit by renaming a finished staging folder into place (atomic on one file
system); if another run got there first, its entry wins and ours is dropped, so two concurrent
runs never leave a half-written or mixed entry. Object stores upload the files into a fresh
version folder, then the marker naming it (CacheStore._commit_remote).
Prefect never caches stage outputs: tasks return the small `Entry` record (paths), never arrays.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

MARKER = "_entry.json"
DEFAULT_STORE = os.path.join(os.path.expanduser("~"), ".cache", "void-batch", "store")

_digest_memo: dict[tuple, str] = {}
_digest_lock = threading.Lock()


def file_sha256(path: str | os.PathLike) -> str:
    """"sha256:<hex>" of a local file, memoised per (path, inode, size, mtime) for the process."""
    st = os.stat(path)
    memo_key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
    with _digest_lock:
        if memo_key in _digest_memo:
            return _digest_memo[memo_key]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    digest = "sha256:" + h.hexdigest()
    with _digest_lock:
        _digest_memo[memo_key] = digest
    return digest


def content_digest(uri: str) -> str:
    """sha256 of a file's bytes (local, memoised: file_sha256); for object stores the store's
    own content id (ETag/generation) via fsspec's ukey."""
    fs, path = fsspec.core.url_to_fs(uri)
    if not isinstance(fs, LocalFileSystem):
        return "ukey:" + fs.ukey(path)
    return file_sha256(path)


def weights_id(folder: str | os.PathLike | None) -> str | None:
    """Identity of a weights folder: relative paths + sizes of every file, plus the bytes of the
    small config files (json/txt). Cheap on multi-GB checkpoints and changes when they do.
    A single file (a LoRA, RAFT weights): its content digest."""
    if not folder:
        return None
    root = Path(folder)
    if not root.exists():
        return f"missing:{root}"
    if root.is_file():
        return "file:" + file_sha256(root)
    h = hashlib.sha256()
    for p in sorted(q for q in root.rglob("*") if q.is_file()):
        rel = p.relative_to(root).as_posix()
        size = p.stat().st_size
        h.update(f"{rel}\0{size}\0".encode())
        if p.suffix in (".json", ".txt") and size < (1 << 20):
            h.update(p.read_bytes())
    return "weights:" + h.hexdigest()[:24]


def _canonical(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, float) and obj.is_integer():
        return int(obj)  # 24 and 24.0 are the same parameter
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    raise TypeError(f"cache key part of type {type(obj).__name__} is not hashable data")


def stage_key(stage: str, version: str, *, inputs: Mapping[str, str | None],
              params: Mapping[str, Any], weights: str | None = None) -> str:
    """`<stage>-<32 hex>`: the stage name is part of the key *and* of the hashed payload, so two
    stages with equal inputs never share an entry (docs/orchestration.md)."""
    payload = {"stage": stage, "version": version, "inputs": inputs, "params": params,
               "weights": weights}
    blob = json.dumps(_canonical(payload), sort_keys=True, separators=(",", ":"))
    return f"{stage}-{hashlib.sha256(blob.encode()).hexdigest()[:32]}"


class CorruptEntry(Exception):
    """A cache entry's file does not hold the bytes it was committed with."""

    def __init__(self, entry: Entry, name: str):
        super().__init__(f"cache entry {entry.key} was corrupt ({name} no longer matches the "
                         f"digest it was committed with)")
        self.entry, self.name = entry, name


@dataclass
class Entry:
    """A committed stage output: where its files are and what the stage reported."""

    stage: str
    key: str
    uri: str  # folder URI in the store
    files: dict[str, int] = field(default_factory=dict)  # name -> size in bytes
    digests: dict[str, str] = field(default_factory=dict)  # name -> "sha256:<hex>"
    meta: dict[str, Any] = field(default_factory=dict)  # stage facts (gate score, notes, ...)
    created: float = 0.0

    def file(self, name: str) -> str:
        return f"{self.uri.rstrip('/')}/{name}"

    def to_dict(self) -> dict:
        return asdict(self)


class CacheStore:
    """Content-addressed stage outputs under one fsspec URI."""

    def __init__(self, uri: str | os.PathLike | None = None):
        uri = str(uri or os.environ.get("VOID_BATCH_CACHE") or DEFAULT_STORE)
        self.fs, root = fsspec.core.url_to_fs(uri)
        self.local = isinstance(self.fs, LocalFileSystem)
        self.root = str(Path(root).resolve()) if self.local else root.rstrip("/")
        self.uri = self.root if self.local else uri.rstrip("/")
        if self.local:
            Path(self.root).mkdir(parents=True, exist_ok=True)
            clean_stale_staging(Path(self.root) / STAGING)

    def __repr__(self) -> str:
        return f"CacheStore({self.uri!r})"

    def _path(self, stage: str, key: str) -> str:
        return f"{self.root}/{stage}/{key}"

    def entry_uri(self, stage: str, key: str) -> str:
        return self._path(stage, key) if self.local else f"{self.uri}/{stage}/{key}"

    def lookup(self, stage: str, key: str) -> Entry | None:
        """The committed entry, or None. An entry whose files are missing or have the wrong
        size (disk trouble, manual deletion) counts as absent and is rebuilt."""
        base = self._path(stage, key)
        # Local stores skip fsspec's file objects: a re-run looks up every stage of every shot
        # from the flow, and plain open/stat is ~3x cheaper.
        opener, size = ((open, os.path.getsize) if self.local else (self.fs.open, self.fs.size))
        try:
            with opener(f"{base}/{MARKER}", "r") as f:
                d = json.load(f)
        except (FileNotFoundError, json.JSONDecodeError, OSError):
            return None
        entry = Entry(**d)
        version = "" if self.local else self._remote_version(stage, key, entry.uri)
        entry.uri = self.entry_uri(stage, key) + (f"/{version}" if version else "")
        base = f"{base}/{version}" if version else base
        if set(entry.digests) != set(entry.files):  # from before digests: not trusted
            return None
        for name, expected in entry.files.items():
            try:
                if size(f"{base}/{name}") != expected:
                    return None
            except (FileNotFoundError, OSError):
                return None
        return entry

    def has(self, stage: str, key: str) -> bool:
        return self.lookup(stage, key) is not None

    @contextlib.contextmanager
    def staging(self, stage: str, key: str) -> Iterator[Path]:
        """A fresh local folder to write a stage's outputs into; removed afterwards unless it
        was committed. For local stores it sits inside the store (same file system: the
        commit is a rename)."""
        if self.local:
            parent = Path(self.root) / STAGING
        else:
            parent = Path(tempfile.gettempdir()) / "void-batch-staging"
        parent.mkdir(parents=True, exist_ok=True)
        d = Path(tempfile.mkdtemp(prefix=f"{key}.{_OWNER}.", dir=parent))
        try:
            yield d
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def commit(self, stage: str, key: str, staging: Path, meta: Mapping[str, Any] | None = None
               ) -> Entry:
        """Publish a finished staging folder as the entry (stage, key); first writer wins."""
        paths = {p.relative_to(staging).as_posix(): p for p in sorted(staging.rglob("*"))
                 if p.is_file() and p.name != MARKER}
        files = {n: p.stat().st_size for n, p in paths.items()}
        entry = Entry(stage=stage, key=key, uri=self.entry_uri(stage, key), files=files,
                      digests={n: file_sha256(p) for n, p in paths.items()},
                      meta=dict(meta or {}), created=time.time())
        (staging / MARKER).write_text(json.dumps(entry.to_dict(), indent=1, default=str))
        if self.local:
            return self._commit_local(entry, staging)
        return self._commit_remote(entry, staging)

    # --- object stores (s3://, gs://): no rename, so no atomic folder commit ------------------
    # Each commit uploads its files under a fresh version folder, <key>/v-<id>/, and then the
    # marker <key>/_entry.json naming that folder: one PUT, atomic on S3/GCS. A committer killed
    # mid-upload leaves an unreferenced version folder (never visible); two concurrent
    # committers each upload their own complete folder and the marker that lands last names one
    # of them, so an entry never mixes files of two commits. A marker already there wins (first
    # writer, as for local stores).

    def _commit_remote(self, entry: Entry, staging: Path) -> Entry:
        existing = self.lookup(entry.stage, entry.key)
        if existing is not None:
            return existing
        version = f"v-{uuid.uuid4().hex[:16]}"
        entry.uri = f"{self.entry_uri(entry.stage, entry.key)}/{version}"
        base = f"{self._path(entry.stage, entry.key)}/{version}"
        for name in entry.files:
            self.fs.put_file(str(staging / name), f"{base}/{name}")
        (staging / MARKER).write_text(json.dumps(entry.to_dict(), indent=1, default=str))
        self.fs.put_file(str(staging / MARKER), f"{self._path(entry.stage, entry.key)}/{MARKER}")
        return entry

    def _remote_version(self, stage: str, key: str, marker_uri: str) -> str:
        """The version folder (`v-...`) a marker names, '' for entries of the flat layout."""
        prefix = f"{self.entry_uri(stage, key)}/"
        rest = marker_uri[len(prefix):] if marker_uri.startswith(prefix) else ""
        return rest if rest.startswith("v-") and "/" not in rest else ""

    def _commit_local(self, entry: Entry, staging: Path) -> Entry:
        final = Path(self._path(entry.stage, entry.key))
        final.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                os.rename(staging, final)
                staging.mkdir()  # the context manager expects to clean something up
                return entry
            except OSError:
                existing = self.lookup(entry.stage, entry.key)
                if existing is not None:  # a concurrent run committed first: keep theirs
                    return existing
                # a broken leftover (no marker / wrong sizes): move it aside, then retry
                trash = final.with_name(f".trash-{final.name}-{uuid.uuid4().hex[:8]}")
                with contextlib.suppress(OSError):
                    os.rename(final, trash)
                    shutil.rmtree(trash, ignore_errors=True)
        raise OSError(f"could not commit cache entry {final}")

    def verify(self, entry: Entry) -> Path:
        """The entry's local folder, after checking every file against its digest; raises
        CorruptEntry (having moved the entry aside, so the next lookup misses) if one differs."""
        folder = self.local_dir(entry)
        for name, digest in entry.digests.items():
            path = folder / name
            if not path.is_file() or file_sha256(path) != digest:
                self.quarantine(entry)
                raise CorruptEntry(entry, name)
        return folder

    def quarantine(self, entry: Entry) -> None:
        """Take a corrupt entry out of the store: moved to <root>/.corrupt/ (local, kept for a
        look) or its marker deleted (remote), and its download mirror dropped."""
        shutil.rmtree(_mirror_dir(entry), ignore_errors=True)
        if self.local:
            src = Path(self._path(entry.stage, entry.key))
            dest = Path(self.root) / ".corrupt" / f"{entry.key}.{uuid.uuid4().hex[:8]}"
            dest.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(OSError):
                os.rename(src, dest)
            return
        with contextlib.suppress(FileNotFoundError, OSError):
            self.fs.rm(f"{self._path(entry.stage, entry.key)}/{MARKER}")

    def local_dir(self, entry: Entry) -> Path:
        """A local folder holding the entry's files (the entry itself for local stores, a
        download mirror for remote ones)."""
        if self.local:
            return Path(entry.uri)
        version = self._remote_version(entry.stage, entry.key, entry.uri)
        src = self._path(entry.stage, entry.key) + (f"/{version}" if version else "")
        mirror = _mirror_dir(entry)
        if not (mirror / MARKER).is_file():
            tmp = mirror.with_name(f".{mirror.name}.{uuid.uuid4().hex[:8]}")
            tmp.mkdir(parents=True)
            for name in entry.files:
                (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                self.fs.get_file(f"{src}/{name}", str(tmp / name))
            (tmp / MARKER).write_text(json.dumps(entry.to_dict(), default=str))
            try:
                os.rename(tmp, mirror)
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)
        return mirror


def _mirror_dir(entry: Entry) -> Path:
    """Per entry *and* commit version (object stores): a mirror never serves the files of
    another commit of the same key."""
    mirror = Path(tempfile.gettempdir()) / "void-batch-mirror" / entry.stage / entry.key
    tail = entry.uri.rstrip("/").rsplit("/", 1)[-1]
    return mirror / tail if tail.startswith("v-") else mirror


# --- staging folders left behind by killed runs -----------------------------------------------
STAGING = ".staging"
_HOST = socket.gethostname().replace(".", "_").replace("-", "_")
_OWNER = f"{_HOST}-{os.getpid()}"  # staging folders are named <key>.<host>-<pid>.<random>
STALE_AFTER_S = 24 * 3600  # another host's staging folder (a shared store): removed after a day


def clean_stale_staging(parent: Path) -> int:
    """Remove staging folders whose writer is gone: this host's dead pids at once, other hosts'
    only after STALE_AFTER_S, folders of live processes never. Returns how many went."""
    try:
        names = os.listdir(parent)
    except FileNotFoundError:
        return 0
    removed = 0
    for name in names:
        parts = name.split(".")
        host, _, pid = (parts[1] if len(parts) >= 3 else "").rpartition("-")
        path = parent / name
        try:
            if host == _HOST and pid.isdigit():
                stale = not _pid_alive(int(pid))
            else:
                stale = time.time() - path.stat().st_mtime > STALE_AFTER_S
        except OSError:
            continue
        if stale:
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True
