"""The VLM judge of the morphing gate, against the scripted loopback VLM: it can add pass 2,
never remove it, is not asked when the measure already says yes, and a failing judge leaves
the measured decision (with a redacted reason)."""
from __future__ import annotations

import json

import pytest

from testkit.masks import decoded_for
from testkit.synth import gate_clip
from void_engine.masks.gate import morphing_gate
from void_engine.masks.judge import OUTLINE, SCHEMA, vlm_judge
from void_engine.masks.vlm.client import VlmConfig


def cfg(server, **kw) -> VlmConfig:
    return VlmConfig(**{"model": "scripted-judge", "base_url": server.url, "timeout_s": 5.0,
                        "max_retries": 0, "backoff_s": 0.01, "reask": 0, "max_side": 128, **kw})


def verdict(run: bool, confidence: float = 0.9) -> tuple:
    return ("answer", json.dumps({"run_pass2": run, "confidence": confidence,
                                  "why": "the pillow wobbles" if run else "rigid"}))


@pytest.fixture
def rigid(tmp_path):
    return decoded_for(tmp_path, *gate_clip("rigid"))


def test_judge_adds_pass2_the_measure_did_not_ask_for(rigid, vlm_server):
    vlm_server.play(verdict(True))
    r = morphing_gate(*rigid, judge=vlm_judge(cfg(vlm_server)))
    assert r.score < r.threshold  # measured: no
    assert r.run_pass2 and r.details["decision"] == "judge added pass 2"
    assert r.details["judge"]["why"] == "the pillow wobbles"
    req = vlm_server.requests[0]
    content = req["messages"][1]["content"]
    assert sum(c["type"] == "image_url" for c in content) == 6  # sampled pass-1 frames
    assert "magenta outline" in content[-1]["text"] and OUTLINE == (255, 0, 255)
    assert req["response_format"]["json_schema"]["schema"] == SCHEMA


def test_unsure_or_negative_judge_adds_nothing(rigid, vlm_server):
    vlm_server.play(verdict(True, confidence=0.2))
    unsure = morphing_gate(*rigid, judge=vlm_judge(cfg(vlm_server), min_confidence=0.5))
    assert not unsure.run_pass2 and unsure.details["judge"]["said"] is True
    vlm_server.play(verdict(False))
    no = morphing_gate(*rigid, judge=vlm_judge(cfg(vlm_server)))
    assert not no.run_pass2 and no.details["decision"] == "measured"


def test_judge_is_not_asked_when_the_measure_runs_pass2(tmp_path, vlm_server):
    vlm_server.play(verdict(False))
    r = morphing_gate(*decoded_for(tmp_path, *gate_clip("morph")),
                      judge=vlm_judge(cfg(vlm_server)))
    assert r.run_pass2 and r.details["judge"]["asked"] is False
    assert vlm_server.requests == []  # a "no" could not remove pass 2: not worth a call


def test_failing_judge_keeps_the_measured_decision_and_leaks_no_key(rigid, vlm_server,
                                                                    monkeypatch):
    monkeypatch.setenv("VOID_VLM_API_KEY", "sk-judge-secret-0123456789")
    vlm_server.play(("echo", 400))  # the error body quotes our Authorization header
    r = morphing_gate(*rigid, judge=vlm_judge(cfg(vlm_server)))
    assert not r.run_pass2 and r.details["decision"] == "measured"
    err = r.details["judge"]["error"]
    assert err.startswith("http_error: HTTP 400") and "'authorization': '***" in err
    assert "sk-judge-secret" not in json.dumps(r.details)


def test_judge_that_raises_adds_nothing(rigid):
    def broken(video, masks):
        raise RuntimeError("boom with token=abcdef123456")

    r = morphing_gate(*rigid, judge=broken)
    assert not r.run_pass2 and r.details["judge"]["error"] == "RuntimeError: boom with token=***"
