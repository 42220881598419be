"""What a stage sees while it decides, keys and runs: the manifest row, the run's options,
the upstream outcomes, and (inside a resident actor) the model the actor holds.

Everything here is plain data that pickles: the same context is built in the flow (skip and
key decisions), in a Prefect task thread (CPU stages) and in a Ray actor (GPU stages).
"""
from __future__ import annotations

import dataclasses
import json
import threading
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from manifests.schema import ShotRow
from tasks.cache import CacheStore, content_digest
from tasks.options import RunOptions
from tasks.records import EngineSpec, MasksSpec, Outcome

_stores: dict[str, CacheStore] = {}
_stores_lock = threading.Lock()


def store_at(uri: str) -> CacheStore:
    """One CacheStore per store URI per process."""
    with _stores_lock:
        if uri not in _stores:
            _stores[uri] = CacheStore(uri)
        return _stores[uri]


@dataclass
class StageContext:
    shot: ShotRow
    options: RunOptions  # resolved (RunOptions.resolved)
    up: dict[str, Outcome] = field(default_factory=dict)
    resident: Any = None  # inside an actor: the engine or mask models it holds
    progress: Any = None  # (done, total) -> None, called by long stages every step

    # ---- where things are ---------------------------------------------------------------------
    @property
    def store(self) -> CacheStore:
        return store_at(self.options.cache)

    def digest(self, uri: str | None) -> str | None:
        return content_digest(uri) if uri else None

    def input(self, stage: str, name: str) -> str:
        """Local path of file `name` of the upstream `stage`'s entry, checked against its
        digest first (raises tasks.cache.CorruptEntry when it was changed)."""
        return str(self.store.verify(self.up[stage].entry) / name)

    def decoded(self):
        """The upstream decode record, naming this shot (an entry may be shared by shots with
        identical content)."""
        from void_engine.shot import DecodedShot

        folder = self.store.verify(self.up["decode"].entry)
        return dataclasses.replace(DecodedShot.from_json(folder / DecodedShot.JSON),
                                   shot_id=self.shot.shot_id)

    # ---- the engine ---------------------------------------------------------------------------
    @property
    def engine_name(self) -> str:
        return self.options.engine_for(self.shot.engine)

    @cached_property
    def engine_spec(self) -> EngineSpec:
        return EngineSpec.make(self.engine_name, tuple(self.options.plugins),
                               **self.options.engine_kwargs())

    @property
    def facts(self):
        return self.engine_spec.facts

    @property
    def engine(self):
        if self.resident is None:
            raise RuntimeError("engine stages run inside their resident actor")
        return self.resident

    @cached_property
    def masks_spec(self) -> MasksSpec:
        return MasksSpec.from_env()

    @property
    def mask_models(self):
        return self.resident if self.resident is not None else self.masks_spec.build()

    # ---- shot parameters ----------------------------------------------------------------------
    def frame_range(self) -> tuple[int, int] | None:
        """The row's inclusive frame range with an open end resolved from the plate."""
        fr = self.shot.frame_range
        if fr is None or fr[1] is not None:
            return fr
        from void_engine.io import probe

        return (fr[0], probe(self.shot.plate_uri, fps=self.shot.fps).frames - 1)

    @property
    def frames_param(self) -> list | None:
        fr = self.shot.frame_range
        return list(fr) if fr else None

    @property
    def prompt(self) -> str:
        """The row's prompt, else the VLM's description of the scene without the object (the
        prompt.json its quadmask stage wrote), else empty."""
        if self.shot.prompt:
            return self.shot.prompt
        qm = self.up.get("vlm_quadmask")
        if qm is None or qm.status != "done" or not qm.meta.get("prompt"):
            return ""
        path = self.store.verify(qm.entry) / qm.meta["prompt"]
        return str(json.loads(path.read_text()).get("bg") or "")

    def removal_params(self):
        from void_engine.engines.base import RemovalParams

        s = self.shot
        return RemovalParams(seed=s.seed, passes=s.passes, steps=s.steps,
                             pass2_steps=s.pass2_steps, guidance_scale=s.guidance_scale)

    @staticmethod
    def redact(text: str | None) -> str | None:
        from void_engine.redact import redact

        return redact(text) if text else text
