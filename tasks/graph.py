"""The stage graph of one shot: every stage declared once, in the order it runs.

    segmentation -> vlm_quadmask -> decode -> pass1 -> gate -> pass2 -> encode   (-> publish)

Each `Stage` says everything the batch needs to know about it: its version, the upstream stages
it reads, the files it writes, where it runs (a CPU task in the flow's pool, or the resident
engine / masks actor on Ray), what enters its cache key, when a shot does not need it, the
void_engine function it runs, and (for the VLM step) when its result is a degraded stand-in
that must never satisfy a later run. Cache keys, skip decisions, task runs, actor dispatch
and report columns are generic code over `STAGES` (tasks.runner, tasks.prefect_tasks,
tasks.actors, flows.batch, flows.report): adding a stage is adding one entry here.

Publishing the result into the output root is not a stage: it is never cached (the output
folder may have been cleaned), see tasks.deliver.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from tasks.context import StageContext

Skip = Callable[[StageContext], str | None]
PROMPT_FILE = "prompt.json"  # the VLM's scene description ({"bg": ...}) beside its quadmask


class Placement(StrEnum):
    CPU = "cpu"  # a Prefect task in the flow's thread pool
    ENGINE = "engine"  # the resident engine actor (the VOID model) on a Ray GPU
    MASKS = "masks"  # the resident masks actor (SAM2, grounding) on a share of a Ray GPU


@dataclass(frozen=True)
class KeyParts:
    """What a stage's cache key hashes besides its name, version and upstream keys."""

    inputs: dict[str, str | None] = field(default_factory=dict)  # file content digests
    params: dict[str, Any] = field(default_factory=dict)
    model: bool = False  # the engine's model id (weights identity) enters the key


@dataclass(frozen=True)
class Stage:
    name: str
    version: str  # bump when the stage's code changes what it writes
    upstream: tuple[str, ...]
    outputs: tuple[str, ...]  # files of its cache entry
    placement: Placement
    runs: str  # the void_engine function it runs (for readers and `void-batch run --dry-run`)
    key: Callable[[StageContext], KeyParts]
    skip: Skip
    run: Callable[[StageContext, Path], dict]  # writes `outputs` into the folder; returns meta
    degraded: Callable[[dict], str | None] = lambda meta: None
    retries: int = 1


# --- segmentation: clicks/boxes -> black mask (SAM2) ----------------------------------------------
def _needs_prompts(ctx: StageContext) -> str | None:
    mode = ctx.shot.mask_mode
    return None if mode == "prompts" else f"not needed: {mode.replace('+', ' + ')} mask given"


def _segmentation_key(ctx: StageContext) -> KeyParts:
    from void_engine.masks import segment

    return KeyParts(inputs={"plate": ctx.digest(ctx.shot.plate_uri)},
                    params={"prompts": ctx.shot.prompts_json(), "frames": ctx.frames_param,
                            "sam2": ctx.masks_spec.key_facts()["sam2"],
                            "code": segment.__version__})


def _segment(ctx: StageContext, out: Path) -> dict:
    ctx.mask_models.segment_shot(ctx.shot.plate_uri, ctx.shot.prompts_json(),
                                 str(out / "black_mask.mp4"), shot_id=ctx.shot.shot_id,
                                 frame_range=ctx.frame_range())
    return {}


# --- vlm_quadmask: black mask + VLM reasoning -> quadmask ---------------------------------------
def _needs_reasoning(ctx: StageContext) -> str | None:
    if ctx.shot.mask_mode == "quadmask":
        return "not needed: quadmask given"
    seg = ctx.up.get("segmentation")
    if seg is not None and ctx.shot.mask_mode == "prompts" and seg.status != "done":
        return f"no black mask: segmentation {seg.note}"
    return None


def _black_mask(ctx: StageContext) -> str:
    seg = ctx.up["segmentation"]
    return ctx.input("segmentation", "black_mask.mp4") if seg.status == "done" \
        else ctx.shot.black_mask_uri


def _reasoning_key(ctx: StageContext) -> KeyParts:
    from void_engine.masks import reasoning

    seg = ctx.up["segmentation"]
    black = None if seg.status == "done" else ctx.digest(ctx.shot.black_mask_uri)
    return KeyParts(inputs={"plate": ctx.digest(ctx.shot.plate_uri), "black": black,
                            "grey": ctx.digest(ctx.shot.grey_mask_uri)},
                    params={"instruction": ctx.shot.instruction, "frames": ctx.frames_param,
                            "models": ctx.masks_spec.key_facts(),
                            "prompt": reasoning.PROMPT_VERSION})


def _reason(ctx: StageContext, out: Path) -> dict:
    r = ctx.mask_models.build_quadmask(
        ctx.shot.plate_uri, _black_mask(ctx), str(out / "quadmask.mp4"),
        shot_id=ctx.shot.shot_id, instruction=ctx.shot.instruction or "",
        grey_mask_uri=ctx.shot.grey_mask_uri, frame_range=ctx.frame_range())
    return {**r.summary(), "prompt": PROMPT_FILE if r.prompt_uri else None,
            "details": json.loads(json.dumps(r.details, default=str))}


def _degraded_mask(meta: dict) -> str | None:
    return f"{meta.get('path')} mask stood in: {meta.get('reason') or meta.get('error')}" \
        if meta.get("degraded") else None


# --- decode: plate + quadmask -> model-space clip and mask ----------------------------------------
def _quadmask(ctx: StageContext) -> str:
    qm = ctx.up["vlm_quadmask"]
    return ctx.input("vlm_quadmask", "quadmask.mp4") if qm.status == "done" \
        else ctx.shot.quadmask_uri


def _decode_key(ctx: StageContext) -> KeyParts:
    qm = ctx.up["vlm_quadmask"]
    facts = ctx.facts
    return KeyParts(inputs={"plate": ctx.digest(ctx.shot.plate_uri),
                            "quadmask": None if qm.status == "done"
                            else ctx.digest(ctx.shot.quadmask_uri)},
                    params={"frames": ctx.frames_param, "fps": ctx.shot.fps,
                            "model_size": list(facts.model_size),
                            "frame_rules": vars(facts.frame_rules)})


def _decode(ctx: StageContext, out: Path) -> dict:
    from void_engine.stages import decode_shot

    d = decode_shot(ctx.shot.plate_uri, _quadmask(ctx), out, shot_id=ctx.shot.shot_id,
                    frame_range=ctx.frame_range(), model_size=ctx.facts.model_size,
                    frame_rules=ctx.facts.frame_rules, fps=ctx.shot.fps)
    return {"frames": d.mapping.num_frames, "plate_size": list(d.mapping.plate_size),
            "display_note": d.display_note}


# --- pass 1 / gate / pass 2 (the engine) ---------------------------------------------------------
def _removal_key(*extra: str) -> Callable[[StageContext], KeyParts]:
    def key(ctx: StageContext) -> KeyParts:
        params = {"prompt": ctx.prompt, "seed": ctx.shot.seed, "steps": ctx.shot.steps}
        params |= {k: getattr(ctx.shot, k) for k in extra}
        return KeyParts(params=params, model=True)
    return key


def _pass1(ctx: StageContext, out: Path) -> dict:
    from void_engine.stages import run_pass1

    run_pass1(ctx.decoded(), ctx.engine, ctx.prompt, ctx.removal_params(), out / "pass1.npy",
              progress=ctx.progress)
    return {"engine": ctx.engine_name}


def _no_pass2(ctx: StageContext) -> str | None:
    if not ctx.facts.supports_pass2:
        return f"engine {ctx.engine_name} has no pass 2"
    return "passes=1" if ctx.shot.passes == "1" else None


def _needs_gate(ctx: StageContext) -> str | None:
    reason = _no_pass2(ctx)
    return reason or ("passes=2: pass 2 always runs" if ctx.shot.passes == "2" else None)


def _gate_key(ctx: StageContext) -> KeyParts:
    from void_engine.masks import gate

    vlm = ctx.masks_spec.vlm  # the VLM judge can add pass 2 where the measure says no
    threshold = ctx.options.gate_threshold  # the effective one: a new default re-decides
    threshold = gate.DEFAULT_THRESHOLD if threshold is None else threshold
    return KeyParts(params={"threshold": threshold, "code": gate.__version__,
                            "judge": [vlm.backend, vlm.model] if vlm else None})


def _gate(ctx: StageContext, out: Path) -> dict:
    from void_engine.masks import gate
    from void_engine.masks.judge import vlm_judge

    vlm = ctx.masks_spec.vlm
    r = gate.morphing_gate(ctx.decoded(), ctx.input("pass1", "pass1.npy"),
                           threshold=ctx.options.gate_threshold,
                           judge=vlm_judge(vlm) if vlm else None)
    facts = {"score": float(r.score), "threshold": float(r.threshold),
             "run_pass2": bool(r.run_pass2), "details": r.details}
    (out / "gate.json").write_text(json.dumps(facts, default=str))
    return facts


def _needs_pass2(ctx: StageContext) -> str | None:
    reason = _no_pass2(ctx)
    gate = ctx.up.get("gate")
    if reason or ctx.shot.passes != "auto" or gate is None:
        return reason
    if gate.status != "done":
        return f"gate did not run ({gate.note})"
    m = gate.meta
    return None if m.get("run_pass2") else \
        f"gate: score {m.get('score'):.3f} below threshold {m.get('threshold')}"


def _pass2(ctx: StageContext, out: Path) -> dict:
    from void_engine.stages import run_pass2

    run_pass2(ctx.decoded(), ctx.input("pass1", "pass1.npy"), ctx.engine, ctx.prompt,
              ctx.removal_params(), out / "pass2.npy", progress=ctx.progress)
    return {"engine": ctx.engine_name}


# --- encode: model-space result -> plate-resolution deliverables ---------------------------------
def _result_stage(ctx: StageContext) -> str:
    return "pass2" if ctx.up["pass2"].status == "done" else "pass1"


def _encode_key(ctx: StageContext) -> KeyParts:
    # The shot id names the files (and is burnt into the review media): shots with identical
    # content still get deliverables named after themselves.
    return KeyParts(params={"codec": ctx.shot.codec, "review": ctx.options.review,
                            "shot_id": ctx.shot.shot_id, "result": _result_stage(ctx),
                            "engine": ctx.engine_name})


def _encode(ctx: StageContext, out: Path) -> dict:
    from void_engine.shot import EncodedShot
    from void_engine.stages import encode_shot

    result = _result_stage(ctx)
    e = encode_shot(ctx.decoded(), ctx.input(result, f"{result}.npy"), out,
                    codec=ctx.shot.codec, review=ctx.options.review,
                    shot_id=ctx.shot.shot_id, engine=ctx.engine_name)
    e.to_json(out / EncodedShot.JSON)
    return {"from": result, "frames": e.frames, "qc": e.qc}


def _never(ctx: StageContext) -> str | None:
    return None


STAGES: list[Stage] = [
    Stage("segmentation", "1", upstream=(), outputs=("black_mask.mp4",),
          placement=Placement.MASKS, runs="void_engine.masks.segment.segment_shot",
          key=_segmentation_key, skip=_needs_prompts, run=_segment),
    Stage("vlm_quadmask", "3", upstream=("segmentation",),
          outputs=("quadmask.mp4", PROMPT_FILE),
          placement=Placement.MASKS, runs="void_engine.masks.reasoning.build_quadmask",
          key=_reasoning_key, skip=_needs_reasoning, run=_reason, degraded=_degraded_mask),
    Stage("decode", "2", upstream=("vlm_quadmask",),
          outputs=("decoded.json", "clip.npy", "mask.npy"), placement=Placement.CPU,
          runs="void_engine.stages.decode_shot", key=_decode_key, skip=_never, run=_decode),
    Stage("pass1", "1", upstream=("vlm_quadmask", "decode"), outputs=("pass1.npy",),
          placement=Placement.ENGINE, runs="void_engine.stages.run_pass1",
          key=_removal_key(), skip=_never, run=_pass1, retries=2),
    Stage("gate", "1", upstream=("decode", "pass1"), outputs=("gate.json",),
          placement=Placement.CPU, runs="void_engine.masks.gate.morphing_gate",
          key=_gate_key, skip=_needs_gate, run=_gate),
    Stage("pass2", "1", upstream=("vlm_quadmask", "decode", "pass1", "gate"),
          outputs=("pass2.npy",),
          placement=Placement.ENGINE, runs="void_engine.stages.run_pass2",
          key=_removal_key("pass2_steps", "guidance_scale"), skip=_needs_pass2, run=_pass2,
          retries=2),
    Stage("encode", "2", upstream=("decode", "pass1", "pass2"),
          outputs=("encoded.json", "<shot_id>.<ext>", "<shot_id>_matte.mkv"),
          placement=Placement.CPU, runs="void_engine.stages.encode_shot", key=_encode_key,
          skip=_never, run=_encode),
]


def stage(name: str) -> Stage:
    for s in STAGES:
        if s.name == name:
            return s
    raise KeyError(f"no stage {name!r} (stages: {', '.join(s.name for s in STAGES)})")


def stage_names() -> list[str]:
    return [s.name for s in STAGES]
