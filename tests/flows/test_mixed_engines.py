"""A manifest mixing engines on one (fake) GPU: one engine model per GPU, so the models take
turns; a shot never fails because another shot's model evicted the one it was running on."""
from __future__ import annotations

from flows.nightly_batch import nightly_batch
from flows.report import read_report
from manifests.loader import write_manifest
from tasks.options import RunOptions
from testkit.flows import PLUGIN, tiny_rows


def test_two_engines_take_turns_on_one_gpu(batch_env, tiny_shots, tmp_path):
    dirs = tiny_shots(4)
    rows = tiny_rows(dirs, passes="1")
    for r in rows[1::2]:
        r["engine"] = "test-identity"
    manifest = tmp_path / "m.parquet"
    write_manifest(rows, manifest)
    state = nightly_batch(options=RunOptions(
        manifest=str(manifest), output_root=str(tmp_path / "out"),
        cache=str(tmp_path / "cache"), plugins=[PLUGIN], engine_opts={"delay": 0.5}
        ), return_state=True)
    report = read_report(tmp_path / "out")
    assert [r["status"] for r in report] == ["ok"] * 4, [r.get("error") for r in report]
    assert state.is_completed()
    assert {r["engine"] for r in report} == {"test-twopass", "test-identity"}
