"""A RANDOM-WEIGHT VOID checkpoint in the real folder layout, for benchmarks (never for output):

    DIR/void_pass1.safetensors, DIR/void_pass2.safetensors   48-channel transformer state dicts
    DIR/transformer/config.json                               the base (33-channel) config
    DIR/vae/, DIR/text_encoder/                               random CogVideoX VAE, T5 encoder
    DIR/tokenizer/                                            a T5 tokenizer (see below)
    DIR/scheduler/scheduler_config.json                       the CogVideoX DDIM config

"full" uses the real configurations (5.57 B transformer, T5-v1.1-XXL encoder, 215 M VAE), so
shapes, FLOPs, memory and load times are the production ones; "tiny" uses the parity model's
sizes so the whole path runs on a CPU in seconds. The tokenizer is a small SentencePiece model
trained here on a few sentences (the real T5 vocabulary is not available offline): ids stay
below the embedding size, and tokenizing costs the same microseconds either way.
"""
from __future__ import annotations

import io
import json
import os
from pathlib import Path

import torch

TRANSFORMER = {
    "full": dict(num_attention_heads=48, attention_head_dim=64, num_layers=42, time_embed_dim=512,
                 text_embed_dim=4096),
    "tiny": dict(num_attention_heads=2, attention_head_dim=16, num_layers=2, time_embed_dim=32,
                 text_embed_dim=32),
}
TRANSFORMER_COMMON = dict(
    _class_name="CogVideoXTransformer3DModel", activation_fn="gelu-approximate",
    add_noise_in_inpaint_model=True, attention_bias=True, dropout=0.0, flip_sin_to_cos=True,
    freq_shift=0, in_channels=33, max_text_seq_length=226, norm_elementwise_affine=True,
    norm_eps=1e-5, out_channels=16, patch_bias=False, patch_size=2, patch_size_t=2,
    sample_frames=81, sample_height=300, sample_width=300, spatial_interpolation_scale=1.875,
    temporal_compression_ratio=4, temporal_interpolation_scale=1.0, timestep_activation_fn="silu",
    use_learned_positional_embeddings=False, use_rotary_positional_embeddings=True)
VAE = {
    "full": dict(block_out_channels=[128, 256, 256, 512], layers_per_block=3, norm_num_groups=32),
    "tiny": dict(block_out_channels=[8, 16, 16, 16], layers_per_block=1, norm_num_groups=4),
}
VAE_COMMON = dict(
    in_channels=3, out_channels=3, down_block_types=["CogVideoXDownBlock3D"] * 4,
    up_block_types=["CogVideoXUpBlock3D"] * 4, latent_channels=16, act_fn="silu", norm_eps=1e-6,
    temporal_compression_ratio=4, sample_height=480, sample_width=720, scaling_factor=0.7,
    force_upcast=True, use_quant_conv=False, use_post_quant_conv=False)
T5 = {  # T5 v1.1 encoder: XXL, and the parity model's tiny one
    "full": dict(d_model=4096, num_layers=24, num_heads=64, d_kv=64, d_ff=10240,
                 vocab_size=32128),
    "tiny": dict(d_model=32, num_layers=2, num_heads=2, d_kv=16, d_ff=64, vocab_size=225),
}
SCHEDULER = dict(
    _class_name="CogVideoXDDIMScheduler", beta_end=0.012, beta_schedule="scaled_linear",
    beta_start=0.00085, clip_sample=False, clip_sample_range=1.0, num_train_timesteps=1000,
    prediction_type="v_prediction", rescale_betas_zero_snr=True, sample_max_value=1.0,
    set_alpha_to_one=True, snr_shift_scale=1.0, steps_offset=0, timestep_spacing="trailing",
    trained_betas=None)
CORPUS = ["A wooden table with a blue box in a bright room.", "A ball rolls off the table.",
          "The empty street at night, wet asphalt reflecting the lights.",
          "A calm river with buildings reflecting on the water.", "A dog runs across the lawn.",
          "Two pillows are on the sofa in a living room.", "A red car drives down the road.",
          "Clouds move over the mountains in the evening light.", "Remove the object cleanly."]


def _randomize(module: torch.nn.Module, device) -> torch.nn.Module:
    """Materialise a meta-device module on `device` with small random weights (the cost of
    every op is the same as with trained weights)."""
    module = module.to_empty(device=device)
    g = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.02, generator=g)
    return module


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))


def write_transformer(folder: Path, size: str, dtype, device) -> None:
    from diffusers import CogVideoXTransformer3DModel
    from safetensors.torch import save_file

    base = {**TRANSFORMER_COMMON, **TRANSFORMER[size]}
    _write_json(folder / "transformer" / "config.json", base)
    cfg = {k: v for k, v in base.items() if k not in ("_class_name", "add_noise_in_inpaint_model")}
    with torch.device("meta"):
        model = CogVideoXTransformer3DModel.from_config({**cfg, "in_channels": 48})
    model = _randomize(model, device).to(dtype)
    sd = {k: v.contiguous().cpu() for k, v in model.state_dict().items()}
    del model
    save_file(sd, str(folder / "void_pass1.safetensors"))
    del sd
    # Pass 2 is another checkpoint of the same architecture: a second name for the same random
    # bytes (a hard link when the file system allows) costs no disk and loads the same.
    p2 = folder / "void_pass2.safetensors"
    try:
        os.link(folder / "void_pass1.safetensors", p2)
    except OSError:
        import shutil

        shutil.copyfile(folder / "void_pass1.safetensors", p2)


def write_vae(folder: Path, size: str, dtype, device) -> None:
    from diffusers import AutoencoderKLCogVideoX

    with torch.device("meta"):
        vae = AutoencoderKLCogVideoX.from_config({**VAE_COMMON, **VAE[size]})
    _randomize(vae, device).to(dtype).save_pretrained(str(folder / "vae"))


def write_text_encoder(folder: Path, size: str, dtype, device) -> None:
    from transformers import T5Config, T5EncoderModel

    config = T5Config(**T5[size], feed_forward_proj="gated-gelu", is_encoder_decoder=False,
                      use_cache=False, relative_attention_num_buckets=32,
                      relative_attention_max_distance=128, dropout_rate=0.0,
                      pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
                      tie_word_embeddings=False)
    with torch.device("meta"):
        model = T5EncoderModel(config)
    _randomize(model, device).to(dtype).save_pretrained(str(folder / "text_encoder"))


def write_tokenizer(folder: Path) -> None:
    import sentencepiece as spm
    from transformers import T5Tokenizer

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS * 4), model_writer=model, vocab_size=64,
        hard_vocab_limit=False, model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
        minloglevel=2)
    out = folder / "tokenizer"
    out.mkdir(parents=True, exist_ok=True)
    (out / "spiece.model").write_bytes(model.getvalue())
    _write_json(out / "tokenizer_config.json", dict(
        tokenizer_class="T5Tokenizer", model_max_length=226, legacy=True, extra_ids=100,
        eos_token="</s>", unk_token="<unk>", pad_token="<pad>"))
    T5Tokenizer.from_pretrained(str(out)).save_pretrained(str(out))  # as the loader reads it


def write_checkpoint(folder: str | os.PathLike, size: str = "full", dtype=torch.bfloat16,
                     device=None) -> Path:
    """Write every part (random weights) and return the folder, usable as --weights."""
    folder = Path(folder)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    folder.mkdir(parents=True, exist_ok=True)
    write_transformer(folder, size, dtype, device)
    write_vae(folder, size, dtype, device)
    write_text_encoder(folder, size, dtype, device)
    write_tokenizer(folder)
    _write_json(folder / "scheduler" / "scheduler_config.json", SCHEDULER)
    return folder
