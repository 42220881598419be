"""Credentials out of any text that is stored, logged, reported or shown: bearer tokens, API
keys (header or query-string forms, known key shapes) and URL user-info."""
from __future__ import annotations

import re

_PATTERNS = [
    (re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 ***"),
    (re.compile(r"(?i)\b(authorization|x-api-key|api[-_]?key|x-goog-api-key|password|secret|"
                r"access[-_]?token|aws_secret_access_key|aws_access_key_id)"
                r"(['\"]?\s*[:=]\s*['\"]?)[^\s'\",&}]+"), r"\1\2***"),
    (re.compile(r"(?i)([?&](?:key|api_key|apikey|token|access_token|sig|signature)=)[^&\s'\"]+"),
     r"\1***"),
    (re.compile(r"\b(sk|pk|rk)-[A-Za-z0-9_-]{16,}"), "***"),  # OpenAI-style keys
    (re.compile(r"\bAIza[0-9A-Za-z_-]{20,}"), "***"),  # Google API keys
    (re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"), "***"),  # AWS access key ids
    (re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s:@]+(?::[^/\s@]*)?@"), r"\1***@"),
]


def redact(text: str) -> str:
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text
