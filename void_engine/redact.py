"""Credentials out of every text that is stored, logged, reported or shown.

Error texts from remote services can carry secrets: an HTTP error body that echoes the request
headers (`Authorization: Bearer ...`), a URL with user-info (`https://user:pass@host`) or a key
in a query string (`?key=AIza...`). `redact` removes them before such a text goes anywhere; it
is the one home of that rule (VLM errors, cache entries, task and flow error messages).

Three nets, because no single one catches everything:
- the values of secret-looking environment variables of this process (exact matches: the
  surest catch, whatever the service's key format);
- credentials by context: authorization schemes, key/token/secret/password fields in headers,
  JSON and query strings, URL user-info;
- credentials by shape: well-known key formats (OpenAI, Google, Hugging Face, GitHub, Slack,
  AWS key ids, JWTs).
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping

MASK = "***"

_SECRET_ENV = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)
_MIN_ENV_SECRET = 6  # shorter values ("1", "true") would redact ordinary words

_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s:@]+(?::[^/\s@]*)?@")
# "Bearer" alone is specific enough; "basic"/"token" are ordinary words outside a header
_BEARER = re.compile(r"(?i)\b(bearer)(\s+)[A-Za-z0-9._~+/=:-]{4,}")
_AUTH_FIELD = re.compile(
    r"""(?ix)\b((?:proxy-)?authorization["']?\s*[:=]\s*["']?)
    ((?:bearer|basic|digest|token)\s+)?[^\s"',;}]+""")
_KEY_FIELD = re.compile(
    r"""(?ix)\b((?:x-(?:goog-)?)?api[_-]?key|access[_-]?token|refresh[_-]?token|id[_-]?token
    |auth[_-]?token|client[_-]?secret|secret(?:[_-]?access)?[_-]?key|secret|password|passwd
    |token|key|signature|sig|x-amz-security-token|x-amz-signature)
    (["']?\s*[:=]\s*["']?)[^\s"'&,;}]+""")
_SHAPES = re.compile(
    r"""\b(?:sk-(?:proj-|ant-)?[A-Za-z0-9_-]{8,}|AIza[0-9A-Za-z_-]{20,}|hf_[A-Za-z0-9]{16,}
    |gh[pousr]_[A-Za-z0-9]{20,}|xox[abposr]-[A-Za-z0-9-]{10,}|(?:AKIA|ASIA)[0-9A-Z]{16}
    |eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,})""", re.VERBOSE)


def _env_secrets() -> list[str]:
    values = {v for k, v in os.environ.items()
              if _SECRET_ENV.search(k) and len(v) >= _MIN_ENV_SECRET}
    return sorted(values, key=len, reverse=True)  # longest first: no partial leftovers


def redact(text: str | None) -> str | None:
    """`text` with credentials replaced by ***; None stays None."""
    if text is None:
        return None
    out = str(text)
    for value in _env_secrets():
        out = out.replace(value, MASK)
    out = _USERINFO.sub(lambda m: m["scheme"] + MASK + "@", out)
    out = _AUTH_FIELD.sub(lambda m: m[1] + (m[2] or "") + MASK, out)
    out = _BEARER.sub(lambda m: m[1] + m[2] + MASK, out)
    out = _KEY_FIELD.sub(lambda m: m[1] + m[2] + MASK, out)
    return _SHAPES.sub(MASK, out)


def redact_data(value):
    """Every string inside nested dicts/lists/tuples redacted (for details and cache meta)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: redact_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_data(v) for v in value)
    return value
