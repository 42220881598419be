"""Atomic writes, the one way void-batch creates a file or folder: write to a hidden temp name
beside the target, rename into place only when complete; on any error the temp is removed and
nothing half-written is ever visible under the target's name.

    with atomic_path("out/shot.mkv") as tmp:   # a local temp path (file; folder=True: a dir)
        ffmpeg ... tmp
    write_json("out/decoded.json", record)      # small helpers for the usual payloads
    save_npy("work/clip.npy", clip); copy_file(src, "s3://bucket/shot.mkv")

Local paths (and file:// URIs) are renamed within their folder (atomic on POSIX); other fsspec
URIs are written to a local temp, uploaded to a hidden `.name.part` beside the target and moved
into place. A full disk, a file size limit, a quota or a read-only filesystem become one
OutputError naming the target and the cause.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import IO

import numpy as np

from void_engine.errors import OutputError
from void_engine.io.uri import is_local, local_path, make_public

# What the OS said, in the words a pipeline engineer acts on.
_WRITE_ERRORS = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large for the filesystem or the process's file size limit",
    errno.EROFS: "read-only filesystem",
}


def describe_os_error(exc: OSError) -> str:
    """'disk full (No space left on device)' and the like."""
    reason = exc.strerror or str(exc)
    known = _WRITE_ERRORS.get(exc.errno)
    return f"{known} ({reason})" if known else reason


def describe_tool_message(text: str) -> str:
    """A tool's error line (ffmpeg's) with the cause named first when it is a refused write:
    'disk full: av_interleaved_write_frame(): No space left on device'."""
    for code, known in _WRITE_ERRORS.items():
        if os.strerror(code) in text:
            return f"{known}: {text}"
    return text


def is_write_error(exc: BaseException) -> bool:
    """An OSError that says the target filesystem refused the write (a short write without
    an errno, as some libraries report a full disk, counts too)."""
    return isinstance(exc, OSError) and (exc.errno in _WRITE_ERRORS or exc.errno is None)


class AtomicPath:
    """A temp path standing in for `uri` until commit() (rename/upload into place) or
    discard(). As a context manager: yields the temp path, commits on a clean exit, discards
    on any exception (write errors of the filesystem become OutputError)."""

    def __init__(self, uri: str | os.PathLike, *, what: str = "output", folder: bool = False):
        self.uri, self.what, self.folder = str(uri), what, folder
        self.remote = not is_local(self.uri)
        self.tmp: str | None = None
        self._staging: str | None = None  # remote: the local folder holding tmp

    def __enter__(self) -> str:
        name = os.path.basename(self.uri.rstrip("/")) or "output"
        try:
            if self.remote:
                self._staging = tempfile.mkdtemp(prefix="void-out-")
                parent = self._staging
            else:
                target = os.path.abspath(local_path(self.uri))
                parent = os.path.dirname(target)
                os.makedirs(parent, exist_ok=True)
            if self.folder:
                self.tmp = tempfile.mkdtemp(prefix=f".{name}.part-", dir=parent)
                os.chmod(self.tmp, 0o777 & ~_umask())
            else:
                fd, self.tmp = tempfile.mkstemp(prefix=f".{name}.part-",
                                                suffix=os.path.splitext(name)[1], dir=parent)
                os.close(fd)
                make_public(self.tmp)
        except OSError as exc:
            self.discard()
            raise OutputError(f"cannot write {self.what} {self.uri}: "
                              f"{describe_os_error(exc)}") from None
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.discard()
            if is_write_error(exc):
                raise OutputError(f"cannot write {self.what} {self.uri}: "
                                  f"{describe_os_error(exc)}") from None
            return
        self.commit()

    def commit(self) -> str:
        """Move the finished temp into place (replacing what was there); returns the URI."""
        try:
            if self.remote:
                self._upload()
            elif self.folder:
                _replace_folder(self.tmp, os.path.abspath(local_path(self.uri)))
            else:
                os.replace(self.tmp, os.path.abspath(local_path(self.uri)))
        except OSError as exc:
            self.discard()
            raise OutputError(f"cannot write {self.what} {self.uri}: "
                              f"{describe_os_error(exc)}") from None
        finally:
            if self.remote:
                self.discard()
        self.tmp = None
        return self.uri

    def _upload(self) -> None:
        import fsspec

        fs, path = fsspec.core.url_to_fs(self.uri)
        path = path.rstrip("/")
        parent, _, name = path.rpartition("/")
        partial = (parent + "/" if parent else "") + f".{name}.part"
        try:
            fs.put(self.tmp, partial, recursive=self.folder)
            if fs.exists(path):
                fs.rm(path, recursive=True)
            fs.mv(partial, path, recursive=self.folder)
        except Exception as exc:  # noqa: BLE001 - any backend failure is an output failure
            with contextlib.suppress(Exception):
                if fs.exists(partial):
                    fs.rm(partial, recursive=True)
            raise OutputError(f"cannot upload {self.what} {self.uri}: {exc}") from exc

    def discard(self) -> None:
        """Remove the temp (and a remote write's staging folder); safe to call again."""
        for path in (self.tmp, self._staging):
            if path and os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            elif path and os.path.lexists(path):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)
        self.tmp = self._staging = None


@contextlib.contextmanager
def atomic_path(uri: str | os.PathLike, *, what: str = "output",
                folder: bool = False) -> Iterator[str]:
    """Context manager form of AtomicPath: yields the temp path to write."""
    with AtomicPath(uri, what=what, folder=folder) as tmp:
        yield tmp


@contextlib.contextmanager
def atomic_open(uri: str | os.PathLike, mode: str = "wb", *,
                what: str = "output") -> Iterator[IO]:
    """An open file whose content appears at `uri` when the block ends without error."""
    with atomic_path(uri, what=what) as tmp, open(tmp, mode) as f:
        yield f


def write_bytes(uri: str | os.PathLike, data: bytes, *, what: str = "output") -> str:
    with atomic_open(uri, "wb", what=what) as f:
        f.write(data)
    return str(uri)


def write_text(uri: str | os.PathLike, text: str, *, what: str = "output") -> str:
    return write_bytes(uri, text.encode(), what=what)


def write_json(uri: str | os.PathLike, payload, *, what: str = "output", **dump) -> str:
    """json.dumps(payload, **dump) (indent 2 and lists for tuples/sets by default)."""
    dump = {"indent": 2, "default": list} | dump
    return write_text(uri, json.dumps(payload, **dump), what=what)


def save_npy(uri: str | os.PathLike, array: np.ndarray, *, what: str = "array") -> str:
    with atomic_open(uri, "wb", what=what) as f:
        np.save(_PlainStream(f), array)
    return str(uri)


class _PlainStream:
    """A writable numpy does not take for a real file, so np.save goes through write(), whose
    OSError carries the errno (ENOSPC, EFBIG), rather than ndarray.tofile(), which reports a
    full disk as a bare short write."""

    def __init__(self, f: IO):
        self.write = f.write


def copy_file(src: str | os.PathLike, uri: str | os.PathLike, *, what: str = "output") -> str:
    """Copy a finished local file to `uri` (local or fsspec)."""
    with atomic_path(uri, what=what) as tmp:
        shutil.copyfile(src, tmp)
    return str(uri)


def _replace_folder(tmp: str, target: str) -> None:
    """Rename folder tmp onto target; an existing target is moved aside first, then removed
    (a folder cannot be replaced by one rename)."""
    if os.path.isdir(target):
        old = f"{target}.old-{os.getpid()}"
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
