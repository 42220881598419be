"""Gemini backend: request building and error mapping with a fake google-genai client (the
optional extra is not installed here), and the key never leaking."""
from __future__ import annotations

import importlib.util
import json
import logging
from types import SimpleNamespace

import numpy as np
import pytest

from void_engine.masks.grid import Grid
from void_engine.masks.vlm.client import VlmConfig, ask, make_backend
from void_engine.masks.vlm.errors import VlmError
from void_engine.masks.vlm.prompt import build_request

ANSWER = {"affected_objects": [], "scene_description": "an empty table", "confidence": 0.5}


class FakeModels:
    def __init__(self, outcomes):
        self.outcomes = list(outcomes)
        self.calls = []

    def generate_content(self, **kwargs):
        self.calls.append(kwargs)
        out = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(out, Exception):
            raise out
        return SimpleNamespace(text=out)


class APIError(Exception):  # shaped like google.genai.errors.APIError
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def request():
    frames = {i: np.full((48, 80, 3), 90 + i, np.uint8) for i in (0, 5)}
    blacks = {i: np.full((48, 80), 255, np.uint8) for i in (0, 5)}
    return build_request(frames, blacks, instruction="remove the cup",
                         grid=Grid.for_size(80, 48), num_frames=6)


def backend(outcomes, **cfg):
    client = SimpleNamespace(models=FakeModels(outcomes))
    cfg = {"backend": "gemini", "model": "gemini-2.5-pro", "backoff_s": 0.0, **cfg}
    return make_backend(VlmConfig(**cfg), client=client), client.models


def test_request_is_frames_only_temperature_zero_json_schema():
    b, models = backend([json.dumps(ANSWER)])
    res = ask(b, request(), sleep=lambda s: None)
    assert res.answer.scene_description == "an empty table"
    call = models.calls[0]
    assert call["model"] == "gemini-2.5-pro"
    parts = call["contents"][0]["parts"]
    images = [p["inline_data"] for p in parts if "inline_data" in p]
    assert len(images) == 2 and all(i["mime_type"] == "image/jpeg" for i in images)
    assert all(i["data"][:2] == b"\xff\xd8" for i in images)  # real JPEG bytes
    assert "remove the cup" in parts[-1]["text"]
    conf = call["config"]
    assert conf["temperature"] == 0 and conf["response_mime_type"] == "application/json"
    assert conf["response_json_schema"]["additionalProperties"] is False
    # frames only: every part is a JPEG or the text, no video upload
    assert all(set(p) == {"text"} or p["inline_data"]["mime_type"] == "image/jpeg"
               for p in parts)


@pytest.mark.parametrize("exc,kind", [
    (APIError(429, "quota"), "rate_limited"), (APIError(503, "busy"), "server_error"),
    (APIError(400, "bad"), "http_error"), (TimeoutError("slow"), "timeout"),
])
def test_errors_map_to_kinds(exc, kind):
    b, _ = backend([exc])
    with pytest.raises(VlmError) as e:
        b.complete(request())
    assert e.value.kind == kind


def test_rate_limit_is_retried_with_backoff_then_succeeds():
    b, models = backend([APIError(429, "quota"), APIError(500, "x"), json.dumps(ANSWER)],
                        max_retries=2, backoff_s=0.5)
    waits = []
    res = ask(b, request(), sleep=waits.append)
    assert res.attempts == 3 and waits == [0.5, 1.0]  # doubling back-off
    assert len(models.calls) == 3


def test_retries_are_bounded():
    b, models = backend([APIError(429, "quota")], max_retries=3)
    with pytest.raises(VlmError, match="rate_limited"):
        ask(b, request(), sleep=lambda s: None)
    assert len(models.calls) == 4


@pytest.mark.skipif(importlib.util.find_spec("google.genai") is not None,
                    reason="google-genai installed: the missing-extra message is not shown")
def test_missing_extra_is_a_clear_config_error_and_key_is_not_leaked(monkeypatch, caplog):
    monkeypatch.setenv("GEMINI_API_KEY", "AIza-secret-key")
    with caplog.at_level(logging.DEBUG), pytest.raises(ValueError) as e:
        make_backend(VlmConfig(backend="gemini", model="gemini-2.5-pro"))
    assert "void-batch[gemini]" in str(e.value)
    assert "AIza-secret-key" not in str(e.value) + caplog.text


def test_public_config_has_no_secret(monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "AIza-secret-key")
    cfg = VlmConfig(backend="gemini", api_key_env="GEMINI_API_KEY")
    assert cfg.api_key() == "AIza-secret-key"
    assert "AIza-secret-key" not in json.dumps(cfg.public())


def test_vlm_config_from_env(monkeypatch):
    for k in ("VOID_VLM_URL", "VOID_VLM_BACKEND", "VOID_VLM_MODEL", "VOID_VLM_CACHE"):
        monkeypatch.delenv(k, raising=False)
    assert VlmConfig.from_env() is None  # no VLM configured: the fallback path
    monkeypatch.setenv("VOID_VLM_URL", "http://vlm:8000/v1")
    monkeypatch.setenv("VOID_VLM_MODEL", "Qwen/Qwen2.5-VL-72B-Instruct")
    c = VlmConfig.from_env()
    assert (c.backend, c.base_url, c.model) == ("openai", "http://vlm:8000/v1",
                                                "Qwen/Qwen2.5-VL-72B-Instruct")
