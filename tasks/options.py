"""RunOptions: every setting of a batch run, in one pydantic model.

The CLI builds it from its flags, both flows take it as their one parameter, and a deployment
lists its fields under `parameters: options:` (infra/prefect.yaml). Stage tasks and resident
actors receive the *resolved* copy (absolute paths, the cache store's URI), so what a task
sees does not depend on the working directory of the process that runs it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from void_engine.config import DEFAULT_ENGINE


class RunOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    manifest: str = Field(description="Parquet manifest (local path or fsspec URI)")
    output_root: str = Field(description="<output_root>/<shot_id>/ + report.parquet/html")
    engine: str | None = Field(
        None, description=f"engine for every shot; None: the rows' engine column, else "
                          f"{DEFAULT_ENGINE!r}")
    weights: str | None = Field(None, description="weights folder of the engine")
    engine_opts: dict[str, Any] = Field(default_factory=dict,
                                        description="engine constructor options")
    cache: str | None = Field(None, description="stage cache store URI "
                                                "(default $VOID_BATCH_CACHE or ~/.cache)")
    ray_address: str | None = Field(None, description="Ray cluster to join")
    shots: list[str] | None = Field(None, description="only these shot ids")
    tags: list[str] | None = Field(None, description="only shots carrying any of these tags")
    failed_from: str | None = Field(None, description="rerun the failed shots of this report")
    plugins: list[str] = Field(default_factory=list,
                               description="modules that register extra engines")
    review: bool = Field(True, description="write review movie and contact sheet")
    gate_threshold: float | None = Field(None, description="morphing-gate threshold override")
    qc_flicker_max: float | None = Field(
        None, description="flag shots whose change region flickers more than this many times "
                          "the plate's own flicker (default $VOID_QC_FLICKER_MAX or 3)")
    qc_seam_max: float | None = Field(
        None, description="flag shots whose change-region edge is this many times sharper "
                          "than its surroundings (default $VOID_QC_SEAM_MAX or 1.5)")
    output_roots: list[str] = Field(
        default_factory=list, description="extra roots a row's output_uri may point into "
                                          "(besides output_root); never taken from a manifest")

    @field_validator("output_root", "manifest")
    @classmethod
    def _not_empty(cls, v: str) -> str:
        if not v:
            raise ValueError("must not be empty")
        return v

    def resolved(self) -> RunOptions:
        """Absolute local paths and the cache store's URI, for tasks and actors."""
        from tasks.cache import CacheStore

        return self.model_copy(update={
            "manifest": _absolute(self.manifest), "output_root": _absolute(self.output_root),
            "weights": _absolute(self.weights) if self.weights else None,
            "cache": CacheStore(self.cache).uri,
            "output_roots": [_absolute(r) for r in self.output_roots]})

    def engine_for(self, row_engine: str | None) -> str:
        """--engine wins; else the row's engine column; else the default engine."""
        return self.engine or row_engine or DEFAULT_ENGINE

    def load_manifest(self):
        """The run's manifest, validated as the run sees it: plugin engines registered first,
        the rows' engine column ignored when --engine overrides it, output_uri allowed inside
        the output root and the named --output-root roots only."""
        import importlib

        from manifests.loader import load_manifest

        for mod in self.plugins:
            importlib.import_module(mod)
        return load_manifest(self.manifest, output_roots=[self.output_root, *self.output_roots],
                             check_engines=self.engine is None)

    def qc_thresholds(self):
        from void_engine.qc import QCThresholds

        default = QCThresholds()
        return QCThresholds(flicker_ratio=self.qc_flicker_max or default.flicker_ratio,
                            seam=self.qc_seam_max or default.seam)

    def engine_kwargs(self) -> dict[str, Any]:
        kwargs = dict(self.engine_opts)
        if self.weights:
            kwargs["weights"] = self.weights
        return kwargs


def _absolute(uri: str) -> str:
    if "://" in uri and not uri.startswith("file://"):
        return uri.rstrip("/")
    return str(Path(os.path.expanduser(uri.removeprefix("file://"))).resolve())
