"""VOIDPipeline follows diffusers' conventions: check_inputs raises ValueError, an output
dataclass unless return_dict=False, callback_on_step_end with _callback_tensor_inputs (and the
latents it returns are used), maybe_free_model_hooks at the end, every argument documented,
and from_pretrained keeps diffusers' meaning (a save_pretrained folder loads back)."""
from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from diffusers.callbacks import PipelineCallback

from void_engine.engines.void.pipeline_void import VOIDPipeline, VOIDPipelineOutput

H, W, T = 32, 48, 5


@pytest.fixture(scope="module")
def pipe(parity_dir):
    p = VOIDPipeline.from_void_checkpoint(parity_dir / "tiny_void", 1, device="cpu",
                                          dtype="fp32", notice=False)
    p.set_progress_bar_config(disable=True)
    return p


def _inputs(t=T):
    g = torch.Generator().manual_seed(0)
    video = torch.rand(1, 3, t, H, W, generator=g)
    mask = torch.zeros(1, 1, t, H, W)
    mask[..., 8:20, 10:30] = 1.0
    return video, mask


def _call(pipe, **kw):
    video, mask = kw.pop("inputs", _inputs())
    args = dict(prompt="a wooden table", num_inference_steps=2, window_frames=T,
                generator=torch.Generator().manual_seed(1),
                noise_aug_generator=torch.Generator().manual_seed(2))
    return pipe(video, mask, **{**args, **kw})


@pytest.mark.parametrize("change, message", [
    (dict(inputs=(torch.rand(1, 3, T, H, W), torch.zeros(1, 1, T, H, W - 16))), "mask"),
    (dict(inputs=(torch.rand(1, 3, 6, H, W), torch.zeros(1, 1, 6, H, W))), "4k\\+1"),
    (dict(inputs=(torch.rand(1, 3, T, 40, W), torch.zeros(1, 1, T, 40, W))), "divisible by 16"),
    (dict(prompt=None), "exactly one of `prompt`"),
    (dict(prompt_embeds=torch.zeros(1, 226, 32)), "exactly one of `prompt`"),
    (dict(prompt=["a", "b", "c"]), "3 prompts for a batch of 1"),
    (dict(mask_mode="quad"), "mask_mode"),
    (dict(num_inference_steps=0), "num_inference_steps"),
    (dict(output_type="gif"), "output_type"),
    (dict(latents=torch.zeros(1, 3, 16, 4, 4)), "start latents"),
    (dict(callback_on_step_end=lambda *a: {}, callback_on_step_end_tensor_inputs=["noise"]),
     "callback_on_step_end_tensor_inputs"),
])
def test_check_inputs_raises_value_errors(pipe, change, message):
    with pytest.raises(ValueError, match=message):
        _call(pipe, **change)


def test_output_dataclass_and_tuple(pipe):
    out = _call(pipe)
    assert isinstance(out, VOIDPipelineOutput)
    assert out.frames.shape == (1, T, 3, H, W) and out.latents.shape == (1, 2, 16, H // 8, W // 8)
    frames, latents = _call(pipe, return_dict=False)
    assert torch.equal(frames, out.frames) and torch.equal(latents, out.latents)
    as_np = _call(pipe, output_type="np").frames
    assert isinstance(as_np, np.ndarray) and as_np.shape == (1, T, H, W, 3)
    assert np.allclose(as_np, out.frames.permute(0, 1, 3, 4, 2).numpy())
    assert torch.equal(_call(pipe, output_type="latent").frames, out.latents)


def test_callback_on_step_end_receives_and_replaces_tensors(pipe):
    seen = []

    def callback(p, step, timestep, tensors):
        seen.append((step, int(timestep), sorted(tensors)))
        assert len(tensors["window_latents"]) == 1  # one temporal window
        if step == p.num_timesteps - 1:
            return {"latents": torch.zeros_like(tensors["latents"])}
        return {}

    out = _call(pipe, output_type="latent", callback_on_step_end=callback,
                callback_on_step_end_tensor_inputs=["latents", "window_latents"])
    assert [s for s, _, _ in seen] == [0, 1]
    assert seen[0][2] == ["latents", "window_latents"]
    assert torch.equal(out.latents, torch.zeros_like(out.latents))  # the returned latents won


def test_pipeline_callback_objects_bring_their_tensor_inputs(pipe):
    class Keep(PipelineCallback):
        tensor_inputs = ["mask_condition", "latents"]

        def __init__(self):
            super().__init__()
            self.kept = {}

        def callback_fn(self, pipeline, step_index, timestep, callback_kwargs):
            self.kept = dict(callback_kwargs)
            return {}

    keep = Keep()
    _call(pipe, output_type="latent", callback_on_step_end=keep)
    assert sorted(keep.kept) == ["latents", "mask_condition"]
    assert set(torch.unique(keep.kept["mask_condition"]).tolist()) == {0.0, 1.0}


def test_model_hooks_freed_at_the_end(pipe, monkeypatch):
    calls = []
    monkeypatch.setattr(pipe, "maybe_free_model_hooks", lambda: calls.append("freed"))
    _call(pipe, output_type="latent")
    assert calls == ["freed"]


def test_every_call_argument_is_documented():
    doc = VOIDPipeline.__call__.__doc__
    params = [p for p in inspect.signature(VOIDPipeline.__call__).parameters if p != "self"]
    missing = [p for p in params if f"{p}:" not in doc and f"{p} /" not in doc
               and f"/ {p}:" not in doc]
    assert not missing, missing


def test_from_pretrained_keeps_diffusers_meaning(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "saved")
    loaded = VOIDPipeline.from_pretrained(tmp_path / "saved")
    loaded.set_progress_bar_config(disable=True)
    assert type(loaded.vae) is type(pipe.vae) and loaded.add_noise_in_inpaint_model
    assert torch.equal(_call(loaded).frames, _call(pipe).frames)
