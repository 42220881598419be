"""Gemini backend through `google-genai` (opt-in: `pip install void-batch[gemini]`).

Sends frames only (inline JPEG parts), temperature 0, JSON output constrained by the answer
schema. The key comes from the environment (GEMINI_API_KEY / GOOGLE_API_KEY or the variable
the config names) and is never logged or put in an error message.
"""
from __future__ import annotations

from void_engine.masks.vlm.client import VlmConfig
from void_engine.masks.vlm.errors import VlmError
from void_engine.masks.vlm.prompt import VlmRequest
from void_engine.redact import redact

SEED = 0


class GeminiBackend:
    def __init__(self, config: VlmConfig, client: object | None = None):
        self.config = config
        if client is None:
            try:
                from google import genai
            except ImportError as exc:
                raise ValueError("the Gemini backend needs google-genai: "
                                 "pip install 'void-batch[gemini]'") from exc
            key = config.api_key()
            if not key:
                raise ValueError(f"no Gemini API key: set {config.api_key_env} or "
                                 "GEMINI_API_KEY")
            # HttpOptions.timeout is in milliseconds
            client = genai.Client(api_key=key,
                                  http_options={"timeout": int(config.timeout_s * 1000)})
        self.client = client

    def request_kwargs(self, request: VlmRequest) -> dict:
        parts: list[dict] = [{"inline_data": {"mime_type": "image/jpeg", "data": img}}
                             for img in request.images]
        parts.append({"text": request.text})
        config = {"system_instruction": request.system, "temperature": 0, "seed": SEED,
                  "response_mime_type": "application/json"}
        if self.config.response_format == "json_schema":
            config["response_json_schema"] = request.schema
        return {"model": self.config.model, "contents": [{"role": "user", "parts": parts}],
                "config": config}

    def complete(self, request: VlmRequest) -> str:
        try:
            resp = self.client.models.generate_content(**self.request_kwargs(request))
        except Exception as exc:  # noqa: BLE001 - the SDK's error classes are optional imports
            raise _classify(exc) from exc
        text = getattr(resp, "text", None)
        if not text:
            raise VlmError("empty_answer", "Gemini returned no text (blocked or empty)")
        return text


def _classify(exc: Exception) -> VlmError:
    code = getattr(exc, "code", None)
    name = type(exc).__name__
    if isinstance(code, int):
        if code == 429:
            return VlmError("rate_limited", "HTTP 429 from Gemini")
        if code >= 500:
            return VlmError("server_error", f"HTTP {code} from Gemini")
        # the message may echo request details but never the key (it travels in a header)
        detail = getattr(exc, "message", "")
        return VlmError("http_error", redact(f"HTTP {code} from Gemini: {detail}")[:200])
    if "Timeout" in name or isinstance(exc, TimeoutError):
        return VlmError("timeout", "no answer from Gemini in time")
    if "Connect" in name or isinstance(exc, ConnectionError):
        return VlmError("connection", "cannot reach Gemini")
    return VlmError("backend_error", f"Gemini call failed ({name})")
