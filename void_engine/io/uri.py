"""fsspec URIs: local paths are used in place; remote ones go through a temporary local copy.

ffmpeg, OpenCV and OpenEXR all want local files, so a remote plate is fetched once before
decoding; outputs (local or remote) are written through void_engine.io.atomic.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import fsspec
from fsspec.core import split_protocol

from void_engine.errors import InputError, OutputError


def is_local(uri: str | os.PathLike) -> bool:
    protocol, _ = split_protocol(str(uri))
    return protocol in (None, "file", "local")


def local_path(uri: str | os.PathLike) -> str:
    """The filesystem path of a local URI (file:// stripped)."""
    _, path = split_protocol(str(uri))
    return path


@contextlib.contextmanager
def local_input(uri: str | os.PathLike, what: str = "file") -> Iterator[str]:
    """A local path holding `uri`'s content (a file or a folder of frames)."""
    if is_local(uri):
        yield local_path(uri)
        return
    fs, path = fsspec.core.url_to_fs(str(uri))
    if not fs.exists(path):
        raise InputError(f"{what} not found: {uri}")
    tmp = tempfile.mkdtemp(prefix="void-in-")
    try:
        target = os.path.join(tmp, os.path.basename(path.rstrip("/")) or "data")
        fs.get(path, target, recursive=fs.isdir(path))
        yield target
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_writable(uri: str | os.PathLike, what: str = "output") -> None:
    """Fail fast (before any heavy work) when `uri` cannot be written."""
    if not is_local(uri):
        return  # remote backends are checked by the upload itself
    path = Path(local_path(uri)).absolute()
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"cannot write {what} {uri}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {what} {uri}: folder {parent} is not writable")
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputError(f"cannot write {what} {uri}: {path} exists and is read-only")


def make_public(path: str) -> None:
    """Give a file made by mkstemp (mode 0600) the permissions a normal write would have."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)
