"""Asking a VLM, backend-independent: configuration, bounded retries with back-off, one re-ask
on an invalid answer, and an on-disk answer cache keyed by (backend, model, PROMPT_VERSION,
content hash of the request) so a rerun never pays the VLM twice.

A backend only has to turn a VlmRequest into text in one attempt (`complete`) and map its
failures onto VlmError kinds (rate_limited, server_error, timeout, connection, http_error).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from void_engine.masks.vlm.errors import REASKABLE, VlmError
from void_engine.masks.vlm.prompt import PROMPT_VERSION, VlmRequest
from void_engine.masks.vlm.schema import VlmAnswer, parse_answer
from void_engine.redact import redact

log = logging.getLogger(__name__)


@dataclass
class VlmConfig:
    """Where and how to ask. API keys are read from the environment variable named here,
    never stored in the config (so configs and reports can be logged safely)."""

    backend: str = "openai"  # "openai" (any OpenAI-compatible server) | "gemini"
    model: str = "Qwen/Qwen2.5-VL-7B-Instruct"
    base_url: str | None = None  # e.g. http://vlm-host:8000/v1 (vLLM / Ollama / SGLang)
    api_key_env: str = "VOID_VLM_API_KEY"  # gemini default: GEMINI_API_KEY
    timeout_s: float = 120.0
    max_retries: int = 3  # extra attempts after the first on 429 / 5xx / timeout
    backoff_s: float = 2.0  # first back-off; doubles per retry
    max_backoff_s: float = 30.0
    reask: int = 1  # re-asks after an invalid answer (bad JSON, schema violation)
    response_format: str = "json_schema"  # "json_schema" | "json_object" | "none"
    frames: int = 8  # frames shown to the model
    max_side: int = 768  # long side of the frames shown
    min_grid: int = 8
    cache_dir: str | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> VlmConfig | None:
        """The workers' VLM from VOID_VLM_URL / VOID_VLM_MODEL / VOID_VLM_BACKEND /
        VOID_VLM_CACHE, or None (= deterministic fallback) when none is configured."""
        env = os.environ
        backend = env.get("VOID_VLM_BACKEND", "openai")
        if not env.get("VOID_VLM_URL") and backend != "gemini":
            return None
        kw = {"backend": backend, "base_url": env.get("VOID_VLM_URL") or None,
              "cache_dir": env.get("VOID_VLM_CACHE") or None}
        if env.get("VOID_VLM_MODEL"):
            kw["model"] = env["VOID_VLM_MODEL"]
        if backend == "gemini":
            kw["api_key_env"] = "GEMINI_API_KEY"
        return cls(**kw)

    def api_key(self) -> str | None:
        names = [self.api_key_env]
        names += ["GEMINI_API_KEY", "GOOGLE_API_KEY"] if self.backend == "gemini" else [
            "OPENAI_API_KEY"]
        for name in names:
            if os.environ.get(name):
                return os.environ[name]
        return None

    def public(self) -> dict:
        """The config as reportable data (no secrets: only the env variable's name)."""
        return {"backend": self.backend, "model": self.model, "base_url": redact(self.base_url),
                "api_key_env": self.api_key_env, "timeout_s": self.timeout_s,
                "max_retries": self.max_retries, "response_format": self.response_format,
                "frames": self.frames, "max_side": self.max_side, "min_grid": self.min_grid}


class VlmBackend(Protocol):
    config: VlmConfig

    def complete(self, request: VlmRequest) -> str:
        """One attempt: the model's text, or VlmError."""


def make_backend(config: VlmConfig, client: object | None = None) -> VlmBackend:
    """Backend for config.backend; `client` injects a ready SDK client (tests, pooling)."""
    if config.backend == "openai":
        from void_engine.masks.vlm.openai_compat import OpenAICompatBackend
        return OpenAICompatBackend(config, client=client)
    if config.backend == "gemini":
        from void_engine.masks.vlm.gemini import GeminiBackend
        return GeminiBackend(config, client=client)
    raise ValueError(f"unknown VLM backend {config.backend!r} (openai or gemini)")


@dataclass
class AskResult:
    answer: VlmAnswer | Any  # what `parse` returned (a VlmAnswer for the quadmask question)
    raw_text: str
    attempts: int
    cached: bool
    cache_key: str
    errors: list[str]


def cache_key(config: VlmConfig, request: VlmRequest) -> str:
    payload = {"backend": config.backend, "model": config.model,
               "prompt_version": PROMPT_VERSION, "request": request.digest()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def ask(backend: VlmBackend, request: VlmRequest, *, sleep=time.sleep,
        parse: Callable[[str], Any] | None = None) -> AskResult:
    """Ask until a valid answer, within the config's retry and re-ask bounds. parse(text)
    validates the answer (raising VlmError); default: the quadmask answer of `request`.

    Raises VlmError (the last failure) when every attempt failed."""
    cfg = backend.config
    parse = parse or (lambda text: parse_answer(text, rows=request.rows, cols=request.cols,
                                                num_frames=request.num_frames))
    key = cache_key(cfg, request)
    cached = _cache_get(cfg, key, parse)
    if cached is not None:
        return cached
    errors: list[str] = []
    attempts = 0
    retries_left, reasks_left = cfg.max_retries, cfg.reask
    current = request
    delay = cfg.backoff_s
    while True:
        attempts += 1
        try:
            text = backend.complete(current)
            answer = parse(text)
        except VlmError as exc:
            errors.append(str(exc))
            log.warning("VLM %s attempt %d failed: %s", cfg.model, attempts, exc)
            if exc.retryable and retries_left > 0:
                retries_left -= 1
                sleep(min(delay, cfg.max_backoff_s))
                delay *= 2
                continue
            if exc.kind in REASKABLE and reasks_left > 0:
                reasks_left -= 1
                current = replace(request, text=request.text + (
                    f"\n\nYour previous answer was rejected ({exc}). Answer again with one "
                    "JSON object that follows the schema exactly."))
                continue
            raise
        result = AskResult(answer=answer, raw_text=text, attempts=attempts, cached=False,
                           cache_key=key, errors=errors)
        _cache_put(cfg, key, result)
        return result


def _cache_path(cfg: VlmConfig, key: str) -> Path | None:
    return Path(cfg.cache_dir) / f"{key}.json" if cfg.cache_dir else None


def _cache_get(cfg: VlmConfig, key: str, parse) -> AskResult | None:
    path = _cache_path(cfg, key)
    if path is None or not path.is_file():
        return None
    try:
        entry = json.loads(path.read_text())
        answer = parse(entry["raw_text"])
    except (OSError, ValueError, KeyError, VlmError) as exc:
        log.warning("ignoring unusable VLM cache entry %s: %s", path, exc)
        return None
    return AskResult(answer=answer, raw_text=entry["raw_text"], attempts=0, cached=True,
                     cache_key=key, errors=[])


def _cache_put(cfg: VlmConfig, key: str, result: AskResult) -> None:
    path = _cache_path(cfg, key)
    if path is None:
        return
    from void_engine.io.atomic import write_json

    write_json(path, {"backend": cfg.backend, "model": cfg.model,
                      "prompt_version": PROMPT_VERSION, "raw_text": result.raw_text,
                      "attempts": result.attempts}, what="VLM cache entry", indent=1)
