"""Resident model actors on Ray: a model loads once per GPU and serves every shot of every run.

Two kinds, one class (`ResidentActor`), placed by tasks.graph.Placement:
- engine actors hold an engine (the 5B VOID model): one per GPU in the cluster, each taking
  ENGINE_GPU_SHARE of its GPU, named `void-engine-<model id>-gpu<i>`;
- masks actors hold SAM2 (+ grounding) models: MASKS_ACTORS of them, MASKS_GPU_SHARE each,
  named `void-masks-<model id>-<i>`, so a GPU node serves SAM2 beside VOID and the flow
  process holds no model.
On a cluster without GPUs both run on CPU (zero GPU requests).

Why this shape (measured behaviour of Ray 2.60, see docs/orchestration.md):
- named, *detached*, `max_restarts=-1`, `max_task_retries=2`: a crashed actor restarts (its
  `__init__` reloads the model) and the in-flight call is retried; a non-detached actor, or a
  dropped handle, lets Ray collect it and the model reloads on the next call;
- handles are created or looked up once per process under a lock and kept (`Residents`);
- one engine model per GPU: asking for model B evicts model A's engine actors, so a 1-GPU box
  cannot dead-lock with two models each waiting for the GPU;
- calls are idempotent: an actor reads its inputs from the cache store and commits a new entry
  at a content-addressed key (tasks.runner.execute), returning only the small Outcome.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import ray

from tasks.records import EngineSpec, MasksSpec

log = logging.getLogger(__name__)
NAMESPACE = "void-batch"
CALL_TIMEOUT_S = float(os.environ.get("VOID_BATCH_ACTOR_TIMEOUT", 6 * 3600))
ENGINE_GPU_SHARE = float(os.environ.get("VOID_BATCH_ENGINE_GPU_SHARE", 0.75))
MASKS_GPU_SHARE = float(os.environ.get("VOID_BATCH_MASKS_GPU_SHARE", 0.25))
MASKS_ACTORS = int(os.environ.get("VOID_BATCH_MASKS_ACTORS", 1))
ENGINE_PREFIX, MASKS_PREFIX = "void-engine-", "void-masks-"


class ResidentActor:
    """Holds one engine or one set of mask models resident; runs the stages placed on it."""

    def __init__(self, spec: EngineSpec | MasksSpec):
        t0 = time.perf_counter()
        self.spec = spec
        self.model = spec.build()
        self.load_seconds = time.perf_counter() - t0
        self.calls = 0

    def run_stage(self, stage_name: str, shot, options, up: dict, flow_run_id: str = ""):
        from tasks.context import StageContext
        from tasks.graph import stage
        from tasks.runner import execute

        _raise_if_cancelled()  # a call cancelled while it waited in this actor's queue
        self.calls += 1
        ctx = StageContext(shot, options, up, resident=self.model,
                           progress=lambda done, total: _raise_if_cancelled())
        out = execute(stage(stage_name), ctx, flow_run_id)
        if self.calls == 1:  # this call waited for the model to load
            out.load_seconds = self.load_seconds
        return out

    def stats(self) -> dict:
        """What `void-batch actors list` shows."""
        import psutil

        return {"model_id": self.spec.model_id, "pid": os.getpid(),
                "node": ray.get_runtime_context().get_node_id(),
                "gpu_ids": [str(g) for g in ray.get_gpu_ids()], "calls": self.calls,
                "load_seconds": round(self.load_seconds, 3),
                "rss_mb": round(psutil.Process().memory_info().rss / 2**20, 1)}


class StageCancelled(Exception):
    """The stage's call was cancelled (a stop request) while it ran."""


def _raise_if_cancelled() -> None:
    """Ray cannot interrupt a running method of a (stateful) actor; it sets a flag that the
    method checks. Stages report progress every step, so a cancelled call ends within one."""
    if ray.get_runtime_context().is_canceled():
        raise StageCancelled("cancelled by a stop request")


RemoteResidentActor = ray.remote(ResidentActor)


class Residents:
    """The one owner of this process's Ray connection and actor handles."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handles: dict[str, list] = {}  # actor name prefix -> handles
        self._next: dict[str, int] = {}
        # ObjectRefs of calls in progress -> their actors' name prefix (cancelled on stop;
        # a model is never evicted from a GPU while this process waits on one of its calls)
        self._inflight: dict = {}

    # ---- Ray ------------------------------------------------------------------------------------
    def connect(self, address: str | None = None) -> None:
        """Join `address` (or RAY_ADDRESS), or start a local Ray; reuse an initialised one.
        Ray 2.59+ enables token auth: a driver joining by address needs RAY_AUTH_MODE=token
        and the cluster's token (RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH)."""
        with self._lock:
            if ray.is_initialized():
                return
            address = address or os.environ.get("RAY_ADDRESS")
            if not address:
                log.warning("starting a local Ray instance (use --ray-address to join one)")
                ray.init(namespace=NAMESPACE, include_dashboard=False, log_to_driver=False)
                return
            try:
                ray.init(address=address, namespace=NAMESPACE, log_to_driver=False)
            except ConnectionError as exc:
                hint = "" if os.environ.get("RAY_AUTH_MODE") else (
                    " (Ray 2.59+ clusters use token auth: set RAY_AUTH_MODE=token and "
                    "RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH)")
                raise ConnectionError(f"cannot join Ray cluster at {address}: {exc}{hint}"
                                      ) from exc

    def gpus(self) -> int:
        """GPUs of the cluster this process has joined (0 before it joined one)."""
        if not ray.is_initialized():
            return 0
        return int(ray.cluster_resources().get("GPU", 0))

    # ---- actors ---------------------------------------------------------------------------------
    def actors(self, spec: EngineSpec | MasksSpec) -> list:
        """The resident actors of `spec`, created or looked up by name once per process."""
        engine, prefix = isinstance(spec, EngineSpec), _prefix(spec)
        while True:
            with self._lock:
                if prefix in self._handles:
                    return self._handles[prefix]
                gpus = int(ray.cluster_resources().get("GPU", 0))
                busy = [ref for ref, p in self._inflight.items()
                        if engine and gpus and p.startswith(ENGINE_PREFIX) and p != prefix]
                if not busy:
                    return self._create(spec, prefix, engine, gpus)
            # Another model holds the GPUs and this process still waits on it: let those calls
            # finish before evicting it (a mixed-engine batch takes turns, it does not fail).
            ray.wait(busy, num_returns=len(busy), timeout=CALL_TIMEOUT_S)

    def _create(self, spec, prefix: str, engine: bool, gpus: int) -> list:
        """Create (or look up) the actors of `spec`; called with the lock held."""
        if engine:
            if gpus:  # one engine model per GPU; CPU-only clusters have no GPU to free
                self._evict_engines_except(prefix)
            count, share = max(gpus, 1), ENGINE_GPU_SHARE
            names = [f"{prefix}gpu{i}" for i in range(count)]
        else:
            count, share = MASKS_ACTORS, MASKS_GPU_SHARE
            names = [f"{prefix}{i}" for i in range(count)]
        if not gpus:
            log.warning("Ray cluster has no GPU: %s runs on CPU", prefix.rstrip("-"))
        handles = [RemoteResidentActor.options(
            name=name, namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
            num_gpus=share if gpus else 0, num_cpus=0 if gpus or not engine else 1,
            max_restarts=-1, max_task_retries=2).remote(spec) for name in names]
        self._handles[prefix] = handles
        return handles

    def _evict_engines_except(self, keep_prefix: str) -> None:
        for a in ray.util.list_named_actors(all_namespaces=True):
            name = a["name"]
            if a["namespace"] == NAMESPACE and name.startswith(ENGINE_PREFIX) \
                    and not name.startswith(keep_prefix):
                try:
                    ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=True)
                    log.warning("evicted resident model actor %s to free its GPU", name)
                except ValueError:  # already gone
                    pass
        for prefix in [p for p in self._handles if p.startswith(ENGINE_PREFIX)]:
            del self._handles[prefix]

    def run_stage(self, spec: EngineSpec | MasksSpec, stage_name: str, *args: Any):
        """Round-robin over the spec's actors (Ray queues calls per actor: one at a time per
        GPU); blocks until the stage's Outcome is back. A call whose actor is lost (its node
        died, and Ray's own retries on the restarted actor ran out because no node can take
        it yet) is sent to the next actor, so a batch finishes on the GPUs it still has."""
        handles, prefix = self.actors(spec), _prefix(spec)
        with self._lock:
            key = id(handles)
            start = self._next.get(key, 0)
            self._next[key] = start + 1
        for attempt in range(len(handles)):
            handle = handles[(start + attempt) % len(handles)]
            with self._lock:
                ref = handle.run_stage.remote(stage_name, *args)
                self._inflight[ref] = prefix
            try:
                return ray.get(ref, timeout=CALL_TIMEOUT_S)
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as exc:
                if attempt == len(handles) - 1:
                    raise
                log.warning("%s lost its actor (%s); sending it to the next one", stage_name,
                            type(exc).__name__)
            finally:
                with self._lock:
                    self._inflight.pop(ref, None)

    def cancel_all(self) -> int:
        """Cancel every call in progress (a stop request): the waiting tasks fail promptly."""
        with self._lock:
            refs = list(self._inflight)
        for ref in refs:
            try:
                ray.cancel(ref)
            except Exception as exc:  # the call may have just finished
                log.debug("cancel %s: %s", ref, exc)
        return len(refs)


def _prefix(spec: EngineSpec | MasksSpec) -> str:
    """The name prefix of a spec's actors."""
    kind = ENGINE_PREFIX if isinstance(spec, EngineSpec) else MASKS_PREFIX
    return f"{kind}{spec.model_id}-"


RESIDENTS = Residents()
