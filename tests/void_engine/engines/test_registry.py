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
