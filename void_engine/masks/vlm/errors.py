"""Why a VLM answer could not be used. Every failure carries a short machine-readable `kind`
(reported per shot, used to decide retries) and a one-line message naming the problem."""
from __future__ import annotations

from void_engine.redact import redact

# kinds worth asking again (transient), with back-off
RETRYABLE = frozenset({"rate_limited", "server_error", "timeout", "connection"})
# kinds worth one re-ask with the validation error quoted back to the model
REASKABLE = frozenset({"bad_json", "unknown_field", "out_of_range", "wrong_type", "schema",
                       "empty_answer"})


class VlmError(Exception):
    """A VLM call or answer that cannot be used. str() is '<kind>: <message>'. The message is
    redacted on the way in: backends quote HTTP bodies, which may echo request headers."""

    def __init__(self, kind: str, message: str):
        message = redact(message)
        super().__init__(message)
        self.kind = kind
        self.message = message

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE
