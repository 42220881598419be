"""build_quadmask against a loopback OpenAI-compatible server playing scripted answers: each
answer gives a quadmask (path vlm), or the fallback with a specific error; never a crash."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from testkit.masks import TINY_SAM2, good_answer
from testkit.masks import read_quadmask_frames as read
from void_engine import quadmask
from void_engine.errors import InputError
from void_engine.masks import maskio
from void_engine.masks.reasoning import PROMPT_VERSION, build_quadmask
from void_engine.masks.vlm.client import VlmConfig


def cfg(server, tmp_path=None, **kw) -> VlmConfig:
    base = dict(model="scripted-qwen-vl", base_url=server.url, timeout_s=5.0, max_retries=2,
                backoff_s=0.01, frames=4, max_side=256)
    base.update(kw)
    return VlmConfig(**base)


def run(push, tmp_path, vlm, name="q.mp4", **kw):
    return build_quadmask(push["plate"], push["black"], str(tmp_path / name), shot_id="push",
                          instruction="remove the red box", vlm=vlm, **kw)


def test_good_answer_gives_all_four_values_where_expected(push, grid, vlm_server, tmp_path):
    clip = push["clip"]
    vlm_server.play(("answer", json.dumps(good_answer(clip, grid))))
    r = run(push, tmp_path, cfg(vlm_server))
    assert (r.path, r.error, r.vlm_model) == ("vlm", None, "scripted-qwen-vl")
    q = read(r.quadmask_uri)
    assert q.shape == clip.frames.shape[:3]
    # frame 0: nothing is affected yet (the convention), only the object
    assert set(np.unique(q[0])) == {quadmask.REMOVE, quadmask.KEEP}
    t = len(q) - 1
    assert set(np.unique(q[t])) == set(quadmask.VALUES)
    grey_px = grid.rasterize(grid.cells_touched(clip.pushed[t]), *q.shape[1:])
    pushed_only = clip.pushed[t] & ~clip.pusher[t]
    assert (q[t][pushed_only] == quadmask.AFFECTED).all()  # the pushed box: affected
    assert (q[t][clip.pusher[t] & grey_px] == quadmask.OVERLAP).all()  # object in grey cells
    assert (q[t][clip.pusher[t] & ~grey_px] == quadmask.REMOVE).all()  # object elsewhere
    assert (q[t][~grey_px & ~clip.pusher[t]] == quadmask.KEEP).all()
    # before first_appears_frame there is no grey
    assert not quadmask.affected_region(q[1:clip.contact]).any()
    # the request: frames only, temperature 0, schema-constrained, grid colour named
    req = vlm_server.requests[0]
    assert req["temperature"] == 0 and req["model"] == "scripted-qwen-vl"
    content = req["messages"][1]["content"]
    images = [c for c in content if c["type"] == "image_url"]
    assert len(images) == 4 and all(i["image_url"]["url"].startswith("data:image/jpeg;base64,")
                                    for i in images)
    assert "yellow grid" in content[-1]["text"] and "remove the red box" in content[-1]["text"]
    schema = req["response_format"]["json_schema"]["schema"]
    assert schema["additionalProperties"] is False
    assert r.details["vlm"]["prompt_version"] == PROMPT_VERSION
    assert r.details["vlm"]["objects"][0]["noun"] == "blue box"


def test_retry_after_429_then_good(push, grid, vlm_server, tmp_path):
    vlm_server.play(("status", 429), ("answer", json.dumps(good_answer(push["clip"], grid))))
    r = run(push, tmp_path, cfg(vlm_server))
    assert r.path == "vlm" and r.details["vlm"]["attempts"] == 2
    assert r.details["vlm"]["retried_errors"][0].startswith("rate_limited")


def test_persistent_429_falls_back_after_bounded_retries(push, vlm_server, tmp_path):
    vlm_server.play(("status", 429))
    r = run(push, tmp_path, cfg(vlm_server, max_retries=2))
    assert r.path == "fallback" and r.error.startswith("rate_limited: HTTP 429")
    assert len(vlm_server.requests) == 3  # first try + 2 retries, then stop
    assert quadmask.affected_region(read(r.quadmask_uri)).any()  # the fallback still marks


def test_server_error_falls_back(push, vlm_server, tmp_path):
    vlm_server.play(("status", 503))
    r = run(push, tmp_path, cfg(vlm_server, max_retries=1))
    assert r.path == "fallback" and r.error.startswith("server_error: HTTP 503")


def test_timeout_falls_back(push, grid, vlm_server, tmp_path):
    vlm_server.play(("sleep", 1.5, json.dumps(good_answer(push["clip"], grid))))
    r = run(push, tmp_path, cfg(vlm_server, timeout_s=0.3, max_retries=0))
    assert r.path == "fallback" and r.error.startswith("timeout:")


def test_bad_json_reasks_once_then_falls_back(push, vlm_server, tmp_path):
    vlm_server.play(("answer", "Sure! The blue box moves {"))
    r = run(push, tmp_path, cfg(vlm_server, reask=1))
    assert r.path == "fallback" and r.error.startswith("bad_json:")
    assert len(vlm_server.requests) == 2
    # the re-ask quotes the problem back to the model
    assert "rejected (bad_json" in vlm_server.requests[1]["messages"][1]["content"][-1]["text"]


def test_bad_json_then_good_answer_is_used(push, grid, vlm_server, tmp_path):
    vlm_server.play(("answer", "not json"), ("answer", json.dumps(good_answer(push["clip"], grid))))
    r = run(push, tmp_path, cfg(vlm_server, reask=1))
    assert r.path == "vlm" and r.details["vlm"]["attempts"] == 2


def test_out_of_range_cells_fall_back(push, grid, vlm_server, tmp_path):
    bad = good_answer(push["clip"], grid)
    bad["affected_objects"][0]["grid_localizations"][0]["cells"].append({"row": 8, "col": 0})
    vlm_server.play(("answer", json.dumps(bad)))
    r = run(push, tmp_path, cfg(vlm_server, reask=0))
    assert r.path == "fallback" and r.error.startswith("out_of_range: grid cell row=8")


def test_unknown_fields_fall_back(push, grid, vlm_server, tmp_path):
    bad = good_answer(push["clip"], grid, needs_trajectory=True)
    vlm_server.play(("answer", json.dumps(bad)))
    r = run(push, tmp_path, cfg(vlm_server, reask=0))
    assert r.path == "fallback" and "unknown_field" in r.error and "needs_trajectory" in r.error


def test_answer_cache_never_pays_twice(push, grid, vlm_server, tmp_path):
    c = cfg(vlm_server, cache_dir=str(tmp_path / "cache"))
    vlm_server.play(("answer", json.dumps(good_answer(push["clip"], grid))))
    a = run(push, tmp_path, c, name="a.mp4")
    vlm_server.play(("status", 500))  # would fail if asked again
    b = run(push, tmp_path, c, name="b.mp4")
    assert len(vlm_server.requests) == 0
    assert b.path == "vlm" and b.details["vlm"]["cached"] is True
    assert np.array_equal(read(a.quadmask_uri), read(b.quadmask_uri))
    # another model name is another key
    vlm_server.play(("answer", json.dumps(good_answer(push["clip"], grid))))
    run(push, tmp_path, cfg(vlm_server, cache_dir=str(tmp_path / "cache"), model="other"),
        name="c.mp4")
    assert len(vlm_server.requests) == 1


def test_no_vlm_uses_the_fallback_without_error(push, tmp_path):
    r = run(push, tmp_path, None)
    assert (r.path, r.error, r.vlm_model) == ("fallback", None, None)
    q = read(r.quadmask_uri)
    clip = push["clip"]
    after = len(q) - 1
    assert (q[after][clip.pushed[after]] != quadmask.KEEP).all()  # the pushed box is marked
    assert not quadmask.affected_region(q[0]).any()


def test_misconfigured_vlm_falls_back_with_reason(push, tmp_path):
    r = run(push, tmp_path, VlmConfig(base_url=None, model="m"))
    assert r.path == "fallback" and r.error.startswith("config:") and "base_url" in r.error


def test_unreachable_vlm_falls_back(push, tmp_path):
    r = run(push, tmp_path, VlmConfig(base_url="http://127.0.0.1:9/v1", max_retries=0,
                                      timeout_s=2))
    assert r.path == "fallback" and r.error.startswith(("connection:", "timeout:"))


def test_given_grey_mask_is_combined(push, grid, tmp_path):
    clip = push["clip"]
    grey = np.where(clip.pushed, 127, 255).astype(np.uint8)
    g = maskio.write_mask(str(tmp_path / "grey.mp4"), grey, fps=12, size=grey.shape[1:])
    r = run(push, tmp_path, None, grey_mask_uri=g)
    assert r.path == "given"
    q = read(r.quadmask_uri)
    expect = np.stack([quadmask.combine(b, gg, frame_index=i) for i, (b, gg) in enumerate(
        zip(np.where(clip.pusher, 0, 255).astype(np.uint8), grey, strict=False))])
    assert np.array_equal(q, expect)


def test_frame_range_keeps_plate_length_and_restarts_frame_zero(push, grid, vlm_server,
                                                                 tmp_path):
    clip = push["clip"]
    vlm_server.play(("answer", json.dumps(good_answer(clip, grid, frames=[0, 3]))))
    r = run(push, tmp_path, cfg(vlm_server), frame_range=(6, 10))
    q = read(r.quadmask_uri)
    assert len(q) == len(clip.frames)
    assert not quadmask.affected_region(q[:7]).any()  # before the range, and its first frame
    assert not quadmask.affected_region(q[11:]).any()
    assert quadmask.affected_region(q[8]).any()
    assert (quadmask.remove_region(q[0]) == clip.pusher[0]).all()  # black kept outside


def test_mismatched_black_mask_is_a_shot_error(push, tmp_path):
    short = maskio.write_mask(str(tmp_path / "short.mp4"),
                              np.full((3, *push["clip"].frames.shape[1:3]), 255, np.uint8),
                              fps=12, size=push["clip"].frames.shape[1:3])
    with pytest.raises(InputError, match=r"shot push: black mask has 3 frames but the plate"):
        run(push, tmp_path, None, name="x.mkv") if False else build_quadmask(
            push["plate"], short, str(tmp_path / "x.mkv"), shot_id="push", instruction="")


def test_api_key_is_sent_but_never_logged(push, grid, vlm_server, tmp_path, monkeypatch,
                                          caplog):
    monkeypatch.setenv("VOID_VLM_API_KEY", "sk-very-secret-123")
    vlm_server.play(("status", 429), ("answer", "broken"))
    with caplog.at_level(logging.DEBUG):
        r = run(push, tmp_path, cfg(vlm_server, reask=0))
    sent = {k.lower(): v for k, v in vlm_server.headers[0].items()}
    assert sent["authorization"] == "Bearer sk-very-secret-123"
    assert "sk-very-secret-123" not in caplog.text + json.dumps(r.details) + (r.error or "")


@pytest.mark.slow  # a second tiny-SAM2 propagation (~30 s on a busy 2-core box)
def test_vlm_boxes_are_segmented_with_sam2(push, grid, vlm_server, tmp_path):
    """With a SAM2 config, the VLM's boxes also prompt SAM2 (tiny RANDOM weights here: the
    masks mean nothing; this checks the wiring and that grey stays grid-aligned)."""
    ans = good_answer(push["clip"], grid, boxes=[{"frame": 9, "box": [0.45, 0.4, 0.6, 0.6]}])
    vlm_server.play(("answer", json.dumps(ans)))
    r = run(push, tmp_path, cfg(vlm_server), sam2=TINY_SAM2)
    assert r.path == "vlm" and "sam2_cells" in r.details["vlm"]
    q = read(r.quadmask_uri)
    h, w = q.shape[1:]
    for t in range(1, len(q)):  # every grey pixel's cell is entirely grey (grid-aligned)
        aff = quadmask.affected_region(q[t])
        assert np.array_equal(grid.rasterize(grid.cells_touched(aff), h, w), aff)


def test_every_result_says_its_path_why_and_whether_degraded(push, grid, vlm_server, tmp_path):
    """A degraded result (the VLM is configured but failed) must never stand in for the real
    answer; the fallback of a setup without a VLM is that setup's real answer."""
    vlm_server.play(("answer", json.dumps(good_answer(push["clip"], grid))))
    v = run(push, tmp_path, cfg(vlm_server), name="v.mp4")
    assert (v.path, v.degraded, v.error) == ("vlm", False, None)
    assert v.reason == "VLM scripted-qwen-vl answered; no SAM2 or grounding model configured"
    vlm_server.play(("status", 503))
    f = run(push, tmp_path, cfg(vlm_server, max_retries=0), name="f.mp4")
    assert (f.path, f.degraded) == ("fallback", True)
    assert f.reason == f"VLM failed: {f.error}" and f.error.startswith("server_error: HTTP 503")
    n = run(push, tmp_path, None, name="n.mp4")
    assert (n.path, n.degraded, n.reason, n.error) == ("fallback", False, "no VLM configured",
                                                       None)
    assert f.summary() == {"path": "fallback", "reason": f.reason, "degraded": True,
                           "vlm_model": "scripted-qwen-vl", "error": f.error, "prompt": None}


def test_scene_description_is_written_as_prompt_json_beside_the_quadmask(push, grid, vlm_server,
                                                                         tmp_path):
    answer = json.dumps(good_answer(push["clip"], grid))
    vlm_server.play(("answer", answer))
    r = run(push, tmp_path, cfg(vlm_server))
    assert r.prompt_uri == str(tmp_path / "prompt.json")
    assert json.loads((tmp_path / "prompt.json").read_text()) == {
        "bg": "a blue box on a textured floor"}  # the samples' layout, read by pass 1
    # a prompt.json already there is the user's: kept, and the text is still returned
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "prompt.json").write_text('{"bg": "mine"}')
    vlm_server.play(("answer", answer))
    kept = run(push, tmp_path / "user", cfg(vlm_server))
    assert kept.prompt_uri is None and kept.scene_description == "a blue box on a textured floor"
    assert json.loads((tmp_path / "user" / "prompt.json").read_text()) == {"bg": "mine"}
    assert kept.details["prompt"] == "kept the existing prompt.json"
    # no VLM answer, no description
    (tmp_path / "none").mkdir()
    assert run(push, tmp_path / "none", None).prompt_uri is None
    assert not (tmp_path / "none" / "prompt.json").exists()


def test_belongings_are_not_merged_without_sam2_and_say_so(push, grid, vlm_server, tmp_path):
    answer = good_answer(push["clip"], grid)
    answer["integral_belongings"] = [{"noun": "red cap"}]
    vlm_server.play(("answer", json.dumps(answer)))
    r = run(push, tmp_path, cfg(vlm_server))
    assert r.details["belongings"] == "not merged: no SAM2 configured"
    assert np.array_equal(quadmask.remove_region(read(r.quadmask_uri)), push["clip"].pusher)


def test_error_bodies_that_echo_credentials_are_redacted(push, vlm_server, tmp_path,
                                                         monkeypatch, caplog):
    """A gateway that quotes the request headers back in its error body: the key must not
    reach the result, its details, the reason or the log."""
    secret = "sk-very-secret-4567890"
    monkeypatch.setenv("VOID_VLM_API_KEY", secret)
    vlm_server.play(("echo", 401))
    with caplog.at_level(logging.DEBUG):
        r = run(push, tmp_path, cfg(vlm_server, max_retries=0, reask=0))
    assert r.degraded and r.error.startswith("http_error: HTTP 401")
    assert "'authorization': '***" in r.error  # the echo is there, the credential is not
    assert secret not in caplog.text + json.dumps(r.details) + r.error + r.reason
