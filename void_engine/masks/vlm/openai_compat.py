"""OpenAI-compatible chat-completions backend (the default): a local vLLM, SGLang or Ollama
serving a Qwen-VL-class model, so unreleased footage never leaves the facility.

Frames go as base64 JPEG data URLs, temperature 0 and a fixed seed, and the answer schema as
`response_format` (vLLM/SGLang use it for guided decoding). The SDK's own retries are off
(max_retries=0): retry policy lives in client.ask, the same for every backend.
"""
from __future__ import annotations

import base64

from void_engine.masks.vlm.client import VlmConfig
from void_engine.masks.vlm.errors import VlmError
from void_engine.masks.vlm.prompt import VlmRequest
from void_engine.redact import redact

SEED = 0


class OpenAICompatBackend:
    def __init__(self, config: VlmConfig, client: object | None = None):
        self.config = config
        if client is None:
            import openai

            if not config.base_url:
                raise ValueError("the OpenAI-compatible VLM backend needs a base_url "
                                 "(e.g. http://localhost:8000/v1)")
            # local servers accept any key; the SDK insists on a non-empty one
            client = openai.OpenAI(base_url=config.base_url, api_key=config.api_key() or "none",
                                   timeout=config.timeout_s, max_retries=0)
        self.client = client

    def messages(self, request: VlmRequest) -> list[dict]:
        content: list[dict] = [
            {"type": "image_url",
             "image_url": {"url": "data:image/jpeg;base64," + base64.b64encode(img).decode()}}
            for img in request.images]
        content.append({"type": "text", "text": request.text})
        return [{"role": "system", "content": request.system},
                {"role": "user", "content": content}]

    def request_kwargs(self, request: VlmRequest) -> dict:
        kw = {"model": self.config.model, "messages": self.messages(request),
              "temperature": 0, "seed": SEED}
        if self.config.response_format == "json_schema":
            kw["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "vlm_answer", "schema": request.schema, "strict": True}}
        elif self.config.response_format == "json_object":
            kw["response_format"] = {"type": "json_object"}
        return kw

    def complete(self, request: VlmRequest) -> str:
        import openai

        try:
            resp = self.client.chat.completions.create(**self.request_kwargs(request))
        except openai.RateLimitError as exc:
            raise VlmError("rate_limited", f"HTTP 429 from {self.config.base_url}") from exc
        except openai.APITimeoutError as exc:
            raise VlmError("timeout", f"no answer from {self.config.base_url} within "
                                      f"{self.config.timeout_s:g} s") from exc
        except openai.APIConnectionError as exc:
            raise VlmError("connection", f"cannot reach {self.config.base_url}") from exc
        except openai.APIStatusError as exc:
            kind = "server_error" if exc.status_code >= 500 else "http_error"
            raise VlmError(kind, f"HTTP {exc.status_code} from {self.config.base_url}: "
                                 f"{_short(exc.message)}") from exc
        except openai.APIResponseValidationError as exc:
            raise VlmError("bad_response", f"unreadable response: {_short(str(exc))}") from exc
        choices = getattr(resp, "choices", None) or []
        if not choices or choices[0].message is None:
            raise VlmError("empty_answer", "the response has no choices")
        return choices[0].message.content or ""


def _short(text: str, n: int = 160) -> str:
    # redact before cutting: a cut could leave half a key that no pattern recognises
    text = " ".join(redact(str(text)).split())
    return text if len(text) <= n else text[: n - 1] + "…"
