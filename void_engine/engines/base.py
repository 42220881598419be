"""Engine interface and registry.

An engine removes the quadmask's object from a model-space clip:

    engine.remove(clip, quadmask, prompt, params) -> frames

clip      uint8 (T, H, W, 3) RGB at the model's working size, frames already padded to the
          engine's FrameRules by void_engine.modelspace
quadmask  uint8 (T, H, W) with the four values (void_engine.quadmask), same T/H/W
prompt    text describing the scene *after* removal
returns   uint8 (T, H, W, 3), same shape as clip

Engines that have a second refinement pass (VOID) also expose pass1/pass2 separately so the
batch flow can cache each pass and put the morphing gate between them.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from void_engine.errors import InputError

ProgressFn = Callable[[int, int], None]  # (done, total)
# The working size (height, width) of engines that do not name their own: VOID's 384x672 (the
# reference stretches every plate to it). The one home of this default.
DEFAULT_MODEL_SIZE: tuple[int, int] = (384, 672)


def configured_model_size() -> tuple[int, int]:
    """DEFAULT_MODEL_SIZE, or the VOID_MODEL_SIZE override read by void_engine.config."""
    from void_engine.config import DEFAULT_MODEL_SIZE as configured

    return tuple(configured)


@dataclass(frozen=True)
class FrameRules:
    """Frame-count rules an engine needs its clip padded to (see modelspace.pad_plan).

    temporal_multiple=4 with odd_k=True means T = 4k+1 with k odd (an even latent count);
    min_frames pads short clips (VOID's 85-frame window) by ping-pong repetition.
    """

    temporal_multiple: int = 1
    odd_k: bool = False
    min_frames: int = 1


@dataclass(frozen=True)
class EngineFacts:
    """What the flow must know about an engine before running it, known without a model:
    does it have a pass 2, the working size (height, width) and the frame-count rules."""

    name: str
    supports_pass2: bool
    model_size: tuple[int, int]
    frame_rules: FrameRules

    @classmethod
    def of(cls, engine: Engine) -> EngineFacts:
        """The facts an engine instance states through its attributes."""
        size = engine.model_size or configured_model_size()
        return cls(engine.name, bool(engine.supports_pass2), (int(size[0]), int(size[1])),
                   engine.frame_rules)


@dataclass
class RemovalParams:
    """Per-shot knobs. Engines ignore what they do not use."""

    seed: int = 42
    passes: str = "1"  # "1" | "2" | "auto" (auto = the flow's morphing gate decides)
    steps: int | None = None  # pass-1 steps (engine default when None)
    pass2_steps: int | None = None
    guidance_scale: float | None = None  # pass-2 CFG (engine default when None)
    extra: dict[str, Any] = field(default_factory=dict)


class Engine(ABC):
    """Base class. Subclasses set `name` and implement `pass1`."""

    name: str = ""
    frame_rules: FrameRules = FrameRules()
    supports_pass2: bool = False
    # Working size (height, width) the engine wants, or None for "the configured default".
    model_size: tuple[int, int] | None = None
    # Text for `void-batch remove --help` and the report: what this engine does and does not do.
    description: str = ""

    @classmethod
    def facts(cls, **options: Any) -> EngineFacts:
        """EngineFacts from the class attributes (and a `model_size` option, for engines that
        take one), without building the engine. Engines whose facts depend on other options
        or on files override this; it must never load a model."""
        size = options.get("model_size") or cls.model_size or configured_model_size()
        return EngineFacts(cls.name, bool(cls.supports_pass2), (int(size[0]), int(size[1])),
                           cls.frame_rules)

    @abstractmethod
    def pass1(self, clip: np.ndarray, quadmask: np.ndarray, prompt: str, params: RemovalParams,
              progress: ProgressFn | None = None) -> np.ndarray:
        """First (or only) removal pass."""

    def pass2(self, clip: np.ndarray, quadmask: np.ndarray, prompt: str, pass1: np.ndarray,
              params: RemovalParams, progress: ProgressFn | None = None) -> np.ndarray:
        """Refine a pass-1 result. Engines without a second pass refuse."""
        raise InputError(f"engine {self.name!r} has no pass 2")

    def remove(self, clip: np.ndarray, quadmask: np.ndarray, prompt: str,
               params: RemovalParams | None = None,
               progress: ProgressFn | None = None) -> np.ndarray:
        """Pass 1, then pass 2 when params.passes == "2"."""
        params = params or RemovalParams()
        check_clip(clip, quadmask)
        out = self.pass1(clip, quadmask, prompt, params, progress)
        if params.passes == "2":
            out = self.pass2(clip, quadmask, prompt, out, params, progress)
        return out


def check_clip(clip: np.ndarray, quadmask: np.ndarray) -> None:
    """Shape/dtype contract of Engine.remove inputs."""
    if clip.dtype != np.uint8 or clip.ndim != 4 or clip.shape[-1] != 3:
        raise InputError(f"clip must be uint8 (T,H,W,3), got {clip.dtype} {clip.shape}")
    if quadmask.dtype != np.uint8 or quadmask.shape != clip.shape[:3]:
        raise InputError(f"quadmask must be uint8 {clip.shape[:3]}, got {quadmask.dtype} "
                         f"{quadmask.shape}")


# --- registry -------------------------------------------------------------------------------
EngineFactory = Callable[..., Engine]
_REGISTRY: dict[str, EngineFactory] = {}
# Engines living in modules that are imported on first use (keeps `import void_engine` light).
_LAZY: dict[str, str] = {
    "propagate": "void_engine.engines.propagate",
    "void": "void_engine.engines.void.engine",
}


def register_engine(name: str) -> Callable[[EngineFactory], EngineFactory]:
    """Decorator: register an Engine subclass (or factory) under `name`."""

    def deco(factory: EngineFactory) -> EngineFactory:
        _REGISTRY[name] = factory
        return factory

    return deco


def available_engines() -> list[str]:
    return sorted(set(_REGISTRY) | set(_LAZY))


def _factory(name: str) -> EngineFactory:
    """The factory registered as `name`, importing its module on first use."""
    if name not in _REGISTRY and name in _LAZY:
        import importlib

        importlib.import_module(_LAZY[name])
    if name not in _REGISTRY:
        raise InputError(f"unknown engine {name!r} (available: {', '.join(available_engines())})")
    return _REGISTRY[name]


def _check_options(name: str, kwargs: dict[str, Any]) -> None:
    unknown = [k for k in kwargs if not engine_accepts(name, k)]
    if unknown:  # a typo in an option must not be silently ignored
        raise InputError(f"engine {name!r} has no option(s) {', '.join(sorted(unknown))}")


def create_engine(name: str, **kwargs: Any) -> Engine:
    """Build the engine registered as `name` (kwargs go to its constructor, e.g. weights=)."""
    factory = _factory(name)
    _check_options(name, kwargs)
    return factory(**kwargs)


def engine_facts(name: str, **engine_kwargs: Any) -> EngineFacts:
    """Pass-2 support, model size and frame rules of engine `name` with these options, from
    its registered class and its options/config files; no model is loaded. Same options and
    errors as create_engine. An engine registered as a plain factory function (no `facts`)
    is built to read its attributes: such constructors must not load models."""
    factory = _factory(name)
    _check_options(name, engine_kwargs)
    facts = getattr(factory, "facts", None)
    if facts is not None:
        return facts(**engine_kwargs)
    return EngineFacts.of(factory(**engine_kwargs))


def engine_accepts(name: str, option: str) -> bool:
    """Whether the engine registered as `name` takes constructor option `option`."""
    import inspect

    params = inspect.signature(_factory(name)).parameters
    return option in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
