"""The nightly flow: manifest in, every shot through its stage DAG, report out.

    manifest --load/validate--> good rows (priority order)        bad rows -> report as failed
        per shot: segmentation -> vlm_quadmask -> decode -> pass1 -> gate -> pass2 -> encode
                  -> publish
    -> output_root/<shot_id>/..., output_root/report.parquet + report.html, Prefect artifacts
"""
from __future__ import annotations

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from flows.common import MAX_WORKERS, finish, run_shots
from manifests.loader import Manifest, RowError, load_manifest
from tasks.records import RunConfig


def make_run_config(output_root: str, *, engine: str | None = None, weights: str | None = None,
                    cache: str | None = None, ray_address: str | None = None,
                    plugins: list[str] | None = None, engine_kwargs: dict | None = None,
                    review: bool = True, gate_threshold: float | None = None) -> RunConfig:
    from pathlib import Path

    from tasks.cache import CacheStore

    kwargs = dict(engine_kwargs or {})
    if weights:
        kwargs["weights"] = str(Path(weights).resolve())
    root = output_root if "://" in output_root else str(Path(output_root).resolve())
    return RunConfig(output_root=root, store_uri=CacheStore(cache).uri, engine=engine or "void",
                     engine_override=engine is not None,
                     engine_kwargs=tuple(sorted(kwargs.items())), plugins=tuple(plugins or ()),
                     ray_address=ray_address, review=review, gate_threshold=gate_threshold)


def select(manifest: Manifest, shots: list[str] | None = None, tags: list[str] | None = None,
           ) -> tuple[list[int], list[list[RowError]]]:
    """Indices of the good rows to run, and the bad rows (grouped per file row) to report,
    both restricted to the requested shot ids / tags when given."""
    want = set(shots or ())
    want_tags = set(tags or ())

    def chosen(shot_id: str | None, shot_tags=()) -> bool:
        if want and shot_id not in want:
            return False
        return not want_tags or bool(want_tags & set(shot_tags))

    picked = [i for i, s in enumerate(manifest.shots) if chosen(s.shot_id, s.tags)]
    by_row: dict[int, list[RowError]] = {}
    for e in manifest.errors:
        if not want_tags and chosen(e.shot_id):
            by_row.setdefault(e.row, []).append(e)
    known = {s.shot_id for s in manifest.shots} | {e.shot_id for e in manifest.errors}
    for sid in sorted(want - known):
        by_row[-1 - len(by_row)] = [RowError(-1, sid, "shot_id not in the manifest")]
    return picked, list(by_row.values())


@flow(name="nightly-batch", task_runner=ThreadPoolTaskRunner(max_workers=MAX_WORKERS),
      validate_parameters=True)
def nightly_batch(manifest: str, output_root: str, engine: str | None = None,
                  weights: str | None = None, cache: str | None = None,
                  ray_address: str | None = None, shots: list[str] | None = None,
                  tags: list[str] | None = None, plugins: list[str] | None = None,
                  engine_kwargs: dict | None = None, review: bool = True,
                  gate_threshold: float | None = None):
    """Run every shot of `manifest` (or the chosen `shots` / `tags`) into `output_root`."""
    run = make_run_config(output_root, engine=engine, weights=weights, cache=cache,
                          ray_address=ray_address, plugins=plugins, engine_kwargs=engine_kwargs,
                          review=review, gate_threshold=gate_threshold)
    m = load_manifest(manifest)
    picked, invalid = select(m, shots, tags)
    rows, failed = run_shots(m, picked, invalid, run)
    return finish(rows, failed, run, f"nightly-batch: {manifest}")
