"""Small records that cross task, thread and process boundaries (never arrays): what a stage
produced (`Outcome`), and which resident model an actor holds (`EngineSpec`, `MasksSpec`)."""
from __future__ import annotations

import hashlib
import importlib
import json
import os
import threading
from dataclasses import dataclass
from typing import Any

from tasks.cache import Entry, weights_id


@dataclass
class Outcome:
    """A stage's answer for one shot in one run: done (a store entry) or skipped (why)."""

    stage: str
    status: str  # "done" | "skipped"
    entry: Entry | None = None
    note: str = ""
    executed: bool = False  # computed in this run (False: skipped, or found in the store)
    seconds: float = 0.0  # this run's wall time for the stage (a store lookup for a hit)
    load_seconds: float = 0.0  # model load this call waited for (first call of an actor)

    @property
    def key(self) -> str | None:
        return self.entry.key if self.entry else None

    @property
    def meta(self) -> dict[str, Any]:
        return self.entry.meta if self.entry else {}

    @property
    def compute_seconds(self) -> float | None:
        """Seconds the run that produced the entry spent computing it."""
        return self.meta.get("compute_seconds") if self.entry else None


# Engine options that name files: the model id hashes their contents' identity, not the path.
PATH_OPTIONS = ("weights", "base", "raft_weights", "lora")

_memo: dict[Any, Any] = {}
_memo_lock = threading.Lock()


@dataclass(frozen=True)
class EngineSpec:
    """Which engine a resident actor holds. `plugins` are modules imported before the engine
    is built (engines registered outside void_engine, e.g. by a studio package or a test)."""

    name: str
    kwargs: tuple[tuple[str, Any], ...] = ()
    plugins: tuple[str, ...] = ()

    @classmethod
    def make(cls, name: str, plugins: tuple[str, ...] = (), **kwargs: Any) -> EngineSpec:
        return cls(name, tuple(sorted((k, _frozen(v)) for k, v in kwargs.items()
                                      if v is not None)), tuple(plugins))

    def import_plugins(self) -> None:
        for mod in self.plugins:
            importlib.import_module(mod)

    @property
    def model_id(self) -> str:
        """Engine name + the identity of its weights (file sizes and configs, see
        tasks.cache.weights_id) + its other options. Recomputed per call when files are
        involved (they may change between runs), memoised otherwise."""
        if any(k in PATH_OPTIONS for k, _ in self.kwargs):
            return _model_id(self)
        with _memo_lock:
            if ("id", self) not in _memo:
                _memo[("id", self)] = _model_id(self)
            return _memo[("id", self)]

    @property
    def facts(self):
        """void_engine's EngineFacts for this engine and options (no weights loaded),
        memoised per process."""
        with _memo_lock:
            if ("facts", self) in _memo:
                return _memo[("facts", self)]
        from void_engine.engines.base import engine_facts

        self.import_plugins()
        facts = engine_facts(self.name, **dict(self.kwargs))
        with _memo_lock:
            _memo[("facts", self)] = facts
        return facts

    def build(self):
        from void_engine.engines.base import create_engine

        self.import_plugins()
        return create_engine(self.name, **dict(self.kwargs))


def _frozen(v: Any) -> Any:
    """Option values hashable (lists from JSON/YAML become tuples)."""
    if isinstance(v, list):
        return tuple(_frozen(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _frozen(x)) for k, x in v.items()))
    return v


def _path_identity(v: Any) -> Any:
    """A file or folder option by the identity of its contents (a list of them: each);
    values that are not local paths (a hub id) as they are."""
    if isinstance(v, tuple):
        return [_path_identity(x) for x in v]
    if isinstance(v, str) and os.path.exists(v):
        return weights_id(v)
    return v


def _model_id(spec: EngineSpec) -> str:
    parts = {k: (_path_identity(v) if k in PATH_OPTIONS else v) for k, v in spec.kwargs}
    blob = json.dumps({"engine": spec.name, "kwargs": parts}, sort_keys=True, default=str)
    return f"{spec.name}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


@dataclass(frozen=True)
class MasksSpec:
    """Which mask models a resident masks actor holds: the workers' SAM2, grounding detector
    and VLM configuration (read from the environment, see README "Masks from clicks")."""

    sam2: Any = None  # void_engine.masks.segment.Sam2Config
    grounding: Any = None  # void_engine.masks.grounding.GroundingConfig, or None (grid cells)
    vlm: Any = None  # void_engine.masks.vlm.client.VlmConfig, or None (fallback only)

    @classmethod
    def from_env(cls) -> MasksSpec:
        from void_engine.masks.grounding import GroundingConfig
        from void_engine.masks.segment import Sam2Config
        from void_engine.masks.vlm.client import VlmConfig

        return cls(sam2=Sam2Config.from_env(), grounding=GroundingConfig.from_env(),
                   vlm=VlmConfig.from_env())

    def key_facts(self) -> dict:
        """What changes the masks for the same inputs: the models and the VLM asked."""
        from void_engine.masks.models import MaskModels

        facts = MaskModels(sam2=self.sam2, grounding=self.grounding).key_facts()
        return {**facts, "vlm": [self.vlm.backend, self.vlm.model] if self.vlm else None}

    @property
    def model_id(self) -> str:
        """Names the resident masks actor: every setting it was built with (an actor built
        for another VLM endpoint must not be reused)."""
        blob = json.dumps({"sam2": vars(self.sam2) if self.sam2 else None,
                           "grounding": vars(self.grounding) if self.grounding else None,
                           "vlm": self.vlm.public() if self.vlm else None},
                          sort_keys=True, default=str)
        return f"masks-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"

    def build(self) -> MaskWork:
        return MaskWork(self)


class MaskWork:
    """The mask stages bound to one configuration: void_engine's MaskModels (SAM2 and the
    grounding detector, each loaded once, on first use) plus the VLM the quadmask step asks."""

    def __init__(self, spec: MasksSpec):
        from void_engine.masks.models import MaskModels

        self.spec = spec
        self.models = MaskModels(sam2=spec.sam2, grounding=spec.grounding)

    def segment_shot(self, plate_uri: str, prompts: dict, out_uri: str, **kw: Any) -> str:
        return self.models.segment_shot(plate_uri, prompts, out_uri, **kw)

    def build_quadmask(self, plate_uri: str, black_uri: str, out_uri: str, **kw: Any):
        return self.models.build_quadmask(plate_uri, black_uri, out_uri, vlm=self.spec.vlm,
                                          **kw)

    def describe(self) -> dict:
        return self.models.describe()
