"""Issue 9, "nothing outside its roots": rows cannot write outside the output root, values that
can only fail late fail at validation, and credentials never reach a stored or shown error."""
from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flows.nightly_batch import nightly_batch
from flows.report import read_report
from manifests.loader import load_manifest, write_manifest
from tasks.errors import one_line
from tasks.options import RunOptions
from testkit.flows import PLUGIN, tiny_rows
from void_batch.cli import main as cli
from void_engine.redact import redact

SECRET = "sk-live-9f8e7d6c5b4a39281706f5e4d3c2b1a0"


@pytest.mark.parametrize("output_uri", ["../../x", "/tmp/x", "sub/../../escape"])
def test_output_uri_outside_the_root_is_a_row_error(tiny_shots, tmp_path, capsys, output_uri):
    (d,) = tiny_shots(1)
    manifest = tmp_path / "m.parquet"
    write_manifest(tiny_rows([d], engine="propagate", output_uri=output_uri), manifest)
    assert cli(["manifest", "check", str(manifest)]) == 1
    out = capsys.readouterr().out
    assert "output_uri" in out and ("outside the output root" in out or "climbs out" in out)


def test_output_uri_inside_a_named_root_is_allowed(tiny_shots, tmp_path, capsys):
    (d,) = tiny_shots(1)
    manifest, studio = tmp_path / "m.parquet", tmp_path / "studio"
    write_manifest(tiny_rows([d], engine="propagate", output_uri=str(studio / "shot")), manifest)
    assert cli(["manifest", "check", str(manifest), "--output-root", str(studio)]) == 0
    write_manifest(tiny_rows([d], engine="propagate", output_uri="deep/inside"), manifest)
    assert cli(["manifest", "check", str(manifest)]) == 0


def test_shot_ids_that_would_fail_late_fail_at_validation(tiny_shots, tmp_path):
    (d,) = tiny_shots(1)
    row = tiny_rows([d])[0]
    errors = []
    for shot_id in (7, "x" * 300):  # an integer id column; an id longer than a file name
        pq.write_table(pa.Table.from_pylist([{**row, "shot_id": shot_id}]), tmp_path / "m.pq")
        m = load_manifest(tmp_path / "m.pq")
        assert not m.shots
        errors += m.errors
    text = "\n".join(str(e) for e in errors)
    assert "shot 7" in text and "valid string" in text
    assert "at most 128 characters" in text
    assert all(isinstance(e.shot_id, str) for e in errors)  # the report can hold them


def test_one_line_and_redaction():
    ray_like = ("ray::ResidentActor.run_stage() (pid=12, ip=10.0.0.1)\n"
                "  File \"x.py\", line 3, in f\n    raise HTTPError(body)\n"
                f"\x1b[31mHTTPError: 401 {{'Authorization': 'Bearer {SECRET}'}}\x1b[0m")
    line = one_line(ray_like)
    assert "\n" not in line and "\x1b" not in line and SECRET not in line
    assert line.startswith("HTTPError: 401")
    for text in (f"Authorization: Bearer {SECRET}", f"https://user:{SECRET}@host/x",
                 f"GET /v1?key={SECRET}&x=1", f"api_key={SECRET}", f"x-api-key: {SECRET}"):
        assert SECRET not in redact(text), text


def test_a_failing_shot_reports_one_clean_line_without_credentials(
        batch_env, tiny_shots, tmp_path):
    (d,) = tiny_shots(1)
    manifest = tmp_path / "m.parquet"
    write_manifest(tiny_rows([d], engine="test-fails", passes="1"), manifest)
    message = (f"\x1b[1;31mupstream said 403\x1b[0m\nrequest headers: "
               f"{{'Authorization': 'Bearer {SECRET}'}}\n  at line 2")
    options = RunOptions(manifest=str(manifest), output_root=str(tmp_path / "out"),
                         cache=str(tmp_path / "cache"), plugins=[PLUGIN],
                         engine_opts={"message": message})
    state = nightly_batch(options=options, return_state=True)
    assert state.is_failed()
    (r,) = read_report(tmp_path / "out")
    assert r["status"] == "failed" and r["failed_stage"] == "pass1"
    assert "\n" not in r["error"] and "\x1b" not in r["error"] and SECRET not in r["error"]
    assert "upstream said 403" in r["error"], r["error"]
    for root, _, files in os.walk(tmp_path / "cache"):
        for f in files:
            assert SECRET.encode() not in (Path(root) / f).read_bytes()
    html = (tmp_path / "out" / "report.html").read_text()
    assert SECRET not in html
