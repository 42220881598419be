"""The `void` engine on the tiny random-weight model (../shared/parity/tiny_void): defaults from
the weights folder, pass 1 + pass 2 on a 29-frame clip, shots longer than two windows, seeding,
loading errors, and every reference-bug fix option by name."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from void_engine.engines.base import RemovalParams, create_engine
from void_engine.errors import InputError, ModelLoadError

FAST = dict(steps=2, pass2_steps=2)


def _clip(t, h, w, seed=0):
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    frames = []
    for i in range(t):  # a smooth background with a disc moving right
        f = np.stack([(xx * 2 + i) % 256, (yy * 3) % 256, np.full_like(xx, 90)], -1)
        frames.append(f)
    clip = np.clip(np.stack(frames) + rng.randint(0, 8, (t, h, w, 1)), 0, 255).astype(np.uint8)
    qm = np.full((t, h, w), 255, np.uint8)
    for i in range(t):
        cx = 8 + i
        qm[i, (yy - h // 2) ** 2 + (xx - cx) ** 2 < 36] = 0
        qm[i, h - 8:, :] = 127
    return clip, qm


@pytest.fixture(scope="module")
def engine(parity_dir):
    return create_engine("void", weights=parity_dir / "tiny_void", device="cpu")


@pytest.fixture(scope="module")
def small_engine(parity_dir):
    # A smaller working size keeps the long-shot test cheap on 2 cores.
    return create_engine("void", weights=parity_dir / "tiny_void", device="cpu",
                         model_size=(32, 48), window_frames=21)


def test_defaults_from_tiny_weights(engine):
    assert engine.random_weight and "RANDOM-WEIGHT" in engine.description
    assert engine.model_size == (64, 112) and engine.window_frames == 21
    assert engine.frame_rules.temporal_multiple == 4 and engine.frame_rules.odd_k
    assert engine.frame_rules.min_frames == 21 and engine.supports_pass2


def test_29_frames_pass1_and_pass2(engine):
    clip, qm = _clip(29, 64, 112)
    calls = []
    out = engine.remove(clip, qm, "A wooden table", RemovalParams(seed=3, passes="2", **FAST),
                        progress=lambda d, t: calls.append((d, t)))
    assert out.shape == clip.shape and out.dtype == np.uint8
    assert calls and calls[-1][0] == calls[-1][1]  # progress reaches its total
    assert 2 in engine._pipes and engine._pipes[2].text_encoder is engine._pipes[1].text_encoder


def test_seeded_not_global_rng(engine):
    clip, qm = _clip(21, 64, 112)
    torch.manual_seed(0)
    a = engine.pass1(clip, qm, "p", RemovalParams(seed=5, **FAST))
    torch.manual_seed(123)  # the reference's unseeded global RNG must not leak in
    b = engine.pass1(clip, qm, "p", RemovalParams(seed=5, **FAST))
    c = engine.pass1(clip, qm, "p", RemovalParams(seed=6, **FAST))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_longer_than_two_windows_pass1_and_pass2(small_engine):
    # 45 frames -> 12 latents; 6-latent windows [0,6) [2,8) [4,10) [6,12). The reference pass 2
    # crashes beyond one window; here the warped noise covers every latent.
    clip, qm = _clip(45, 32, 48)
    out = small_engine.remove(clip, qm, "p", RemovalParams(seed=1, passes="2", **FAST))
    assert out.shape == clip.shape and out.dtype == np.uint8


def test_frame_rules_enforced(engine):
    clip, qm = _clip(25, 64, 112)  # 25 = 4*6+1, k even -> odd latent count
    with pytest.raises(InputError, match="k odd"):
        engine.pass1(clip, qm, "p", RemovalParams(**FAST))
    clip, qm = _clip(13, 64, 112)  # shorter than the 21-frame window
    with pytest.raises(InputError):
        engine.pass1(clip, qm, "p", RemovalParams(**FAST))


def test_option_uint8_round_vs_truncate():
    from void_engine.engines.void.engine import to_uint8

    v = torch.tensor([0.0, 0.999, 0.5, 1.0 / 255 * 10.6, 1.2]).view(1, 5, 1, 1, 1).repeat(
        1, 1, 3, 1, 1)  # the pipeline's (b, T, 3, H, W) frames
    assert to_uint8(v, "round")[:, 0, 0, 0].tolist() == [0, 255, 128, 11, 255]
    assert to_uint8(v, "truncate")[:, 0, 0, 0].tolist() == [0, 254, 127, 10, 255]
    with pytest.raises(InputError):
        to_uint8(v, "floor")


def test_option_pass2_mask_binary_vs_trimask(parity_dir):
    from void_engine.engines.void.pipeline_void import mask_condition

    m = torch.tensor([0.0, 128 / 255, 192 / 255, 1.0])
    assert mask_condition(m, "binary").tolist() == [0, 1, 1, 1]  # reference pass 2
    assert torch.allclose(mask_condition(m, "trimask_pass2"),
                          torch.tensor([0, 127 / 255, 1, 1]))  # training levels
    with pytest.raises(InputError):
        create_engine("void", weights=parity_dir / "tiny_void", pass2_mask="quad")


def test_option_noise_mode(small_engine, parity_dir):
    from void_engine.engines.void.noise_warp import aligned_warped_noise
    from void_engine.optical_flow import dis_flow

    clip, _ = _clip(45, 32, 48)
    noise = aligned_warped_noise(clip, (4, 6), lambda a, b: dis_flow(a, b, "ultrafast"),
                                 torch.Generator().manual_seed(0))
    assert noise.shape == (1, 12, 16, 4, 6)
    per_channel = noise.std(dim=(1, 3, 4))  # renormalised to unit variance per channel
    assert torch.allclose(per_channel, torch.ones_like(per_channel), atol=1e-4)
    assert noise.mean(dim=(1, 3, 4)).abs().max() < 1e-4
    faithful = create_engine("void", weights=parity_dir / "tiny_void", model_size=(32, 48),
                             noise_mode="faithful")
    with pytest.raises(InputError, match="aligned"):
        faithful.warped_noise(clip, 0, 12)


def test_reference_decode_frame_counts(parity_dir):
    from void_engine.engines.void.vae_decode import (
        VoidAutoencoderKLCogVideoX,
        decode_chunks,
        decoded_frame_count,
    )

    assert decode_chunks(4) == [(0, 1), (1, 3), (3, 4)]
    assert decoded_frame_count(22) == 85 and decoded_frame_count(50) == 197
    vae = VoidAutoencoderKLCogVideoX.from_pretrained(str(parity_dir / "tiny_void" / "vae"))
    z = torch.randn(1, 16, 5, 4, 6, generator=torch.Generator().manual_seed(0))
    assert vae.decode(z).sample.shape[2] == 17  # lone last latent still upsampled in time


def test_strict_checkpoint_loading(tmp_path, parity_dir):
    from safetensors.torch import load_file, save_file

    from void_engine.engines.void.loading import load_transformer, read_json

    cfg = read_json(parity_dir / "tiny_void" / "transformer" / "config.json")
    sd = load_file(str(parity_dir / "tiny_void" / "void_pass1.safetensors"))
    model = load_transformer(cfg, parity_dir / "tiny_void" / "void_pass1.safetensors",
                             torch.float32)
    assert model.config.in_channels == 48 and not any(p.is_meta for p in model.parameters())
    sd.pop("proj_out.bias")
    save_file(sd, str(tmp_path / "partial.safetensors"))
    with pytest.raises(ModelLoadError, match="does not match"):
        load_transformer(cfg, tmp_path / "partial.safetensors", torch.float32)


def test_base_folder_resolution_offline(tmp_path):
    from void_engine.engines.void.loading import resolve_base_folder

    with pytest.raises(ModelLoadError, match="HF_HUB_OFFLINE"):
        resolve_base_folder("nobody-here/not-a-model")
    (tmp_path / "vae").mkdir()
    with pytest.raises(ModelLoadError, match="incomplete"):
        resolve_base_folder(tmp_path)
    with pytest.raises(ModelLoadError):
        create_engine("void", weights=tmp_path / "missing")


def test_licence_notice_and_fp8_memory_mode(parity_dir, capsys):
    from void_engine.engines.void.pipeline_void import VOIDPipeline

    pipe = VOIDPipeline.from_void_checkpoint(parity_dir / "tiny_void", 1, device="cpu",
                                             dtype="bf16", memory_mode="fp8")
    assert capsys.readouterr().err.count("CogVideoX licence") == 1
    assert pipe.transformer.transformer_blocks[0].ff.net[2].weight.dtype == torch.float8_e4m3fn
    video = torch.rand(1, 3, 5, 32, 48, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(1, 1, 5, 32, 48)
    out = pipe(video, mask, "p", num_inference_steps=1, window_frames=5,
               generator=torch.Generator().manual_seed(0), output_type="latent")
    assert out.latents.dtype == torch.bfloat16 and torch.isfinite(out.latents).all()


def test_raft_large_from_local_file(tmp_path):
    from torchvision.models.optical_flow import raft_large

    from void_engine.optical_flow import load_raft_large, raft_flow

    torch.manual_seed(0)
    torch.save(raft_large(weights=None).state_dict(), tmp_path / "raft.pth")  # random weights
    model = load_raft_large(tmp_path / "raft.pth")
    a, _ = _clip(2, 36, 52)
    flow = raft_flow(a[0], a[1], model, num_updates=2)
    assert flow.shape == (36, 52, 2) and flow.dtype == np.float32
    torch.save({"nope": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ModelLoadError):
        load_raft_large(tmp_path / "bad.pth")


def test_pass2_reuses_pass1_work_without_changing_the_result(parity_dir, monkeypatch):
    """Pass 2 of the clip pass 1 just ran neither re-encodes the prompt with T5 nor VAE-encodes
    the same (seeded, noise-augmented) video again, and gives the same frames as a pass 2 that
    computes both itself."""
    clip, qm = _clip(21, 32, 48)
    p1 = np.roll(clip, 1, axis=2)  # any pass-1 frames will do for pass 2's warped noise
    opts = dict(weights=parity_dir / "tiny_void", device="cpu", model_size=(32, 48))
    fresh = create_engine("void", **opts).pass2(clip, qm, "a table", p1,
                                                RemovalParams(seed=2, **FAST))
    engine = create_engine("void", **opts)
    engine.pass1(clip, qm, "a table", RemovalParams(seed=2, **FAST))
    t5_calls, vae_video_calls = [], []
    pipe2 = engine.pipeline(2)
    t5, vae_video = pipe2._t5_embeds, pipe2.prepare_video_latents
    monkeypatch.setattr(pipe2, "_t5_embeds", lambda p, *a: t5_calls.append(p) or t5(p, *a))
    monkeypatch.setattr(pipe2, "prepare_video_latents",
                        lambda *a, **k: vae_video_calls.append(a) or vae_video(*a, **k))
    again = engine.pass2(clip, qm, "a table", p1, RemovalParams(seed=2, **FAST))
    assert t5_calls == [[""]]  # only the empty negative prompt: "a table" is kept from pass 1
    assert not vae_video_calls
    engine.pass2(clip, qm, "a table", p1, RemovalParams(seed=2, **FAST))
    assert t5_calls == [[""]]  # and "" from now on
    assert np.array_equal(again, fresh)
