"""LoRA adapters for the VOID transformer (engine options `lora` / `lora_scale`), on a tiny LoRA
this test builds with PEFT for the tiny random-weight model: the fused weights follow
W + scale * (alpha / r) * B @ A, the output changes with the LoRA and its scale, scale 0 is
the plain model exactly, the kohya layout of CogVideoX-Fun's trainer (per-module rank and
alpha) fuses the same way, and bad adapters or options fail with one clear line."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from void_engine.engines.base import RemovalParams, create_engine
from void_engine.errors import InputError, ModelLoadError

R, ALPHA = 4, 8  # LoRA rank and alpha: scaling alpha / r = 2
TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
SMALL = dict(device="cpu", model_size=(32, 48), window_frames=21)


@pytest.fixture(scope="module")
def tiny_lora(parity_dir, tmp_path_factory):
    """A rank-4 LoRA on every attention projection, random A and B (so it changes the output),
    saved the way diffusers saves LoRAs (with the adapter config, so alpha is known)."""
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    from void_engine.engines.void.loading import load_transformer, read_json
    from void_engine.engines.void.pipeline_void import VOIDPipeline

    tiny = parity_dir / "tiny_void"
    model = load_transformer(read_json(tiny / "transformer" / "config.json"),
                             tiny / "void_pass1.safetensors", torch.float32)
    torch.manual_seed(0)
    config = LoraConfig(r=R, lora_alpha=ALPHA, target_modules=TARGETS, init_lora_weights=False)
    model.add_adapter(config)
    folder = tmp_path_factory.mktemp("lora")
    VOIDPipeline.save_lora_weights(folder, transformer_lora_layers=get_peft_model_state_dict(model),
                                   transformer_lora_adapter_metadata=config.to_dict())
    return folder / "pytorch_lora_weights.safetensors"


def _clip(t=21, h=32, w=48):
    yy, xx = np.mgrid[0:h, 0:w]
    clip = np.stack([np.stack([(xx * 5 + 3 * i) % 256, (yy * 7) % 256, np.full_like(xx, 90)], -1)
                     for i in range(t)]).astype(np.uint8)
    qm = np.full((t, h, w), 255, np.uint8)
    qm[:, 8:20, 10:30] = 0
    return clip, qm


def _pass1(engine):
    clip, qm = _clip()
    return engine.pass1(clip, qm, "a wooden table", RemovalParams(seed=1, steps=2))


def _weights(engine):
    return engine.pipeline(1).transformer.state_dict()


@pytest.fixture(scope="module")
def plain(parity_dir):
    e = create_engine("void", weights=parity_dir / "tiny_void", **SMALL)
    return e, _pass1(e)


def test_fused_weights_follow_scale_and_alpha(parity_dir, tiny_lora, plain):
    e = create_engine("void", weights=parity_dir / "tiny_void", lora=str(tiny_lora),
                      lora_scale=0.5, **SMALL)
    sd = load_file(str(tiny_lora))
    base, fused = _weights(plain[0]), _weights(e)
    assert set(fused) == set(base)  # fused: ordinary modules, no PEFT layers left
    for target in TARGETS:
        name = f"transformer_blocks.1.attn1.{target}"
        a = sd[f"transformer.{name}.lora_A.weight"]
        b = sd[f"transformer.{name}.lora_B.weight"]
        want = base[f"{name}.weight"] + 0.5 * (ALPHA / R) * (b @ a)
        # float32: the fused weight is one rounded addition away from the exact sum
        assert torch.allclose(fused[f"{name}.weight"], want, rtol=0, atol=1e-6)
    untouched = "transformer_blocks.1.ff.net.2.weight"
    assert torch.equal(fused[untouched], base[untouched])


def test_output_changes_with_lora_and_scale(parity_dir, tiny_lora, plain):
    out = {s: _pass1(create_engine("void", weights=parity_dir / "tiny_void", lora=tiny_lora,
                                   lora_scale=s, **SMALL)) for s in (0.0, 0.4, 0.8)}
    # Scale 0 adds 0 * B @ A = +0.0 to every weight, which leaves an IEEE float unchanged: the
    # model is bit for bit the plain one, so the tolerance is exactly zero.
    assert np.array_equal(out[0.0], plain[1])
    assert not np.array_equal(out[0.4], plain[1])
    assert not np.array_equal(out[0.8], out[0.4])


def test_two_adapters_and_comfyui_prefix(parity_dir, tiny_lora, plain, tmp_path):
    from safetensors import safe_open

    sd = load_file(str(tiny_lora))
    with safe_open(str(tiny_lora), "pt") as f:
        metadata = f.metadata()  # diffusers' adapter config: it carries alpha
    comfy = {"diffusion_model." + k.removeprefix("transformer."): v for k, v in sd.items()}
    save_file(comfy, str(tmp_path / "comfy.safetensors"), metadata=metadata)
    # Fusing is linear in the scales: (A, 0.3) + (A again, 0.2) == (A, 0.5)
    two = create_engine("void", weights=parity_dir / "tiny_void",
                        lora=[str(tiny_lora), str(tmp_path)], lora_scale=[0.3, 0.2], **SMALL)
    one = create_engine("void", weights=parity_dir / "tiny_void", lora=tiny_lora,
                        lora_scale=0.5, **SMALL)
    for k, v in _weights(one).items():
        assert torch.allclose(_weights(two)[k], v, rtol=0, atol=1e-6), k  # float32 sums


def _kohya(sd: dict, alpha: float) -> dict:
    """A diffusers LoRA in the kohya layout CogVideoX-Fun's trainer writes: lora_unet__ plus
    the module path with underscores, lora_down / lora_up, and an alpha tensor per module."""
    out = {}
    for key, value in sd.items():
        module, part = key.removeprefix("transformer.").rsplit(".lora_", 1)
        stem = "lora_unet__" + module.replace(".", "_")
        out[f"{stem}.lora_{'down' if part.startswith('A') else 'up'}.weight"] = value
        out[f"{stem}.alpha"] = torch.tensor(alpha)
    return out


def test_kohya_layout_with_per_module_rank_and_alpha(parity_dir, tiny_lora, plain, tmp_path):
    sd = load_file(str(tiny_lora))
    kohya = _kohya(sd, ALPHA)
    # One module at its own rank and alpha: rank 2, alpha 1 (scaling 0.5, not 8 / 4).
    odd = "lora_unet__transformer_blocks_0_attn1_to_v"
    kohya[f"{odd}.lora_down.weight"] = kohya[f"{odd}.lora_down.weight"][:2].clone()
    kohya[f"{odd}.lora_up.weight"] = kohya[f"{odd}.lora_up.weight"][:, :2].clone()
    kohya[f"{odd}.alpha"] = torch.tensor(1.0)
    save_file(kohya, str(tmp_path / "videox_fun.safetensors"))
    e = create_engine("void", weights=parity_dir / "tiny_void",
                      lora=tmp_path / "videox_fun.safetensors", lora_scale=0.5, **SMALL)
    base, fused = _weights(plain[0]), _weights(e)
    for target in TARGETS:
        for block in (0, 1):
            name = f"transformer_blocks.{block}.attn1.{target}"
            stem = "lora_unet__" + name.replace(".", "_")
            a, b = kohya[f"{stem}.lora_down.weight"], kohya[f"{stem}.lora_up.weight"]
            scaling = float(kohya[f"{stem}.alpha"]) / a.shape[0]
            want = base[f"{name}.weight"] + 0.5 * scaling * (b @ a)
            assert torch.allclose(fused[f"{name}.weight"], want, rtol=0, atol=1e-6), name
    # The same LoRA as diffusers saves it fuses to the same weights (float32 sums).
    same = _kohya(sd, ALPHA)
    save_file(same, str(tmp_path / "same.safetensors"))
    d = create_engine("void", weights=parity_dir / "tiny_void", lora=tiny_lora, lora_scale=0.5,
                      **SMALL)
    k = create_engine("void", weights=parity_dir / "tiny_void",
                      lora=tmp_path / "same.safetensors", lora_scale=0.5, **SMALL)
    for key, v in _weights(d).items():
        assert torch.allclose(_weights(k)[key], v, rtol=0, atol=1e-6), key


def test_kohya_files_that_do_not_fit_say_why(parity_dir, tiny_lora, tmp_path):
    tiny = parity_dir / "tiny_void"
    kohya = _kohya(load_file(str(tiny_lora)), ALPHA)
    with_te = dict(kohya, **{"lora_te_encoder_block_0_layer_0.lora_down.weight":
                             torch.zeros(4, 8)})
    save_file(with_te, str(tmp_path / "te.safetensors"))
    with pytest.raises(ModelLoadError, match="also adapts the text encoder"):
        create_engine("void", weights=tiny, lora=tmp_path / "te.safetensors")
    unknown = dict(kohya, **{"lora_unet__transformer_blocks_9_attn1_to_q.lora_down.weight":
                             torch.zeros(4, 8),
                             "lora_unet__transformer_blocks_9_attn1_to_q.lora_up.weight":
                             torch.zeros(8, 4)})
    save_file(unknown, str(tmp_path / "unknown.safetensors"))
    engine = create_engine("void", weights=tiny, lora=tmp_path / "unknown.safetensors", **SMALL)
    with pytest.raises(ModelLoadError, match="no module 'transformer_blocks_9_attn1_to_q'"):
        engine.pipeline(1)
    half = {k: v for k, v in kohya.items() if not k.endswith("lora_up.weight")}
    save_file(half, str(tmp_path / "half.safetensors"))
    engine = create_engine("void", weights=tiny, lora=tmp_path / "half.safetensors", **SMALL)
    with pytest.raises(ModelLoadError, match="only A and alpha"):
        engine.pipeline(1)


def test_lora_options_are_validated(parity_dir, tiny_lora, tmp_path):
    tiny = parity_dir / "tiny_void"
    with pytest.raises(InputError, match="does not exist"):
        create_engine("void", weights=tiny, lora=tmp_path / "missing.safetensors")
    with pytest.raises(InputError, match="2 values for 1 LoRA"):
        create_engine("void", weights=tiny, lora=tiny_lora, lora_scale=[0.5, 0.5])
    with pytest.raises(InputError, match="not a number"):
        create_engine("void", weights=tiny, lora=tiny_lora, lora_scale="strong")
    with pytest.raises(InputError, match="finite"):
        create_engine("void", weights=tiny, lora=tiny_lora, lora_scale=float("nan"))
    with pytest.raises(InputError, match="without lora"):
        create_engine("void", weights=tiny, lora_scale=0.5)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="exactly one"):
        create_engine("void", weights=tiny, lora=tmp_path / "empty")


def test_bad_adapter_files_are_model_load_errors(parity_dir, tiny_lora, tmp_path):
    tiny = parity_dir / "tiny_void"
    save_file({"unet.down.lora_A.weight": torch.zeros(2, 2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ModelLoadError, match="no LoRA weights for the VOID transformer"):
        create_engine("void", weights=tiny, lora=tmp_path / "other.safetensors")
    sd = load_file(str(tiny_lora))  # a LoRA made for a wider model: shapes do not fit
    wide = {k: torch.zeros(v.shape[0] * 2 if "lora_B" in k else v.shape[0], *v.shape[1:])
            for k, v in sd.items()}
    save_file(wide, str(tmp_path / "wide.safetensors"))
    engine = create_engine("void", weights=tiny, lora=tmp_path / "wide.safetensors", **SMALL)
    with pytest.raises(ModelLoadError, match="does not fit the VOID transformer"):
        engine.pipeline(1)
