"""Credentials never survive into a stored, logged or shown error text."""
from __future__ import annotations

import pytest

from void_engine.redact import MASK, redact, redact_data


@pytest.mark.parametrize("text,secret", [
    # an HTTP error body echoing the request headers, as a proxy or gateway does
    ('HTTP 401: {"headers": {"Authorization": "Bearer abcDEF123456789xyz"}}', "abcDEF123456789xyz"),
    ("authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
    ("Authorization=opaque-credential-value", "opaque-credential-value"),
    ('"authorization": "token ghtoken0123456789"', "ghtoken0123456789"),
    ("{'x-api-key': 'k-12345678-abcdef'}", "k-12345678-abcdef"),
    ("x-goog-api-key: ZZZ-secret-key-ZZZ", "ZZZ-secret-key-ZZZ"),
    ("GET https://generativelanguage.googleapis.com/v1/models?key=AIzaSyA1234567890abcdefghij",
     "AIzaSyA1234567890abcdefghij"),
    ("cannot reach https://alice:s3cr3t-pw@vlm.example.com:8000/v1", "s3cr3t-pw"),
    ("cannot reach https://alice:s3cr3t-pw@vlm.example.com:8000/v1", "alice"),
    ('{"api_key": "plain-looking-value"}', "plain-looking-value"),
    ("password=hunter2hunter2&user=bob", "hunter2hunter2"),
    ("bad key sk-proj-AbCdEfGh12345678 given", "sk-proj-AbCdEfGh12345678"),
    ("token hf_abcdefghijklmnopqrstu expired", "hf_abcdefghijklmnopqrstu"),
    ("id eyJhbGciOiJI.eyJzdWIiOiIx.c2lnbmF0dXJl", "eyJhbGciOiJI.eyJzdWIiOiIx.c2lnbmF0dXJl"),
    ("aws AKIAABCDEFGHIJKLMNOP", "AKIAABCDEFGHIJKLMNOP"),
])
def test_credentials_are_removed(text, secret):
    out = redact(text)
    assert secret not in out and MASK in out


def test_values_of_secret_environment_variables_are_removed_whatever_their_shape(monkeypatch):
    monkeypatch.setenv("VOID_VLM_API_KEY", "qq.no-known-shape.qq")
    assert redact("server said: invalid credential qq.no-known-shape.qq") == \
        f"server said: invalid credential {MASK}"


@pytest.mark.parametrize("text", [
    "HTTP 503 from http://vlm-host:8000/v1: overloaded",
    "out_of_range: grid cell row=8 outside 0..7 at affected_objects/0",
    "unknown field(s) ['needs_trajectory'] at affected_objects/0",
    '{"cache_key": "3f2a", "max_tokens": 512, "prompt_tokens": 10}',
    "token limit exceeded; basic authentication required",
    "shot BigBen: quadmask has 49 frames but the plate has 50",
])
def test_ordinary_text_is_untouched(text):
    assert redact(text) == text


def test_nested_data_and_none():
    assert redact(None) is None
    data = {"error": "Bearer abcdefgh1234", "n": 3, "list": ["https://u:p@h/x", 1.5]}
    assert redact_data(data) == {"error": f"Bearer {MASK}", "n": 3,
                                 "list": [f"https://{MASK}@h/x", 1.5]}


def test_vlm_config_reports_its_url_without_user_info():
    from void_engine.masks.vlm.client import VlmConfig

    public = VlmConfig(base_url="https://bob:pw123456@vlm.example/v1").public()
    assert public["base_url"] == f"https://{MASK}@vlm.example/v1"
