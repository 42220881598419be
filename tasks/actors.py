"""Resident engine actors on Ray: the model loads once per GPU and serves every shot of every run.

Shape (orchestration notes, recommended architecture 3-4 and P7-P11):
- one named, *detached* actor per GPU per model (`void-engine-<model id>-gpu<i>`, namespace
  "void-batch"), `num_gpus=1` (a whole GPU), `max_restarts=-1`, `max_task_retries=2`: a crashed
  actor is restarted (its `__init__` reloads the model) and the in-flight call is retried;
- handles are created or looked up once, under a lock, and kept for the process lifetime (a
  non-detached or dropped handle lets Ray collect the actor and reload the model, P7);
- one model per GPU: asking for model B evicts model A's actors from this namespace, so a 1-GPU
  box cannot dead-lock with two models each waiting for the GPU (P10);
- actor methods are idempotent: they read inputs from the cache store, write a new entry at a
  content-addressed key and return only the small `Entry` record, never arrays.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import logging
import os
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

import ray

log = logging.getLogger(__name__)
NAMESPACE = "void-batch"
CALL_TIMEOUT_S = float(os.environ.get("VOID_BATCH_ACTOR_TIMEOUT", 6 * 3600))


@dataclass(frozen=True)
class EngineSpec:
    """Which engine an actor holds. `plugins` are modules imported before create_engine (for
    engines registered outside void_engine, e.g. by a studio package or a test)."""

    name: str
    kwargs: tuple[tuple[str, Any], ...] = ()
    plugins: tuple[str, ...] = ()

    @classmethod
    def make(cls, name: str, plugins: tuple[str, ...] = (), **kwargs: Any) -> EngineSpec:
        return cls(name, tuple(sorted((k, v) for k, v in kwargs.items() if v is not None)),
                   tuple(plugins))

    @property
    def model_id(self) -> str:
        """Stable id of the loaded model: engine name + weights identity + other kwargs.
        Memoised unless a weights folder is involved (its files may change between runs)."""
        try:
            if any(k == "weights" for k, _ in self.kwargs):
                raise TypeError("not memoised")
            return _model_ids.setdefault(self, _model_id(self)) if self not in _model_ids \
                else _model_ids[self]
        except TypeError:  # weights, or an unhashable kwarg value
            return _model_id(self)


_model_ids: dict[EngineSpec, str] = {}


def _model_id(spec: EngineSpec) -> str:
    from tasks.cache import weights_id

    parts = {k: (weights_id(v) if k == "weights" else v) for k, v in spec.kwargs}
    blob = json.dumps({"engine": spec.name, "kwargs": parts}, sort_keys=True, default=str)
    return f"{spec.name}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


def build_engine(spec: EngineSpec):
    from void_engine.engines.base import create_engine

    for mod in spec.plugins:
        importlib.import_module(mod)
    return create_engine(spec.name, **dict(spec.kwargs))


class EngineActor:
    """Holds one engine resident; runs the GPU stages (pass 1, pass 2) into the cache store."""

    def __init__(self, spec: EngineSpec):
        self.spec = spec
        self.engine = build_engine(spec)
        self.calls = 0

    def describe(self) -> dict:
        e = self.engine
        return {"name": e.name, "supports_pass2": bool(e.supports_pass2),
                "model_size": list(e.model_size) if e.model_size else None,
                "frame_rules": dataclasses.asdict(e.frame_rules),
                "pid": os.getpid(), "gpu_ids": [str(g) for g in ray.get_gpu_ids()]}

    def health(self) -> dict:
        return {"ok": True, "pid": os.getpid(), "calls": self.calls}

    @ray.method(concurrency_group="control")  # answers while a pass runs (`void-batch actors`)
    def stats(self) -> dict:
        """Read-only: what `void-batch actors list` shows."""
        import psutil

        ctx = ray.get_runtime_context()
        torch = sys.modules.get("torch")  # only if the engine imported it
        gpu_mem = (torch.cuda.memory_reserved() if torch is not None
                   and torch.cuda.is_available() and torch.cuda.is_initialized() else None)
        return {"model_id": self.spec.model_id, "engine": self.spec.name, "calls": self.calls,
                "pid": os.getpid(), "node_id": ctx.get_node_id(),
                "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
                "rss_bytes": psutil.Process().memory_info().rss, "gpu_memory_bytes": gpu_mem}

    def run_pass(self, which: str, store_uri: str, key: str, decoded_entry, pass1_entry,
                 prompt: str, params: dict) -> Any:
        """Run pass 1 or 2 and commit the result at `key` (a no-op if a retry finds it done)."""
        from tasks.cache import CacheStore
        from tasks.records import load_decoded
        from void_engine import stages
        from void_engine.engines.base import RemovalParams

        self.calls += 1
        store = CacheStore(store_uri)
        done = store.lookup(which, key)
        if done is not None:  # a retried call after a crash that happened post-commit
            return done
        decoded = load_decoded(store, decoded_entry)
        rp = RemovalParams(**params)
        with store.staging(which, key) as tmp:
            out = tmp / f"{which}.npy"
            if which == "pass1":
                stages.run_pass1(decoded, self.engine, prompt, rp, out)
            else:
                p1 = store.local_dir(pass1_entry) / "pass1.npy"
                stages.run_pass2(decoded, p1, self.engine, prompt, rp, out)
            return store.commit(which, key, tmp, {"engine": self.spec.name,
                                                  "actor_pid": os.getpid()})


# "control": a second thread for stats(), so listing the actors never waits behind a pass
# (the passes keep the default group: one at a time per GPU).
RemoteEngineActor = ray.remote(concurrency_groups={"control": 1})(EngineActor)

_lock = threading.Lock()
_ray_lock = threading.Lock()
_handles: dict[str, list] = {}  # model id -> actor handles, kept alive for the process


def ensure_ray(address: str | None = None) -> None:
    """Join `address` (or RAY_ADDRESS), or start a local Ray on demand; reuse an initialised
    one. Ray 2.59+ enables token auth on local clusters: a driver joining by address needs
    RAY_AUTH_MODE=token and the cluster's token (RAY_AUTH_TOKEN / RAY_AUTH_TOKEN_PATH)."""
    with _ray_lock:
        if not ray.is_initialized():
            _init_ray(address or os.environ.get("RAY_ADDRESS"))


def _init_ray(address: str | None) -> None:
    if address:
        try:
            ray.init(address=address, namespace=NAMESPACE, log_to_driver=False)
        except ConnectionError as exc:
            hint = ("" if os.environ.get("RAY_AUTH_MODE") else
                    " (Ray 2.59+ clusters use token auth: set RAY_AUTH_MODE=token and "
                    "RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH)")
            raise ConnectionError(f"cannot join Ray cluster at {address}: {exc}{hint}") from exc
        return
    log.warning("starting a local Ray instance (use --ray-address to join a cluster)")
    ray.init(namespace=NAMESPACE, include_dashboard=False, log_to_driver=False)


def _evict_other_models(keep_prefix: str) -> None:
    for a in ray.util.list_named_actors(all_namespaces=True):
        name = a["name"]
        if a["namespace"] == NAMESPACE and name.startswith("void-engine-") \
                and not name.startswith(keep_prefix):
            try:
                ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=True)
                log.warning("evicted resident model actor %s to free its GPU", name)
            except ValueError:  # already gone
                pass
    for mid in [m for m in _handles if not f"void-engine-{m}-".startswith(keep_prefix)]:
        del _handles[mid]
        for spec in [s for s in _pools if s.model_id == mid]:
            del _pools[spec]


def engine_actors(spec: EngineSpec) -> list:
    """The resident actors for `spec`, one per GPU in the cluster (at least one), created at
    most once per process under a lock and looked up by name across processes and runs."""
    mid = spec.model_id
    with _lock:
        if mid in _handles:
            return _handles[mid]
        gpus = int(ray.cluster_resources().get("GPU", 0))
        if gpus == 0:
            log.warning("Ray cluster has no GPU: running engine %s on CPU", spec.name)
        prefix = f"void-engine-{mid}-"
        _evict_other_models(prefix)
        handles = [RemoteEngineActor.options(
            name=f"{prefix}gpu{i}", namespace=NAMESPACE, lifetime="detached",
            get_if_exists=True, num_gpus=1 if gpus else 0, num_cpus=0 if gpus else 1,
            max_restarts=-1, max_task_retries=2).remote(spec) for i in range(max(gpus, 1))]
        _handles[mid] = handles
        return handles


@dataclass
class ActorPool:
    """Round-robin over a model's resident actors (Ray queues calls per actor: one at a time
    on each GPU)."""

    spec: EngineSpec
    _next: int = 0
    _info: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def pick(self):
        handles = engine_actors(self.spec)
        with self._lock:
            h = handles[self._next % len(handles)]
            self._next += 1
        return h

    def describe(self) -> dict:
        with self._lock:
            if self._info:
                return self._info
        info = ray.get(engine_actors(self.spec)[0].describe.remote(), timeout=CALL_TIMEOUT_S)
        with self._lock:
            self._info = info
        return info

    def run_pass(self, *args: Any) -> Any:
        return ray.get(self.pick().run_pass.remote(*args), timeout=CALL_TIMEOUT_S)


def engine_traits(spec: EngineSpec) -> dict:
    """What the flow must know about an engine before running it (has it a pass 2?), read from
    the registered class without loading a model; falls back to asking a resident actor."""
    from void_engine.engines import base

    for mod in spec.plugins:
        importlib.import_module(mod)
    if spec.name not in base._REGISTRY and spec.name in base._LAZY:
        importlib.import_module(base._LAZY[spec.name])
    factory = base._REGISTRY.get(spec.name)
    if isinstance(factory, type):
        return {"supports_pass2": bool(factory.supports_pass2)}
    return {"supports_pass2": ActorPool(spec).describe()["supports_pass2"]}


_pools: dict[EngineSpec, ActorPool] = {}


def pool_for(spec: EngineSpec, address: str | None = None) -> ActorPool:
    """The process-wide ActorPool of `spec` (joins or starts Ray on first use, so a run whose
    GPU stages are all cached never touches Ray)."""
    ensure_ray(address)
    with _lock:
        if spec not in _pools:
            _pools[spec] = ActorPool(spec)
        return _pools[spec]
