"""Small records that cross task, thread and process boundaries (never arrays)."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from tasks.cache import CacheStore, Entry

STAGES = ("segmentation", "vlm_quadmask", "decode", "pass1", "gate", "pass2", "encode")
# Upstream stages each stage reads.
STAGE_DEPS = {"segmentation": (), "vlm_quadmask": ("segmentation",), "decode": ("vlm_quadmask",),
              "pass1": ("decode",), "gate": ("decode", "pass1"),
              "pass2": ("decode", "pass1", "gate"), "encode": ("decode", "pass1", "pass2")}


@dataclass
class Outcome:
    """What a stage task returns (and what Prefect caches): a pointer to the stage's store
    entry, or why the stage was skipped."""

    stage: str
    status: str  # "done" | "skipped"
    entry: Entry | None = None
    note: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str | None:
        return self.entry.key if self.entry else None


@dataclass(frozen=True)
class RunConfig:
    """Run-wide settings every stage task sees (plain data: safe to log and to hash)."""

    output_root: str
    store_uri: str
    engine: str = "void"  # default engine for rows without one
    engine_override: bool = False  # True: `engine` wins over the rows' engine column
    engine_kwargs: tuple[tuple[str, Any], ...] = ()
    plugins: tuple[str, ...] = ()
    ray_address: str | None = None
    review: bool = True
    gate_threshold: float | None = None


def load_decoded(store: CacheStore, entry: Entry):
    """The DecodedShot of a decode entry, its .npy paths pointing into the entry's folder
    (decode wrote them in a staging folder that was renamed into the store)."""
    from void_engine.stages import DecodedShot

    folder = store.local_dir(entry)
    d = DecodedShot.from_json(folder / "decoded.json")
    d.clip_path = str(folder / d.clip_path)  # stored relative to the entry folder
    d.mask_path = str(folder / d.mask_path)
    return d


def load_encoded(store: CacheStore, entry: Entry):
    from void_engine.stages import EncodedShot

    folder = store.local_dir(entry)
    e = EncodedShot.from_json(folder / "encoded.json")
    for attr in ("result_uri", "matte_uri", "review_movie_uri", "contact_sheet_uri"):
        v = getattr(e, attr)
        if v:
            setattr(e, attr, str(folder / v))
    return e


class Ledger:
    """What each stage did in *this* run (executed or not, seconds), filled by task bodies.
    A Prefect cache hit never runs the body, so a missing line means "cached"."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[tuple[str, str, str], dict] = {}

    def record(self, run_id: str, shot_id: str, stage: str, **facts: Any) -> None:
        with self._lock:
            self._rows[(run_id, shot_id, stage)] = facts

    def get(self, run_id: str, shot_id: str, stage: str) -> dict | None:
        with self._lock:
            return self._rows.get((run_id, shot_id, stage))

    def drop_run(self, run_id: str) -> None:
        with self._lock:
            for k in [k for k in self._rows if k[0] == run_id]:
                del self._rows[k]


LEDGER = Ledger()
