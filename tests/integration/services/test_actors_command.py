"""`void-batch actors list|evict` on the local Ray head after a run: the resident engine actor is
listed with its node, GPU, model, calls served and memory, and evicting it unloads it."""
from __future__ import annotations

import json
import re

from testkit.cli import void_batch


def test_list_shows_the_resident_actor_and_evict_unloads_it(first_run, services_home):
    _, env = services_home
    listed = json.loads(void_batch("actors", "list", "--json", env=env).stdout)
    engines = [a for a in listed if a["name"].startswith("void-engine-")]
    assert len(engines) == 1, listed  # one fake GPU on the head: one engine actor
    (actor,) = engines
    assert actor["name"].startswith("void-engine-test-twopass-") and actor["name"].endswith(
        "-gpu0")
    assert actor["model_id"] in actor["name"]
    assert actor["calls"] >= 4  # the first run's 4 shots, a pass each (at least)
    assert actor["gpu_ids"] == ["0"]
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", actor["node"])  # the (only) node's address
    assert actor["rss_mb"] > 10 and actor["pid"] > 0 and actor["load_seconds"] >= 0

    table = void_batch("actors", "list", env=env).stdout
    assert actor["name"] in table and actor["node"] in table

    out = void_batch("actors", "evict", "--model", actor["model_id"], env=env).stdout
    assert f"evicted {actor['name']}" in out
    left = json.loads(void_batch("actors", "list", "--json", env=env).stdout)
    assert actor["name"] not in {a["name"] for a in left}
    missing = void_batch("actors", "evict", actor["name"], env=env, check=False)
    assert missing.returncode == 1 and "no such engine actor" in missing.stderr
