"""Benchmark plugin: a stand-in GPU engine whose every pass costs a fixed `cost` seconds (a
sleep: a GPU busy with one shot), on the trivial stage bodies of _trivial_stages, so
benchmarks/cluster_throughput.py measures how batch throughput scales with the number of engine
actors. Never used by the product."""
from __future__ import annotations

import time

import _trivial_stages  # noqa: F401  (trivial decode/encode: only the engine passes cost)

from void_engine.engines.base import Engine, register_engine


@register_engine("bench-fixed-cost")
class FixedCostEngine(Engine):
    name = "bench-fixed-cost"
    supports_pass2 = False

    def __init__(self, cost: float = 1.0):
        self.cost = float(cost)

    def pass1(self, clip, quadmask, prompt, params, progress=None):
        time.sleep(self.cost)
        return clip
