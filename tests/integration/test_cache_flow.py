"""Per-stage cache through the real flow: an unchanged re-run executes no stage and creates no
stage task run; changing a pass-2 parameter re-runs only pass 2 and encode."""
from __future__ import annotations

from pathlib import Path

from flows.nightly_batch import nightly_batch
from flows.report import read_report
from manifests.loader import write_manifest
from tasks.options import RunOptions
from testkit.flows import PLUGIN, tiny_rows


def _run(manifest: Path, out: Path, cache: Path, log: Path):
    return nightly_batch(options=RunOptions(
        manifest=str(manifest), output_root=str(out), cache=str(cache), plugins=[PLUGIN],
        engine_opts={"log": str(log)}), return_state=True)


def _task_run_names(state) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as c:
        runs = c.read_task_runs(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))
    return sorted(t.name for t in runs)


def _calls(log: Path) -> list[str]:
    return [line.split()[0] for line in log.read_text().splitlines()] if log.exists() else []


def test_rerun_hits_cache_and_pass2_change_reruns_only_pass2_and_encode(
        batch_env, tiny_shots, tmp_path):
    dirs = tiny_shots(2)
    manifest, out, cache, log = (tmp_path / "m.parquet", tmp_path / "out", tmp_path / "cache",
                                 tmp_path / "engine.log")
    write_manifest(tiny_rows(dirs, pass2_steps=3), manifest)

    state = _run(manifest, out, cache, log)
    assert state.is_completed(), state.message
    first = {r["shot_id"]: r for r in read_report(out)}
    assert {r["status"] for r in first.values()} == {"ok"}
    for r in first.values():
        assert r["executed"] == ["decode", "pass1", "pass2", "encode"]
        assert r["passes_run"] == 2
        assert Path(r["result_uri"]).is_file() and Path(r["matte_uri"]).is_file()
    assert sorted(_calls(log)) == ["pass1", "pass1", "pass2", "pass2"]
    result_bytes = {s: Path(r["result_uri"]).read_bytes() for s, r in first.items()}

    # Unchanged: nothing executes, every stage is a hit, same deliverables; the stages are
    # answered from the store by the flow, so the only task run delivers both shots.
    for path in (Path(r["result_uri"]) for r in first.values()):
        path.unlink()  # a cleaned output folder is delivered again from the store
    state = _run(manifest, out, cache, log)
    assert state.is_completed(), state.message
    for r in read_report(out):
        assert r["executed"] == [] and r["cache_hits"] == ["decode", "pass1", "pass2", "encode"]
        assert Path(r["result_uri"]).read_bytes() == result_bytes[r["shot_id"]]
    assert len(_calls(log)) == 4
    (name,) = _task_run_names(state)
    assert name.startswith("publish-cached-")

    # A pass-2 parameter changes for one shot: only its pass 2 and encode run again.
    rows = tiny_rows(dirs, pass2_steps=3)
    rows[0]["pass2_steps"] = 40
    write_manifest(rows, manifest)
    state = _run(manifest, out, cache, log)
    assert state.is_completed(), state.message
    third = {r["shot_id"]: r for r in read_report(out)}
    changed, same = third[dirs[0].name], third[dirs[1].name]
    assert changed["executed"] == ["pass2", "encode"]
    assert changed["cache_hits"] == ["decode", "pass1"]
    assert same["executed"] == []
    assert _calls(log)[4:] == ["pass2"]
    assert _task_run_names(state) == sorted(["publish-cached-" + dirs[1].name,
                                             "pass2-" + dirs[0].name, "encode-" + dirs[0].name,
                                             "publish-" + dirs[0].name])
    assert Path(changed["result_uri"]).read_bytes() != result_bytes[changed["shot_id"]]
