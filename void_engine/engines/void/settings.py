"""The `void` engine's options, validated, and what follows from them without loading weights.

One function, `void_settings`, reads the options plus the base model's small transformer
config.json (never a weight file): it is how the engine configures itself and how
`engine_facts("void", ...)` answers model size and frame rules before any model exists.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from void_engine.engines.base import DEFAULT_MODEL_SIZE, FrameRules
from void_engine.errors import InputError, ModelLoadError

from .lora import LoraSpec, parse_loras

FULL_WINDOW = 85  # frames per temporal window of the real model (22 latents)
TINY_SIZE, TINY_WINDOW = (64, 112), 21  # defaults of a tiny random-weight test model
NOISE_MODES = ("aligned", "faithful")
PASS2_MASKS = ("binary", "trimask")
UINT8_MODES = ("round", "truncate")
SETTINGS_OPTIONS = ("weights", "base", "model_size", "window_frames", "memory_mode",
                    "noise_mode", "pass2_mask", "uint8", "lora", "lora_scale", "compile")


def frame_rules_for(window_frames: int) -> FrameRules:
    """4k+1 frames with k odd (an even latent count), at least one window."""
    return FrameRules(temporal_multiple=4, odd_k=True, min_frames=window_frames)


@dataclass(frozen=True)
class VoidSettings:
    weights: Path
    base: str | Path  # a folder or a hub id
    random_weight: bool  # a tiny random-weight test model (tiny defaults, loud warnings)
    model_size: tuple[int, int]
    window_frames: int
    memory_mode: str
    noise_mode: str
    pass2_mask: str
    uint8: str
    loras: LoraSpec
    compile: bool  # torch.compile each transformer block (regional compilation)

    @property
    def frame_rules(self) -> FrameRules:
        return frame_rules_for(self.window_frames)


def base_transformer_config(base: str | Path) -> dict[str, Any] | None:
    """The base model's transformer/config.json from a local folder or the Hugging Face cache;
    None when neither has it (no network is ever used here)."""
    from .loading import read_json

    path = Path(base).expanduser() / "transformer" / "config.json"
    if path.is_file():
        return read_json(path)
    if Path(base).expanduser().is_dir() or str(base).count("/") != 1:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(str(base), "transformer/config.json")
    except Exception:  # a malformed id: the loader reports it properly
        return None
    return read_json(Path(cached)) if isinstance(cached, str) else None


def is_tiny(base_config: dict[str, Any]) -> bool:
    width = base_config.get("num_attention_heads", 48) * base_config.get("attention_head_dim", 64)
    return width < 512


def _model_size(value, random_weight: bool) -> tuple[int, int]:
    if value is None:
        return TINY_SIZE if random_weight else DEFAULT_MODEL_SIZE
    if isinstance(value, str):
        from void_engine.config import parse_size

        try:
            return parse_size(value)
        except ValueError as e:
            raise InputError(str(e)) from None
    try:
        h, w = (int(v) for v in value)
    except (TypeError, ValueError):
        raise InputError(f"VOID model_size must be (height, width), got {value!r}") from None
    if h <= 0 or w <= 0 or h % 16 or w % 16:
        raise InputError(f"VOID model size {(h, w)} must be positive and divisible by 16")
    return h, w


def _window(value, random_weight: bool) -> int:
    try:
        window = int(value or (TINY_WINDOW if random_weight else FULL_WINDOW))
    except (TypeError, ValueError):
        raise InputError(f"window_frames must be a whole number, got {value!r}") from None
    if window < 5 or (window - 1) % 4 or ((window - 1) // 4) % 2 == 0:
        raise InputError(f"window_frames must be 4k+1 with k odd (21, 29, ..., 85), got "
                         f"{window}")
    return window


def _choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise InputError(f"{name} must be {' or '.join(repr(c) for c in choices)}, "
                         f"got {value!r}")
    return value


def void_settings(weights=None, base=None, model_size=None, window_frames=None,
                  memory_mode: str = "full", noise_mode: str = "aligned",
                  pass2_mask: str = "binary", uint8: str = "round", lora=None,
                  lora_scale=1.0, compile=False) -> VoidSettings:
    """Validate the options (InputError / ModelLoadError naming the bad one) and derive the
    defaults: a tiny random-weight base model gets a tiny size and window."""
    from .loading import DEFAULT_BASE_ID, MEMORY_MODES

    if weights is None:
        raise InputError("engine 'void' needs --weights DIR (void_pass1.safetensors, "
                         "void_pass2.safetensors and the base model)")
    weights = Path(weights)
    if not weights.is_dir():
        raise ModelLoadError(f"VOID weights folder {weights} does not exist")
    if base is None:
        base = weights if (weights / "transformer" / "config.json").exists() else DEFAULT_BASE_ID
    config = base_transformer_config(base)
    random_weight = config is not None and is_tiny(config)
    return VoidSettings(
        weights=weights, base=base, random_weight=random_weight,
        model_size=_model_size(model_size, random_weight),
        window_frames=_window(window_frames, random_weight),
        memory_mode=_choice("memory_mode", memory_mode, MEMORY_MODES),
        noise_mode=_choice("noise_mode", noise_mode, NOISE_MODES),
        pass2_mask=_choice("pass2_mask", pass2_mask, PASS2_MASKS),
        uint8=_choice("uint8", uint8, UINT8_MODES),
        loras=parse_loras(lora, lora_scale), compile=_flag("compile", compile))


def _flag(name: str, value) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        return str(value).lower() in ("1", "true", "yes", "on")
    raise InputError(f"{name} must be true or false, got {value!r}")
