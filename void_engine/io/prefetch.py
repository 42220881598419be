"""Run a frame iterator in a background thread, a few frames ahead of its consumer, so that
decoding (an ffmpeg pipe read, which releases the GIL) overlaps compositing and encoding."""
from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterable, Iterator

_END = object()


class Prefetch:
    """Iterate `source` in a thread, at most `depth` items ahead (bounded memory). Errors
    reach the consumer at the item where they happened. Use as a context manager (or call
    close()) so an early exit stops the thread and closes the source (killing its ffmpeg)."""

    def __init__(self, source: Iterable, depth: int = 2):
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(iter(source),), daemon=True)
        self._thread.start()

    def _run(self, it: Iterator) -> None:
        try:
            for item in it:
                if not self._put((item, None)):
                    return
            self._put((_END, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            self._put((_END, exc))
        finally:
            close = getattr(it, "close", None)
            if close:
                close()

    def _put(self, entry) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Prefetch:
        return self

    def __next__(self):
        item, exc = self._queue.get()
        if exc is not None:
            raise exc
        if item is _END:
            self._queue.put((_END, None))  # stay exhausted
            raise StopIteration
        return item

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.1)
        self._thread.join()

    def __enter__(self) -> Prefetch:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
