"""The stage list is the one place a stage is defined: a toy stage added in a few lines runs in
the flow, is cached like the others and gets its report columns."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from flows.nightly_batch import nightly_batch
from flows.report import read_report
from manifests.loader import write_manifest
from tasks import graph
from tasks.graph import KeyParts, Placement, Stage
from tasks.options import RunOptions
from testkit.flows import PLUGIN, tiny_rows

CALLS: list[str] = []


def _checksum(ctx, out: Path) -> dict:
    """The toy stage's body: a checksum file of the encoded result."""
    enc = json.loads(Path(ctx.input("encode", "encoded.json")).read_text())
    result = Path(ctx.input("encode", enc["result_uri"]))
    CALLS.append(ctx.shot.shot_id)
    (out / "checksum.txt").write_text(hashlib.sha256(result.read_bytes()).hexdigest())
    return {"algorithm": "sha256"}


TOY = Stage("checksum", "1", upstream=("encode",), outputs=("checksum.txt",),
            placement=Placement.CPU, runs="hashlib.sha256",
            key=lambda ctx: KeyParts(params={"algorithm": "sha256"}),
            skip=lambda ctx: None, run=_checksum)


@pytest.fixture
def toy_stage():
    graph.STAGES.append(TOY)
    yield TOY
    graph.STAGES.remove(TOY)


def test_a_toy_stage_runs_caches_and_reports(batch_env, toy_stage, tiny_shots, tmp_path):
    dirs = tiny_shots(2)
    manifest = tmp_path / "m.parquet"
    write_manifest(tiny_rows(dirs, passes="1"), manifest)
    options = RunOptions(manifest=str(manifest), output_root=str(tmp_path / "out"),
                         cache=str(tmp_path / "cache"), plugins=[PLUGIN])

    CALLS.clear()
    assert nightly_batch(options=options, return_state=True).is_completed()
    first = {r["shot_id"]: r for r in read_report(tmp_path / "out")}
    assert sorted(CALLS) == sorted(d.name for d in dirs)
    for r in first.values():
        assert r["executed"][-1] == "checksum" and r["seconds_checksum"] > 0
        assert r["compute_checksum"] is not None

    CALLS.clear()
    assert nightly_batch(options=options, return_state=True).is_completed()
    assert CALLS == []  # answered from the store
    for r in read_report(tmp_path / "out"):
        assert r["executed"] == [] and "checksum" in r["cache_hits"]
        # the producing run's compute time survives the cached re-run
        assert r["compute_checksum"] == first[r["shot_id"]]["compute_checksum"]
