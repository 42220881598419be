"""A loopback OpenAI-compatible chat-completions server that plays a script of answers."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ScriptedVLM:
    """Each request pops the next step: ("answer", text) | ("status", code) |
    ("echo", code) | ("sleep", seconds, text). "echo" answers an error whose body quotes the
    request headers back, as some gateways and proxies do (credentials included). The last
    step repeats when the script runs out."""

    def __init__(self):
        self.script: list[tuple] = []
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def play(self, *steps: tuple) -> ScriptedVLM:
        self.script = list(steps)
        self.requests.clear()
        self.headers.clear()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _next(self) -> tuple:
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    def _handler(self):
        vlm = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if not self.path.endswith("/chat/completions"):
                    self._send(404, {"error": {"message": "not found"}})
                    return
                vlm.requests.append(json.loads(body))
                vlm.headers.append(dict(self.headers))
                step = vlm._next()
                if step[0] == "status":
                    self._send(step[1], {"error": {"message": f"scripted {step[1]}",
                                                   "type": "scripted"}},
                               {"retry-after-ms": "1"})
                    return
                if step[0] == "echo":
                    self._send(step[1], {"error": {
                        "message": f"rejected request with headers {dict(self.headers)}",
                        "type": "scripted"}})
                    return
                if step[0] == "sleep":
                    time.sleep(step[1])
                text = step[-1]
                self._send(200, {
                    "id": "chatcmpl-test", "object": "chat.completion", "created": 0,
                    "model": vlm.requests[-1].get("model", "?"),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": text}}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

            def _send(self, code, payload, headers=None):
                data = json.dumps(payload).encode()
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

        return Handler
