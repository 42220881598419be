"""`void-batch run --dry-run`: per shot, what a run would do with each stage, decided exactly
as the flow decides (tasks.runner.resolve), without Prefect, Ray or any stage running.

A stage after one that must run cannot be looked up (its key needs that stage's output), so
it reads "after <stage>" unless the shot skips it regardless."""
from __future__ import annotations

from manifests.loader import Manifest, select
from tasks.context import StageContext
from tasks.graph import STAGES
from tasks.options import RunOptions
from tasks.runner import resolve


def plan_shot(shot, options: RunOptions) -> list[tuple[str, str]]:
    known, first_run, plan = {}, None, []
    for s in STAGES:
        ctx = StageContext(shot, options, {u: known[u] for u in s.upstream if u in known})
        if first_run is not None:
            plan.append((s.name, _after(s, ctx, first_run)))
            continue
        try:
            out = resolve(s, ctx)
        except Exception as exc:  # what the run would report for this shot
            plan.append((s.name, f"fails: {exc}"))
            first_run = s.name
            continue
        if out is None:
            plan.append((s.name, "run"))
            first_run = s.name
        else:
            known[s.name] = out
            plan.append((s.name, "cached" if out.status == "done" else f"skip ({out.note})"))
    return plan


def _after(stage, ctx: StageContext, first_run: str) -> str:
    try:
        reason = stage.skip(ctx)
    except KeyError:  # the decision needs an upstream result: known only after it ran
        return f"after {first_run}"
    return f"skip ({reason})" if reason else f"after {first_run}"


def print_plan(manifest: Manifest, options: RunOptions) -> int:
    run = options.resolved()
    picked, invalid = select(manifest, run.shots, run.tags)
    width = max((len(s.name) for s in STAGES), default=8)
    for i in picked:
        shot = manifest.shots[i]
        print(f"{shot.shot_id}:")
        for name, decision in plan_shot(shot, run):
            print(f"  {name:<{width}}  {decision}")
    for errs in invalid:
        print(f"{errs[0].shot_id or '?'}: rejected by the manifest: "
              f"{'; '.join(e.message for e in errs)}")
    return 1 if invalid else 0
