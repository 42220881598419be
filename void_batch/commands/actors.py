"""`void-batch actors list|evict`: the resident engine actors (a loaded model per GPU)."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys

HELP = """\
Resident actors keep models loaded between runs: an engine actor per GPU (named
void-engine-<model id>-gpu<i>) and the masks actors (void-masks-<model id>-<i>), Ray namespace
"void-batch". `list` shows where each one runs, its GPU, model, the calls it served, its model
load time and memory; `evict` unloads them (all, one model, or named actors), freeing their
GPU share. The next run that needs a model loads it again. Cluster: --ray-address or
RAY_ADDRESS (with RAY_AUTH_MODE=token and the cluster's token); default: the local Ray head."""
NAMESPACE = "void-batch"
PREFIXES = ("void-engine-", "void-masks-")
STATS_TIMEOUT_S = 5.0  # an actor busy with a stage answers after it: shown as busy


def register(sub) -> None:
    p = sub.add_parser("actors", help="list or evict the resident engine actors (loaded models)",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=("list", "evict"), nargs="?", default="list")
    p.add_argument("names", nargs="*", help="evict: actor names (from `list`)")
    p.add_argument("--model", help="evict: every actor of this model id")
    p.add_argument("--all", action="store_true", help="evict: every engine actor")
    p.add_argument("--ray-address", help="Ray cluster (default: $RAY_ADDRESS, else the local "
                   "Ray head of `void-batch server`)")
    p.add_argument("--json", action="store_true", help="list as JSON")
    p.set_defaults(func=main)


def _connect(address: str | None) -> bool:
    """Join the cluster; False (with a message) when there is none to join."""
    address = address or os.environ.get("RAY_ADDRESS")
    if not address:
        from void_batch.services.ray_head import LocalRayHead

        head = LocalRayHead()
        status = head.status()
        if not status.running:
            print("no Ray cluster: the local Ray head is not running (and no --ray-address / "
                  "RAY_ADDRESS given), so no engine actor is resident", file=sys.stderr)
            return False
        os.environ.update(head.driver_env(status.address))
        address = status.address
    import ray

    ray.init(address=address, namespace=NAMESPACE, log_to_driver=False,
             logging_level="ERROR")
    return True


def _engine_actors() -> list[dict]:
    """Alive engine actors of the namespace, from Ray's state API (dashboard), else from the
    GCS's list of named actors."""
    import ray

    try:
        from ray.util.state import list_actors

        found = list_actors(filters=[("ray_namespace", "=", NAMESPACE), ("state", "=", "ALIVE")],
                            detail=True, raise_on_missing_output=False)
        return [{"name": a.name, "state": a.state, "node_id": a.node_id, "pid": a.pid,
                 "restarts": getattr(a, "num_restarts", None)}
                for a in found if (a.name or "").startswith(PREFIXES)]
    except Exception:  # no dashboard on this cluster: names only
        return [{"name": a["name"], "state": "ALIVE"}
                for a in ray.util.list_named_actors(all_namespaces=True)
                if a["namespace"] == NAMESPACE and a["name"].startswith(PREFIXES)]


def _with_stats(actors: list[dict]) -> list[dict]:
    """Each actor's own stats() (tasks.actors.ResidentActor), asked of all at once; an actor
    running a stage answers only after it, so one that does not answer in time is `busy`."""
    import ray

    addresses = {n["NodeID"]: n["NodeManagerAddress"] for n in ray.nodes()}
    refs = {}
    for a in actors:
        with contextlib.suppress(ValueError, AttributeError):
            refs[a["name"]] = ray.get_actor(a["name"], namespace=NAMESPACE).stats.remote()
    ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=STATS_TIMEOUT_S)
    for a in actors:
        ref = refs.get(a["name"])
        if ref is None or ref not in ready:
            a["stats_error"] = "busy"
            continue
        try:
            stats = ray.get(ref)
        except Exception as exc:  # e.g. an actor of an older build
            a["stats_error"] = type(exc).__name__
            continue
        a["node_id"] = stats.pop("node", None) or a.get("node_id")
        a.update(stats)
    for a in actors:
        a["node"] = addresses.get(a.get("node_id"))
    return actors


def _list(as_json: bool) -> int:
    actors = _with_stats(_engine_actors())
    if as_json:
        print(json.dumps(actors, indent=1, default=str))
        return 0
    if not actors:
        print("no resident actors")
        return 0
    print(f"{'actor':48} {'node':15} {'gpu':4} {'calls':>6} {'load s':>7} {'rss MiB':>8}")
    for a in sorted(actors, key=lambda a: a["name"]):
        node = a.get("node") or (a.get("node_id") or "-")[:12]
        print(f"{a['name']:48} {node:15} {','.join(a.get('gpu_ids') or []) or '-':4} "
              f"{a.get('calls', '-'):>6} {a.get('load_seconds', '-'):>7} "
              f"{a.get('rss_mb', '-'):>8}"
              + (f"  ({a['stats_error']})" if a.get("stats_error") else ""))
    return 0


def _evict(names: list[str], model: str | None, everything: bool) -> int:
    import ray

    if not (names or model or everything):
        print("evict: give actor names, --model ID or --all", file=sys.stderr)
        return 2
    present = {a["name"] for a in _engine_actors()}
    if everything:
        chosen = present
    else:
        chosen = set(names) | {n for n in present
                               if model and n.startswith(tuple(f"{p}{model}-" for p in PREFIXES))}
    missing = set(names) - present
    for name in sorted(chosen & present):
        ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=True)
        print(f"evicted {name}")
    if missing:
        print(f"error: no such engine actor: {', '.join(sorted(missing))}", file=sys.stderr)
        return 1
    if not chosen & present:
        print("nothing to evict")
    return 0


def main(args: argparse.Namespace) -> int:
    if not _connect(args.ray_address):
        return 0 if args.action == "list" else 1
    if args.action == "evict":
        return _evict(args.names, args.model, args.all)
    return _list(args.json)
