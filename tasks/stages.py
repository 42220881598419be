"""One Prefect task per stage. Each task: decide whether the shot needs the stage, compute its
cache key (tasks.cache), return the store entry if it exists, else run the void_engine stage
into a staging folder and commit it. GPU stages (pass 1, pass 2) run on the resident Ray actors.

Every task takes (shot, run, up): the manifest row, the RunConfig and a dict of upstream
Outcomes (Prefect resolves the futures in it; a failed upstream leaves this task NotReady).
Order: segmentation -> vlm_quadmask -> decode -> pass1 -> gate -> pass2 -> encode -> publish.
decode comes after the mask stages because it brings plate *and quadmask* to model space.

The flow asks `resolve_in_flow` first: a stage that is skipped or already in the store is
answered there, without a task run (a Prefect task run costs ~10-50 ms of engine and API work;
a store lookup is a file read). Tasks only exist for stages that execute, so Prefect's own
result cache is not used: the store is the one cache (tasks.cache), Prefect never holds more
than the `Outcome` pointer a task returns in memory.
"""
from __future__ import annotations

import importlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import fsspec
from fsspec.implementations.local import LocalFileSystem
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.context import get_run_context

from manifests.schema import ShotRow
from tasks import actors
from tasks.cache import STAGE_VERSIONS, CacheStore, Entry, key_of
from tasks.records import LEDGER, STAGE_DEPS, Outcome, RunConfig, load_decoded, load_encoded
from void_engine.errors import InputError

MASKS_MISSING = "skipped: masks stage not available"
# skip_reason's answer when it needs the result of an upstream stage that is still running.
NEEDS_UPSTREAM = "<needs upstream result>"

# --- helpers -----------------------------------------------------------------------------------
_stores: dict[str, CacheStore] = {}


def store_for(run: RunConfig) -> CacheStore:
    if run.store_uri not in _stores:
        _stores[run.store_uri] = CacheStore(run.store_uri)
    return _stores[run.store_uri]


def spec_for(shot: ShotRow, run: RunConfig) -> actors.EngineSpec:
    name = run.engine if run.engine_override or not shot.engine else shot.engine
    return actors.EngineSpec.make(name, run.plugins, **dict(run.engine_kwargs))


def masks_module(name: str):
    """void_engine.masks.<name>, or None while the masks work has not landed."""
    try:
        return importlib.import_module(f"void_engine.masks.{name}")
    except ModuleNotFoundError as exc:
        if exc.name in (f"void_engine.masks.{name}", "void_engine.masks"):
            return None
        raise


def skip_reason(stage: str, shot: ShotRow, run: RunConfig, up: dict) -> str | None:  # noqa: C901 (replaced by the stage graph)
    """Why `shot` does not need `stage` (None: it does). `up` holds the upstream Outcomes known
    so far; NEEDS_UPSTREAM when the answer depends on one that is not (still running)."""
    mode = shot.mask_mode
    if stage == "segmentation":
        if mode != "prompts":
            return {"quadmask": "not needed: quadmask given",
                    "black": "not needed: black mask given",
                    "black+grey": "not needed: black + grey masks given"}[mode]
        return None if masks_module("segment") else MASKS_MISSING
    if stage == "vlm_quadmask":
        if mode == "quadmask":
            return "not needed: quadmask given"
        if masks_module("reasoning") is None:
            return MASKS_MISSING
        if mode == "prompts":
            seg = up.get("segmentation")
            if seg is None:
                return NEEDS_UPSTREAM
            if seg.status != "done":
                return f"no black mask: segmentation {seg.note}"
        return None
    if stage in ("gate", "pass2"):
        spec = spec_for(shot, run)
        if not actors.engine_traits(spec)["supports_pass2"]:
            return f"engine {spec.name} has no pass 2"
        if shot.passes == "1":
            return "passes=1"
        if stage == "gate":
            if shot.passes == "2":
                return "passes=2: pass 2 always runs"
            return None if masks_module("gate") else MASKS_MISSING + " (pass 2 not run)"
        if shot.passes == "auto":
            gate = up.get("gate")
            if gate is None:
                return NEEDS_UPSTREAM
            if gate.status != "done":
                return f"gate did not run ({gate.note})"
            if not gate.meta.get("run_pass2"):
                return (f"gate: score {gate.meta.get('score'):.3f} below threshold "
                        f"{gate.meta.get('threshold')}")
    return None


def stage_extra(stage: str, run: RunConfig) -> dict:
    """Run-level parameters that belong in a stage's key."""
    if stage in ("segmentation", "vlm_quadmask", "gate"):
        mod = masks_module({"segmentation": "segment", "vlm_quadmask": "reasoning",
                            "gate": "gate"}[stage])
        extra = {"module_version": getattr(mod, "PROMPT_VERSION", None)
                 or getattr(mod, "__version__", None)}
        if stage == "gate":
            extra["threshold"] = run.gate_threshold
        # a different SAM2 model gives different masks
        if stage == "segmentation" and mod is not None:
            cfg = mod.Sam2Config.from_env()
            extra["sam2"] = [cfg.checkpoint, cfg.model_config, cfg.image_size]
        if stage == "vlm_quadmask":  # VLM answers are keyed by backend + model (+ prompt version)
            from void_engine.masks.vlm.client import VlmConfig

            vlm = VlmConfig.from_env()
            extra["vlm"] = [vlm.backend, vlm.model] if vlm else None
        return extra
    if stage == "encode":
        return {"review": run.review}
    return {}


def compute_key(stage: str, shot: ShotRow, run: RunConfig, up: dict) -> str | None:
    if skip_reason(stage, shot, run, up):
        return None
    return key_of(stage, shot, model_id=spec_for(shot, run).model_id,
                  up={k: o.key for k, o in up.items()}, extra=stage_extra(stage, run))


def resolve_in_flow(stage: str, shot: ShotRow, run: RunConfig, up: dict) -> Outcome | None:
    """The stage's Outcome when it can be known without running it: skipped, or its entry is
    already in the store (a hit). None: it must run as a task (or its skip decision waits for
    an upstream still running). Errors (an unreadable input file) also answer None, so the
    task runs, fails with that error and is reported like any stage failure."""
    try:
        reason = skip_reason(stage, shot, run, up)
        if reason == NEEDS_UPSTREAM:
            return None
        if reason:
            return Outcome(stage, "skipped", note=reason)
        if any(d not in up for d in STAGE_DEPS[stage]):
            return None
        key = key_of(stage, shot, model_id=spec_for(shot, run).model_id,
                     up={k: o.key for k, o in up.items()}, extra=stage_extra(stage, run))
        entry = store_for(run).lookup(stage, key)
    except Exception:
        return None
    return Outcome(stage, "done", entry=entry, meta=dict(entry.meta)) if entry else None


def _no_retry_on_bad_input(task, task_run, state) -> bool:
    try:
        state.result()
    except InputError:
        return False
    except Exception:
        return True
    return True


def _run_id() -> str:
    ctx = get_run_context()
    return str(getattr(ctx.task_run, "flow_run_id", "") or "no-flow")


def stage_task(stage: str, retries: int = 1):
    """Decorator: a Prefect task for `stage` around `produce(shot, run, up, tmp) -> meta`."""

    def deco(produce: Callable) -> Callable:
        def body(shot: ShotRow, run: RunConfig, up: dict) -> Outcome:
            t0 = time.perf_counter()
            reason = skip_reason(stage, shot, run, up)
            if reason:
                LEDGER.record(_run_id(), shot.shot_id, stage, executed=False, seconds=0.0,
                              hit=False)
                return Outcome(stage, "skipped", note=reason)
            store = store_for(run)
            key = compute_key(stage, shot, run, up)
            entry = store.lookup(stage, key)
            executed = entry is None
            if entry is None:
                entry = produce(shot, run, up, store, key)
            LEDGER.record(_run_id(), shot.shot_id, stage, executed=executed, hit=not executed,
                          seconds=time.perf_counter() - t0)
            return Outcome(stage, "done", entry=entry, meta=dict(entry.meta))

        body.__name__ = body.__qualname__ = stage
        # NO_CACHE + no persistence: the store is the cache (see the module docstring); a
        # Prefect cache policy would hash inputs and task source and write a result file per
        # task run for nothing. No tags either: Prefect 3.8 takes a tag-concurrency lease (an
        # API round trip, a SQLite write on the local server) per tagged task run. The shot id
        # is in the task run name; the tag goes on the shot's one publish task run.
        return task(body, name=stage, task_run_name=f"{stage}-{{shot.shot_id}}",
                    cache_policy=NO_CACHE, persist_result=False,
                    retries=retries, retry_delay_seconds=2,
                    retry_condition_fn=_no_retry_on_bad_input)

    return deco


def _commit_with(store: CacheStore, stage: str, key: str, work: Callable[[Path], dict]):
    with store.staging(stage, key) as tmp:
        meta = work(tmp) or {}
        return store.commit(stage, key, tmp, {**meta, "version": STAGE_VERSIONS[stage]})


# --- the stages --------------------------------------------------------------------------------
@stage_task("segmentation")
def segmentation(shot, run, up, store, key):
    seg = masks_module("segment")

    def work(tmp: Path) -> dict:
        seg.segment_shot(shot.plate_uri, shot.prompts_json(), str(tmp / "black_mask.mp4"),
                         shot_id=shot.shot_id, frame_range=_frame_range(shot),
                         config=seg.Sam2Config.from_env())
        return {}

    return _commit_with(store, "segmentation", key, work)


@stage_task("vlm_quadmask")
def vlm_quadmask(shot, run, up, store, key):
    reasoning = masks_module("reasoning")
    from void_engine.masks.vlm.client import VlmConfig  # env: VOID_VLM_URL / _MODEL / _BACKEND
    seg = up["segmentation"]
    black = (str(store.local_dir(seg.entry) / "black_mask.mp4") if seg.status == "done"
             else shot.black_mask_uri)

    def work(tmp: Path) -> dict:
        r = reasoning.build_quadmask(shot.plate_uri, black, str(tmp / "quadmask.mp4"),
                                     shot_id=shot.shot_id, instruction=shot.instruction or "",
                                     grey_mask_uri=shot.grey_mask_uri,
                                     vlm=VlmConfig.from_env(),
                                     frame_range=_frame_range(shot))
        return {"path": r.path, "vlm_model": r.vlm_model, "error": r.error,
                "details": r.details}

    return _commit_with(store, "vlm_quadmask", key, work)


@stage_task("decode")
def decode(shot, run, up, store, key):
    from void_engine import stages

    qm = up["vlm_quadmask"]
    quadmask = (str(store.local_dir(qm.entry) / "quadmask.mp4") if qm.status == "done"
                else shot.quadmask_uri)
    if not quadmask:
        raise InputError(f"no quadmask ({qm.note})", shot=shot.shot_id)
    info = actors.pool_for(spec_for(shot, run), run.ray_address).describe()
    from void_engine.engines.base import FrameRules

    def work(tmp: Path) -> dict:
        d = stages.decode_shot(shot.plate_uri, quadmask, tmp, shot_id=shot.shot_id,
                               frame_range=_frame_range(shot),
                               model_size=tuple(info["model_size"] or (384, 672)),
                               frame_rules=FrameRules(**info["frame_rules"]), fps=shot.fps)
        d.clip_path = os.path.relpath(d.clip_path, tmp)
        d.mask_path = os.path.relpath(d.mask_path, tmp)
        d.to_json(tmp / "decoded.json")
        return {"frames": d.mapping.num_frames, "plate_size": list(d.mapping.plate_size)}

    return _commit_with(store, "decode", key, work)


def _removal_params(shot: ShotRow) -> dict:
    return {"seed": shot.seed, "passes": shot.passes, "steps": shot.steps,
            "pass2_steps": shot.pass2_steps, "guidance_scale": shot.guidance_scale}


@stage_task("pass1", retries=2)
def pass1(shot, run, up, store, key):
    pool = actors.pool_for(spec_for(shot, run), run.ray_address)
    return pool.run_pass("pass1", run.store_uri, key, up["decode"].entry, None, shot.prompt,
                         _removal_params(shot))


@stage_task("gate")
def gate(shot, run, up, store, key):
    gate_mod = masks_module("gate")
    decoded = load_decoded(store, up["decode"].entry)
    p1 = store.local_dir(up["pass1"].entry) / "pass1.npy"

    def work(tmp: Path) -> dict:
        r = gate_mod.morphing_gate(decoded, str(p1), threshold=run.gate_threshold)
        facts = {"score": float(r.score), "threshold": float(r.threshold),
                 "run_pass2": bool(r.run_pass2), "details": r.details}
        (tmp / "gate.json").write_text(json.dumps(facts, default=str))
        return facts

    return _commit_with(store, "gate", key, work)


@stage_task("pass2", retries=2)
def pass2(shot, run, up, store, key):
    pool = actors.pool_for(spec_for(shot, run), run.ray_address)
    return pool.run_pass("pass2", run.store_uri, key, up["decode"].entry, up["pass1"].entry,
                         shot.prompt, _removal_params(shot))


@stage_task("encode")
def encode(shot, run, up, store, key):
    from void_engine import stages

    decoded = load_decoded(store, up["decode"].entry)
    result = up["pass2"] if up["pass2"].status == "done" else up["pass1"]
    result_path = store.local_dir(result.entry) / f"{result.stage}.npy"

    def work(tmp: Path) -> dict:
        e = stages.encode_shot(decoded, result_path, tmp, codec=shot.codec, review=run.review)
        for attr in ("result_uri", "matte_uri", "review_movie_uri", "contact_sheet_uri"):
            if getattr(e, attr):
                setattr(e, attr, os.path.relpath(getattr(e, attr), tmp))
        e.to_json(tmp / "encoded.json")
        return {"from": result.stage, "frames": e.frames}

    return _commit_with(store, "encode", key, work)


@task(name="publish", task_run_name="publish-{shot.shot_id}", retries=1, retry_delay_seconds=2,
      cache_policy=NO_CACHE, persist_result=False)
def publish(shot: ShotRow, run: RunConfig, up: dict) -> dict:
    """Deliver the encode entry to <output>/<shot_id>/ (not cached: cheap, and the output
    folder may have been cleaned). Files land under a temp name, then are renamed."""
    return deliver(shot, run, up["encode"].entry)


@task(name="publish-cached", cache_policy=NO_CACHE, persist_result=False)
def publish_cached(items: list, run: RunConfig) -> dict[str, dict]:
    """`publish` for a batch of shots whose every stage was found in the store: one task run
    (tagged with all their shot ids by the flow) instead of one per shot, so an unchanged
    re-run costs a few task runs in all. A shot whose delivery fails twice gets {"error": ...}
    and the others are still delivered."""
    out: dict[str, dict] = {}
    for shot, entry in items:
        for attempt in (1, 2):
            try:
                out[shot.shot_id] = deliver(shot, run, entry)
                break
            except Exception as exc:  # one shot's delivery never stops the batch
                if attempt == 2:
                    out[shot.shot_id] = {"error": f"{type(exc).__name__}: {exc}"}
                else:
                    time.sleep(1)
    return out


def deliver(shot: ShotRow, run: RunConfig, encode_entry: Entry) -> dict:
    store = store_for(run)
    enc = load_encoded(store, encode_entry)
    dest = shot.output_uri or f"{run.output_root.rstrip('/')}/{shot.shot_id}"
    delivered = {}
    for attr in ("result_uri", "matte_uri", "review_movie_uri", "contact_sheet_uri"):
        src = getattr(enc, attr)
        if src:
            delivered[attr] = _deliver(Path(src), dest)
    return {**delivered, "frames": enc.frames, "fps": enc.fps, "size": list(enc.size),
            "output_dir": dest}


def _deliver(src: Path, dest: str) -> str:
    """Copy a file or an image-sequence folder to `dest`/ (hard links when the store and the
    output share a file system)."""
    fs, root = fsspec.core.url_to_fs(dest)
    target = f"{root.rstrip('/')}/{src.name}"
    if not isinstance(fs, LocalFileSystem):
        fs.put(str(src), target, recursive=src.is_dir())
        return f"{dest.rstrip('/')}/{src.name}"
    Path(root).mkdir(parents=True, exist_ok=True)
    tmp = Path(root) / f".{src.name}.{os.getpid()}.{threading.get_ident()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)
    if src.is_dir():
        shutil.copytree(src, tmp, copy_function=_link_or_copy)
        old = Path(target)
        if old.is_dir():  # a folder cannot be replaced atomically: swap it out, then drop it
            trash = old.with_name(f".{old.name}.old.{os.getpid()}")
            os.replace(old, trash)
            os.replace(tmp, target)
            shutil.rmtree(trash, ignore_errors=True)
            return target
    else:
        if os.path.exists(target) and os.path.samefile(src, target):
            return target  # already delivered (a hard link to the cached file)
        _link_or_copy(src, tmp)
    os.replace(tmp, target)
    return target


def _link_or_copy(src, dst) -> None:
    try:
        os.link(src, dst)  # same file system: no copy of big deliverables
    except OSError:
        shutil.copyfile(src, dst)


def _frame_range(shot: ShotRow) -> tuple[int, int] | None:
    fr = shot.frame_range
    if fr is None or fr[1] is not None:
        return fr
    from void_engine.io import probe

    return (fr[0], probe(shot.plate_uri, fps=shot.fps).frames - 1)


STAGE_TASKS = {"segmentation": segmentation, "vlm_quadmask": vlm_quadmask, "decode": decode,
               "pass1": pass1, "gate": gate, "pass2": pass2, "encode": encode}
