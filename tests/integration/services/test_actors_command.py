"""`void-batch actors list|evict` on the local Ray head after a run: the resident engine actor is
listed with its node, GPU, model, calls served and memory, and evicting it unloads it."""
from __future__ import annotations

import json
import re

from testkit.cli import void_batch


def test_list_shows_the_resident_actor_and_evict_unloads_it(first_run, services_home):
    _, env = services_home
    listed = json.loads(void_batch("actors", "list", "--json", env=env).stdout)
    assert len(listed) == 1, listed  # one fake GPU on the head: one actor
    (actor,) = listed
    assert actor["name"].startswith("void-engine-test-twopass-") and actor["name"].endswith(
        "-gpu0")
    assert actor["engine"] == "test-twopass" and actor["model_id"] in actor["name"]
    assert actor["calls"] == 4  # the first run: 4 shots, one pass each
    assert actor["gpu_ids"] == ["0"]
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", actor["node"])  # the (only) node's address
    assert actor["rss_bytes"] > 10 * 2**20 and actor["pid"] > 0

    table = void_batch("actors", "list", env=env).stdout
    assert actor["name"] in table and actor["node"] in table

    out = void_batch("actors", "evict", "--model", actor["model_id"], env=env).stdout
    assert f"evicted {actor['name']}" in out
    assert json.loads(void_batch("actors", "list", "--json", env=env).stdout) == []
    missing = void_batch("actors", "evict", actor["name"], env=env, check=False)
    assert missing.returncode == 1 and "no such engine actor" in missing.stderr
