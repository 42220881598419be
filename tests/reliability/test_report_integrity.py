"""Issue 9, "data lost": every command merges into the report, reports go through fsspec
(URI output roots), a failed report write still leaves the run's account somewhere it says,
and manifest-level problems are one `error:` line."""
from __future__ import annotations

import errno
import os
from pathlib import Path

import fsspec
import pytest

from flows.report import read_report
from manifests.loader import write_manifest
from testkit.flows import PLUGIN, tiny_rows
from void_batch.cli import main as cli


def _cli_run(manifest, out, cache, *extra) -> int:
    return cli(["run", str(manifest), "--out", str(out), "--cache", str(cache),
                "--plugin", PLUGIN, *extra])


def test_run_shots_merges_and_uri_roots_and_full_disk(batch_env, tiny_shots, tmp_path,
                                                     monkeypatch, capsys):
    dirs = tiny_shots(3)
    manifest, out, cache = tmp_path / "m.parquet", tmp_path / "out", tmp_path / "cache"
    write_manifest(tiny_rows(dirs, passes="1"), manifest)
    assert _cli_run(manifest, out, cache) == 0
    first = {r["shot_id"]: r for r in read_report(out)}
    assert len(first) == 3

    # `run --shots X` on an existing output root: X's row is replaced, the others stay.
    assert _cli_run(manifest, out, cache, "--shots", dirs[1].name) == 0
    second = {r["shot_id"]: r for r in read_report(out)}
    assert set(second) == set(first)
    assert second[dirs[0].name] == first[dirs[0].name]
    assert second[dirs[1].name]["flow_run_id"] != first[dirs[1].name]["flow_run_id"]
    runs = os.listdir(out / "runs")
    assert len(runs) == 2  # each run's own report is kept

    # Output roots given as URIs: delivered and reported through fsspec, nothing stray here.
    monkeypatch.chdir(tmp_path)
    for root in (f"file://{tmp_path}/out-file", "memory://vb/out"):
        assert _cli_run(manifest, root, cache, "--shots", dirs[0].name) == 0
        fs, path = fsspec.core.url_to_fs(root)
        assert fs.exists(f"{path}/report.parquet") and fs.exists(f"{path}/report.html")
        assert fs.exists(f"{path}/{dirs[0].name}/{dirs[0].name}.mkv")
    assert not [p for p in os.listdir(tmp_path) if p.startswith(("file:", "memory:"))]

    # A full disk when the report is written: no temp file left, the report goes to a
    # fallback place the error names, the run fails.
    from void_engine.io import atomic

    def full_disk(path, mode="r", *args, **kw):  # the output root's disk is full
        if "w" in mode and str(path).startswith(str(out)) and ".report.parquet" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device", path)
        return open(path, mode, *args, **kw)

    monkeypatch.setattr(atomic, "open", full_disk, raising=False)
    capsys.readouterr()
    assert _cli_run(manifest, out, cache, "--shots", dirs[2].name) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and "it is in" in err
    fallback = Path(err.split("it is in ")[1].split()[0].rstrip(")"))
    assert fallback.is_file() and [r["shot_id"] for r in read_report(fallback)] == [
        dirs[2].name]
    assert not [p for p in os.listdir(out) if p.startswith(".")]  # no temp files left
    assert read_report(out) == list(second.values())  # the old report is untouched


@pytest.mark.parametrize("content,needle", [
    (b"", "not a readable Parquet file"),
    (b"PAR1 this is not parquet", "not a readable Parquet file"),
    (None, "lacks required column"),
])
def test_manifest_level_errors_are_one_line(tmp_path, capsys, content, needle):
    bad = tmp_path / "m.parquet"
    if content is None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"shot_id": ["a"]}), bad)
    else:
        bad.write_bytes(content)
    for argv in (["run", str(bad), "--out", str(tmp_path / "o")],
                 ["reprocess", str(bad), "--out", str(tmp_path / "o"), "--shots", "a"],
                 ["manifest", "check", str(bad)]):
        assert cli(argv) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0], err


def test_report_on_a_corrupt_or_missing_report_is_one_line(tmp_path, capsys):
    (tmp_path / "report.parquet").write_bytes(b"garbage")
    assert cli(["report", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a readable report" in err[0]
    assert cli(["report", str(tmp_path / "nowhere")]) == 1
    assert "no report in" in capsys.readouterr().err
