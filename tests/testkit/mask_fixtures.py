"""Fixtures of the mask tests (a pytest plugin, loaded by tests/conftest.py): the scripted VLM
server, the synthetic push clip on disk, and its VLM grid."""
from __future__ import annotations

import pytest

from testkit.synth import black_from, push_clip, write_video
from testkit.vlm import ScriptedVLM


@pytest.fixture(scope="session")
def vlm_server():
    server = ScriptedVLM()
    yield server
    server.close()


@pytest.fixture(scope="session")
def push(tmp_path_factory):
    """The push clip as plate + ground-truth black mask files, plus the arrays."""
    d = tmp_path_factory.mktemp("push")
    clip = push_clip()
    plate = write_video(str(d / "plate.mkv"), clip.frames)
    from void_engine.masks import maskio

    black = maskio.write_mask(str(d / "black.mp4"), black_from(clip.pusher), fps=12,
                              size=clip.frames.shape[1:3])
    return {"dir": d, "clip": clip, "plate": plate, "black": black}


@pytest.fixture
def grid(push):
    """The VLM grid of the synthetic push clip."""
    from void_engine.masks.grid import Grid

    h, w = push["clip"].frames.shape[1:3]
    return Grid.for_size(w, h)
