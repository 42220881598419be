"""LoRA adapters for the VOID transformer, through diffusers' PEFT integration.

    create_engine("void", weights=DIR, lora="style.safetensors", lora_scale=0.8)
    create_engine("void", weights=DIR, lora=["a.safetensors", "b/"], lora_scale=[1.0, 0.5])

Every adapter is loaded with `load_lora_weights`, weighted with `set_adapters` and fused into
the transformer's weights, then the PEFT layers are removed: the model runs at the speed of the
plain one, and the fp8 / CPU-offload memory modes and torch.compile see ordinary modules.
Adapters apply to the transformer of both passes.

Accepted files (one `.safetensors` file, or a folder holding one, or
`pytorch_lora_weights.safetensors`):
- diffusers/PEFT state dicts (`transformer.<module>.lora_A.weight`, what
  `VOIDPipeline.save_lora_weights` writes), ComfyUI's `diffusion_model.` prefix read as
  `transformer.`; the LoRA alpha from diffusers' adapter metadata in the file;
- the kohya layout that CogVideoX-Fun's (VideoX-Fun's) trainer writes and ComfyUI loads:
  `lora_unet_<module path, dots as underscores>.lora_down.weight` / `.lora_up.weight` /
  `.alpha`, module names resolved against the transformer's own (`lora_down`/`lora_up`
  are read as A/B under the dotted prefixes too).
Per module the update is scale * (alpha / rank) * B @ A, alpha = rank where a file gives none;
ranks and alphas may differ between modules. Files that also adapt the text encoder
(`lora_te*` keys) are refused: applying only part of them would not give their result.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from void_engine.errors import InputError, ModelLoadError

LoraSpec = tuple[tuple[Path, float], ...]  # (file, scale) per adapter
DIFFUSERS_NAME = "pytorch_lora_weights.safetensors"
_PREFIXES = {"transformer.": "transformer.", "diffusion_model.": "transformer."}


def _as_list(value) -> list:
    if value is None:
        return []
    if isinstance(value, str | Path):
        return [value]
    if isinstance(value, Sequence):
        return list(value)
    return [value]


def lora_file(path: str | Path) -> Path:
    """The adapter file a `lora=` entry names (a file, or a folder holding one)."""
    p = Path(path).expanduser()
    if p.is_file():
        return p
    if p.is_dir():
        if (p / DIFFUSERS_NAME).is_file():
            return p / DIFFUSERS_NAME
        files = sorted(p.glob("*.safetensors"))
        if len(files) == 1:
            return files[0]
        raise InputError(f"LoRA folder {p} must hold {DIFFUSERS_NAME} or exactly one "
                         f".safetensors file (found {len(files)})")
    raise InputError(f"LoRA {p} does not exist")


def parse_loras(lora, lora_scale=1.0) -> LoraSpec:
    """Validate the engine's `lora` / `lora_scale` options: one path or a list; one scale for
    all, or one per path. Scales are finite numbers (0 = the adapter has no effect)."""
    paths = _as_list(lora)
    scales = _as_list(lora_scale if lora_scale is not None else 1.0)
    if not paths:
        if lora_scale not in (None, 1.0, [], ()):
            raise InputError("lora_scale given without lora")
        return ()
    if len(scales) == 1:
        scales = scales * len(paths)
    if len(scales) != len(paths):
        raise InputError(f"lora_scale has {len(scales)} values for {len(paths)} LoRA files")
    out = []
    for path, scale in zip(paths, scales, strict=True):
        try:
            s = float(scale)
        except (TypeError, ValueError):
            raise InputError(f"lora_scale {scale!r} is not a number") from None
        if not math.isfinite(s) or isinstance(scale, bool):
            raise InputError(f"lora_scale {scale!r} is not a finite number")
        file = lora_file(path)
        _transformer_keys(file, _stored_keys(file))  # checked now, before any model loads
        out.append((file, s))
    return tuple(out)


def _stored_keys(path: Path) -> list[str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:  # the header only, no tensor data
            return list(f.keys())
    except Exception as e:
        raise ModelLoadError(f"cannot read LoRA {path}: {e}") from e


_KINDS = {"lora_A.weight": "A", "lora_down.weight": "A", "lora_B.weight": "B",
          "lora_up.weight": "B", "alpha": "alpha"}
KOHYA_PREFIX = "lora_unet_"


def _parse_key(key: str) -> tuple[str, bool, str] | None:
    """(module, kohya, kind) of a transformer LoRA key: the module's dotted name (kohya:
    its name with dots as underscores, resolved later), A / B / alpha; None otherwise."""
    for suffix, kind in _KINDS.items():
        if key.endswith("." + suffix):
            stem = key[:-len(suffix) - 1]
            for prefix in _PREFIXES:
                if stem.startswith(prefix):
                    return stem[len(prefix):], False, kind
            if stem.startswith(KOHYA_PREFIX):
                return stem[len(KOHYA_PREFIX):].lstrip("_"), True, kind
    return None


def _transformer_keys(path: Path, keys: list[str]) -> dict[str, tuple[str, bool, str]]:
    """stored key -> (module, kohya, kind) for the transformer's LoRA keys."""
    if any(k.startswith("lora_te") for k in keys):
        raise ModelLoadError(f"LoRA {path.name} also adapts the text encoder (lora_te keys); "
                             "only transformer LoRAs are applied, so its result would differ")
    out = {k: parsed for k in keys if (parsed := _parse_key(k)) is not None}
    if not any(kind != "alpha" for _, _, kind in out.values()):
        raise ModelLoadError(f"LoRA {path.name} holds no LoRA weights for the VOID transformer "
                             f"(expected keys like transformer.<module>.lora_A.weight)")
    return out


def _read_lora(path: Path, module_names) -> tuple[dict, dict | None]:
    """(state dict under diffusers' transformer.<module>.lora_A/B.weight keys, the PEFT
    LoRA config: the file's diffusers metadata, or per-module ranks and alphas)."""
    import json

    from diffusers.loaders.lora_base import LORA_ADAPTER_METADATA_KEY
    from safetensors import safe_open
    from safetensors.torch import load_file

    try:
        sd = load_file(str(path))
        with safe_open(str(path), "pt") as f:
            raw = (f.metadata() or {}).get(LORA_ADAPTER_METADATA_KEY)
        metadata = json.loads(raw) if raw else None
    except Exception as e:
        raise ModelLoadError(f"cannot read LoRA {path}: {e}") from e
    by_underscores = {n.replace(".", "_"): n for n in module_names}
    modules: dict[str, dict] = {}
    for key, (module, kohya, kind) in _transformer_keys(path, list(sd)).items():
        if kohya:
            if module not in by_underscores:
                raise ModelLoadError(f"LoRA {path.name} does not fit the VOID transformer: "
                                     f"it has no module {module!r} ({key})")
            module = by_underscores[module]
        modules.setdefault(module, {})[kind] = sd[key]
    state_dict = {}
    for module, parts in modules.items():
        if "A" not in parts or "B" not in parts:
            raise ModelLoadError(f"LoRA {path.name} gives {module} only "
                                 f"{' and '.join(sorted(parts))} (a LoRA needs both A and B)")
        state_dict[f"transformer.{module}.lora_A.weight"] = parts["A"]
        state_dict[f"transformer.{module}.lora_B.weight"] = parts["B"]
    if metadata is None or any("alpha" in parts for parts in modules.values()):
        metadata = _lora_config(modules)
    return state_dict, metadata


def _lora_config(modules: dict[str, dict]) -> dict:
    """diffusers' adapter metadata (PEFT LoraConfig arguments under `transformer.`) giving
    every module its own rank and alpha (alpha = rank where none is stored), so each one's
    update is (alpha / rank) * B @ A."""
    import re

    ranks = {m: int(p["A"].shape[0]) for m, p in modules.items()}
    alphas = {m: float(p["alpha"]) if "alpha" in p else float(ranks[m])
              for m, p in modules.items()}
    first = sorted(modules)[0]
    config = {"r": ranks[first], "lora_alpha": alphas[first], "target_modules": sorted(modules),
              "rank_pattern": {re.escape(m): r for m, r in ranks.items()},
              "alpha_pattern": {re.escape(m): a for m, a in alphas.items()}}
    return {f"transformer.{k}": v for k, v in config.items()}  # as diffusers stores it


def fuse_loras(pipe, loras: LoraSpec) -> None:
    """Load, weight and fuse `loras` into pipe.transformer, then drop the PEFT layers."""
    if not loras:
        return
    names = []
    for i, (path, _) in enumerate(loras):
        name = f"void_lora_{i}"
        names_in_model = [n for n, _ in pipe.transformer.named_modules() if n]
        state_dict, metadata = _read_lora(path, names_in_model)
        try:  # what load_lora_weights does, with the metadata (LoRA alpha) kept
            pipe.load_lora_into_transformer(state_dict, transformer=pipe.transformer,
                                            adapter_name=name, metadata=metadata, _pipeline=pipe)
        except Exception as e:  # shape mismatch, unknown module, ...
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelLoadError(f"LoRA {path.name} does not fit the VOID transformer: "
                                 f"{first[:300]}") from e
        if name not in pipe.get_list_adapters().get("transformer", []):
            raise ModelLoadError(f"LoRA {path.name} has no weights for the VOID transformer")
        names.append(name)
    pipe.set_adapters(names, [scale for _, scale in loras])
    pipe.fuse_lora(components=["transformer"], lora_scale=1.0, adapter_names=names,
                   safe_fusing=True)
    pipe.unload_lora_weights()
