"""Publishing a shot: copy its encode entry's deliverables into the output root.

Deliverables are independent files (a copy, or a copy-on-write clone where the file system
has one), never hard links into the cache: editing a delivered file in place must not reach
the cache entry, other deliveries or later runs. The copy reads the entry once and checks it
against the entry's digests on the way; a mismatch means the entry was corrupted in the
store, so nothing is delivered, the entry is taken out of the store and CorruptEntry tells
the flow to recompute it. Files land under a temporary name, then are renamed (local) or
uploaded and moved (object stores).
"""
from __future__ import annotations

import hashlib
import os
import posixpath
from pathlib import Path

from manifests.schema import ShotRow
from tasks.cache import CacheStore, CorruptEntry, Entry
from tasks.options import RunOptions
from void_engine.errors import InputError
from void_engine.io.atomic import atomic_path

_CHUNK = 8 << 20


def output_dir(shot: ShotRow, options: RunOptions) -> str:
    """Where the shot's deliverables go: <output_root>/<shot_id>, or the row's output_uri,
    which must lie inside output_root or one of the run's --output-root roots (never a root
    taken from the manifest alone)."""
    roots = [options.output_root, *options.output_roots]
    if not shot.output_uri:
        return _join(options.output_root, shot.shot_id)
    target = shot.output_uri
    if "://" not in target and not os.path.isabs(target):
        target = _join(options.output_root, target)
    target = _normalise(target)
    if not any(_inside(target, _normalise(r)) for r in roots):
        raise InputError(f"output_uri {shot.output_uri!r} is outside the output root "
                         f"{options.output_root} (name extra roots with --output-root)",
                         shot=shot.shot_id)
    return target


def deliver(shot: ShotRow, options: RunOptions, store: CacheStore, entry: Entry) -> dict:
    """Copy the encode entry's files into the shot's output folder; returns what was written."""
    from void_engine.shot import EncodedShot

    folder = store.local_dir(entry)
    enc = EncodedShot.from_json(folder / EncodedShot.JSON)
    dest = output_dir(shot, options)
    delivered = {}
    for attr, src in enc.files().items():
        delivered[attr] = _deliver(store, entry, Path(src), folder, dest)
    return {**delivered, "frames": enc.frames, "fps": enc.fps, "size": list(enc.size),
            "output_dir": dest}


def _deliver(store: CacheStore, entry: Entry, src: Path, folder: Path, dest: str) -> str:
    """One deliverable (a file, or an image-sequence folder) into `dest`/, through a temporary
    name (void_engine.io.atomic), checked against the entry's digests on the way."""
    target = f"{dest.rstrip('/')}/{src.name}"
    files = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file())
    with atomic_path(target, what="deliverable", folder=not src.is_file()) as tmp:
        for f in files:
            rel = f.relative_to(folder).as_posix()
            out = tmp if f == src else os.path.join(tmp, f.relative_to(src).as_posix())
            if _copy(f, out) != entry.digests.get(rel):
                store.quarantine(entry)
                raise CorruptEntry(entry, rel)
    return target


def _copy(src: Path, out: str) -> str:
    """Copy src to the local path `out` (a copy-on-write clone where the file system has
    one), returning the sha256 of the source's bytes, read once."""
    h = hashlib.sha256()
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(src, "rb") as fin:
        if _clone(fin, out):
            for chunk in iter(lambda: fin.read(_CHUNK), b""):
                h.update(chunk)
        else:
            with open(out, "wb") as fout:
                for chunk in iter(lambda: fin.read(_CHUNK), b""):
                    h.update(chunk)
                    fout.write(chunk)
    return "sha256:" + h.hexdigest()


def _clone(fin, out: str) -> bool:
    """A copy-on-write clone (FICLONE: btrfs, XFS, bcachefs); False where unsupported."""
    try:
        import fcntl

        with open(out, "wb") as fout:
            fcntl.ioctl(fout.fileno(), 0x40049409, fin.fileno())  # FICLONE
        return True
    except OSError:
        return False


def _join(root: str, name: str) -> str:
    return f"{root.rstrip('/')}/{name}"


def _normalise(uri: str) -> str:
    if "://" in uri:
        scheme, _, path = uri.partition("://")
        return f"{scheme}://{posixpath.normpath(path)}"
    return os.path.normpath(os.path.abspath(uri))


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")
