"""The engine registry: names and constructor options are checked, never silently ignored."""
from __future__ import annotations

import pytest

from void_batch.cli import main
from void_engine.engines.base import available_engines, create_engine, engine_accepts
from void_engine.errors import InputError


def test_known_engines_and_their_options():
    assert {"propagate", "void"} <= set(available_engines())
    assert engine_accepts("void", "memory_mode") and engine_accepts("void", "weights")
    assert not engine_accepts("void", "memroy_mode")
    assert not engine_accepts("propagate", "weights")


def test_unknown_engine_and_misspelt_option_are_input_errors():
    with pytest.raises(InputError, match="unknown engine 'voidd'"):
        create_engine("voidd")
    with pytest.raises(InputError, match=r"engine 'void' has no option\(s\) memroy_mode"):
        create_engine("void", weights="/nonexistent", memroy_mode="fp8")


def test_cli_reports_a_misspelt_engine_option(samples_dir, tmp_path, capsys):
    shot = samples_dir / "BigBen"
    rc = main(["remove", "--video", str(shot / "input_video.mp4"), "--engine", "propagate",
               "--engine-opt", "bogus=1", "--out", str(tmp_path / "o.mkv")])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert rc == 1
    assert err == "error: engine 'propagate' has no option(s) bogus"
    assert not list(tmp_path.iterdir())  # nothing half-written


# --- engine facts: known from the class and its options/config files, no model loaded ---------
def _configs_only(parity_dir, dest, transformer_config=None):
    """A VOID weights folder holding only the small json configs (no weight file at all)."""
    import json
    import shutil

    tiny = parity_dir / "tiny_void"
    for part in ("transformer", "vae", "text_encoder", "scheduler"):
        (dest / part).mkdir(parents=True)
        for f in (tiny / part).glob("*.json"):
            shutil.copy(f, dest / part / f.name)
    if transformer_config is not None:
        (dest / "transformer" / "config.json").write_text(json.dumps(transformer_config))
    assert not list(dest.rglob("*.safetensors"))
    return dest


def test_engine_facts_match_the_built_engines(parity_dir):
    import testkit.engines  # noqa: F401  (registers the plugin engines)
    from void_engine.engines.base import DEFAULT_MODEL_SIZE, EngineFacts, engine_facts

    cases = [("propagate", {}), ("test-twopass", {}), ("test-identity", {}),
             ("void", {"weights": parity_dir / "tiny_void"}),
             ("void", {"weights": parity_dir / "tiny_void", "model_size": (32, 48),
                       "window_frames": 29})]
    for name, kwargs in cases:
        facts = engine_facts(name, **kwargs)
        assert facts == EngineFacts.of(create_engine(name, **kwargs)), (name, kwargs)
    assert engine_facts("propagate").model_size == DEFAULT_MODEL_SIZE == (384, 672)
    assert not engine_facts("propagate").supports_pass2
    assert engine_facts("test-twopass").model_size == (32, 48)
    tiny = engine_facts("void", weights=parity_dir / "tiny_void")
    assert tiny.supports_pass2 and tiny.model_size == (64, 112)
    assert tiny.frame_rules.min_frames == 21 and tiny.frame_rules.odd_k


def test_void_facts_from_a_folder_with_configs_only(parity_dir, tmp_path):
    import ast
    import json

    from void_engine.engines.base import engine_facts

    folder = _configs_only(parity_dir, tmp_path / "tiny")
    facts = engine_facts("void", weights=folder)
    assert facts.model_size == (64, 112) and facts.frame_rules.min_frames == 21
    # The real-size base config: the default model size and the 85-frame window.
    keys = json.loads((parity_dir / "void_transformer_keys_5b.json").read_text())
    base = keys["base_config_reconstructed"]
    base = base if isinstance(base, dict) else ast.literal_eval(base)
    real = _configs_only(parity_dir, tmp_path / "real", transformer_config=base)
    facts = engine_facts("void", weights=real, window_frames=93)
    assert facts.model_size == (384, 672) and facts.frame_rules.min_frames == 93
    assert facts.frame_rules.temporal_multiple == 4 and facts.supports_pass2
    engine = create_engine("void", weights=real)  # constructing loads nothing either
    assert engine.model_size == (384, 672) and engine.frame_rules.min_frames == 85


def test_engine_facts_validate_like_create_engine(parity_dir, tmp_path):
    from void_engine.engines.base import engine_facts
    from void_engine.errors import ModelLoadError

    with pytest.raises(InputError, match="unknown engine"):
        engine_facts("voidd")
    with pytest.raises(InputError, match="has no option"):
        engine_facts("void", weights=parity_dir / "tiny_void", memroy_mode="fp8")
    with pytest.raises(InputError, match="needs --weights"):
        engine_facts("void")
    with pytest.raises(ModelLoadError, match="does not exist"):
        engine_facts("void", weights=tmp_path / "nowhere")
    with pytest.raises(InputError, match="window_frames"):
        engine_facts("void", weights=parity_dir / "tiny_void", window_frames=25)
    with pytest.raises(InputError, match="divisible by 16"):
        engine_facts("void", weights=parity_dir / "tiny_void", model_size=(30, 48))


def test_engine_facts_of_a_factory_function():
    from void_engine.engines.base import FrameRules, engine_facts, register_engine
    from void_engine.engines.propagate import PropagateEngine

    built = []

    @register_engine("test-factory")
    def make(flow_preset: str = "medium"):
        built.append(flow_preset)
        e = PropagateEngine(flow_preset=flow_preset)
        e.frame_rules = FrameRules(temporal_multiple=2)
        return e

    facts = engine_facts("test-factory", flow_preset="fast")
    assert built == ["fast"]  # no class to ask: the (model-free) factory is built
    assert facts.frame_rules == FrameRules(temporal_multiple=2)
