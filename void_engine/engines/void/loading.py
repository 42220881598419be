"""Loading VOID: the CogVideoX-Fun base folder (diffusers layout) + a VOID transformer checkpoint.

What differs from the reference on purpose:
* The transformer is built from the base *config* with in_channels=48 on the meta device, and the
  VOID checkpoint (a full 48-channel state dict) is loaded **strictly** with assign=True. The base
  transformer weights are never read: the reference loads them (fp32, ~22 GB host RAM), widens the
  patch embedding and then overwrites every single weight with the checkpoint, non-strictly.
* Memory modes are real: "fp8" stores the transformer's weights in float8_e4m3fn and computes in
  bf16 via diffusers layerwise casting (the reference's "qfloat8" never stores FP8).

The base folder can be a local path, a Hugging Face cache entry, or a hub id when a network exists.
"""
from __future__ import annotations

import inspect
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from void_engine.errors import ModelLoadError

VOID_IN_CHANNELS = 48  # 16 noisy latents + 16 VAE-encoded mask + 16 video latents
CHECKPOINTS = {1: "void_pass1.safetensors", 2: "void_pass2.safetensors"}
DEFAULT_BASE_ID = "alibaba-pai/CogVideoX-Fun-V1.5-5b-InP"
MEMORY_MODES = ("full", "model_cpu_offload", "fp8")
DTYPES = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16,
          "bfloat16": torch.bfloat16}

LICENCE_NOTICE = (
    "VOID: the VOID checkpoints are Apache-2.0; the CogVideoX-Fun base model (VAE, T5 text "
    "encoder, transformer architecture) is distributed under the CogVideoX licence "
    "(https://huggingface.co/THUDM/CogVideoX-5b/blob/main/LICENSE). Using it means accepting "
    "those terms.")


def print_licence_notice(stream=None) -> None:
    """Printed once per load (the base model's licence must be visible to whoever runs it)."""
    print(LICENCE_NOTICE, file=stream or sys.stderr, flush=True)


def parse_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """fp32 / bf16; default bf16 on CUDA, fp32 on the CPU."""
    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        if dtype not in (torch.float32, torch.bfloat16):
            raise ModelLoadError(f"unsupported dtype {dtype}; use fp32 or bf16")
        return dtype
    try:
        return DTYPES[str(dtype).lower()]
    except KeyError:
        raise ModelLoadError(f"unsupported dtype {dtype!r}; use fp32 or bf16") from None


# --- the base folder ---------------------------------------------------------------------------
_BASE_PARTS = ("transformer/config.json", "vae/config.json", "text_encoder/config.json",
               "tokenizer", "scheduler/scheduler_config.json")


def _check_base_folder(path: Path) -> Path:
    missing = [p for p in _BASE_PARTS if not (path / p).exists()]
    if missing:
        raise ModelLoadError(f"base model folder {path} is incomplete: "
                             f"missing {', '.join(missing)}")
    return path


def resolve_base_folder(spec: str | os.PathLike) -> Path:
    """Local folder, else a Hugging Face cache snapshot, else a hub download (network only)."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return _check_base_folder(path)
    if path.is_absolute() or str(spec).startswith((".", "~")) or str(spec).count("/") != 1:
        raise ModelLoadError(f"base model folder {spec} does not exist")
    from huggingface_hub import snapshot_download

    try:  # the cache first: render nodes have no network
        return _check_base_folder(Path(snapshot_download(str(spec), local_files_only=True)))
    except ModelLoadError:
        raise
    except Exception:
        pass
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    if offline:
        raise ModelLoadError(
            f"base model {spec!r} is neither a local folder nor in the Hugging Face cache, and "
            f"HF_HUB_OFFLINE is set: download it on a machine with network access "
            f"(`hf download {spec} --local-dir DIR`) and pass the folder")
    try:
        return _check_base_folder(Path(snapshot_download(str(spec))))
    except ModelLoadError:
        raise
    except Exception as e:  # DNS failure, 401, 404...
        raise ModelLoadError(f"cannot download base model {spec!r}: {type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else ''}") from e


def find_checkpoint(weights: Path, pass_no: int) -> Path:
    path = weights / CHECKPOINTS[pass_no]
    if not path.is_file():
        raise ModelLoadError(f"VOID pass-{pass_no} checkpoint {path} not found")
    return path


# --- transformer -----------------------------------------------------------------------------
def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"cannot read {path}: {e}") from e


def void_transformer_config(base_config: dict[str, Any]) -> dict[str, Any]:
    """The base (33-channel inpaint) config as diffusers kwargs, widened to 48 input channels.

    Keys the diffusers class does not know (VideoX-Fun's add_noise_in_inpaint_model, which is
    pipeline behaviour, not architecture) are dropped here; read them from the raw config.
    """
    from diffusers import CogVideoXTransformer3DModel

    known = set(inspect.signature(CogVideoXTransformer3DModel.__init__).parameters) - {"self"}
    cfg = {k: v for k, v in base_config.items() if k in known}
    cfg["in_channels"] = VOID_IN_CHANNELS
    return cfg


def build_transformer_meta(base_config: dict[str, Any]):
    """The 48-channel VOID transformer with no storage (meta device)."""
    from diffusers import CogVideoXTransformer3DModel

    with torch.device("meta"):
        return CogVideoXTransformer3DModel.from_config(void_transformer_config(base_config))


def load_void_state_dict(path: Path, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    try:
        sd = load_file(str(path))
    except Exception as e:
        raise ModelLoadError(f"cannot read VOID checkpoint {path}: {e}") from e
    return {k: v.to(dtype) for k, v in sd.items()}


def load_transformer(base_config: dict[str, Any], checkpoint: Path, dtype: torch.dtype):
    """Meta-built 48-channel transformer + the VOID checkpoint, strictly (every key and shape)."""
    model = build_transformer_meta(base_config)
    sd = load_void_state_dict(checkpoint, dtype)
    try:
        model.load_state_dict(sd, strict=True, assign=True)
    except RuntimeError as e:
        first = str(e).splitlines()
        raise ModelLoadError(f"VOID checkpoint {checkpoint.name} does not match the 48-channel "
                             f"transformer built from the base config: "
                             f"{' '.join(s.strip() for s in first[:3])[:400]}") from e
    still_meta = [n for n, p in model.named_parameters() if p.is_meta]
    still_meta += [n for n, b in model.named_buffers() if b.is_meta]
    if still_meta:
        raise ModelLoadError(f"VOID checkpoint {checkpoint.name} left {len(still_meta)} tensors "
                             f"unset (e.g. {still_meta[0]})")
    return model.eval().requires_grad_(False)


# --- other components ----------------------------------------------------------------------------
def load_vae(base: Path, dtype: torch.dtype):
    from .vae_decode import VoidAutoencoderKLCogVideoX

    try:
        vae = VoidAutoencoderKLCogVideoX.from_pretrained(str(base / "vae"), torch_dtype=dtype)
    except Exception as e:
        raise ModelLoadError(f"cannot load the VAE from {base / 'vae'}: {e}") from e
    return vae.eval().requires_grad_(False)


def load_text_stack(base: Path, dtype: torch.dtype):
    from transformers import T5EncoderModel, T5Tokenizer

    try:
        tokenizer = T5Tokenizer.from_pretrained(str(base / "tokenizer"))
        text_encoder = T5EncoderModel.from_pretrained(str(base / "text_encoder"), dtype=dtype)
    except Exception as e:
        raise ModelLoadError(f"cannot load the T5 tokenizer/text encoder from {base}: {e}") from e
    return tokenizer, text_encoder.eval().requires_grad_(False)


def load_scheduler(base: Path, pass_no: int):
    """Pass 1: diffusers DDIMScheduler (reference "DDIM_Origin"); pass 2: CogVideoXDDIMScheduler.

    Identical maths while snr_shift_scale == 1 (the DDIMScheduler ignores that key).
    """
    from diffusers import CogVideoXDDIMScheduler, DDIMScheduler

    cfg = read_json(base / "scheduler" / "scheduler_config.json")
    if pass_no == 1:
        cfg = {k: v for k, v in cfg.items() if k != "snr_shift_scale"}
        return DDIMScheduler.from_config(cfg)
    return CogVideoXDDIMScheduler.from_config(cfg)


def apply_memory_mode(pipe, mode: str, device: torch.device) -> None:
    """full: everything on `device`; model_cpu_offload: diffusers per-component offload;
    fp8: transformer weights stored as float8_e4m3fn, computed in bf16, everything resident."""
    if mode not in MEMORY_MODES:
        raise ModelLoadError(f"unknown memory mode {mode!r} (choose {', '.join(MEMORY_MODES)})")
    if mode == "fp8":
        if pipe.transformer.dtype != torch.bfloat16:
            raise ModelLoadError("memory mode fp8 computes in bf16: load with dtype bf16")
        pipe.transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn,
                                                  compute_dtype=torch.bfloat16)
    if mode == "model_cpu_offload" and device.type != "cpu":
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)


def compile_blocks(transformer) -> None:
    """torch.compile every transformer block on its own (regional compilation: the 42 blocks
    share one compiled graph, compiled in seconds instead of the whole model's minutes)."""
    for block in transformer.transformer_blocks:
        block.compile()
