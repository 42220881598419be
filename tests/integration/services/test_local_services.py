"""The persistent local services, through the real CLI: the first `void-batch run` of a Prefect
home starts a Prefect server (UI on) and a Ray head in the background; they outlive the command,
the next run reuses them (same processes, the engine actor still loaded, run history kept), and
PREFECT_API_URL / --ray-address select other ones instead."""
from __future__ import annotations

import re

import httpx

from flows.report import read_report
from testkit.cli import cli_env, services_status, void_batch


def test_first_run_starts_services_that_outlive_it(first_run):
    err = first_run["proc"].stderr
    assert "starting the local Prefect server" in err
    assert "starting the local Ray head" in err
    status = first_run["status"]  # read after the command exited
    prefect, ray = status["prefect"], status["ray"]
    assert prefect["running"] and prefect["healthy"] and ray["running"]
    assert {r["status"] for r in read_report(first_run["out"])} == {"ok"}

    # The run's link, printed last, works: the UI is served and the run is in the API.
    out = first_run["proc"].stdout
    link = re.search(r"Prefect run: (http://\S+/runs/flow-run/([0-9a-f-]+))", out)
    assert link, out[-2000:]
    assert link.group(1).startswith(prefect["ui_url"])
    # as a browser asks for it (the UI's deep links are served for HTML navigations)
    page = httpx.get(link.group(1), headers={"Accept": "text/html"}, timeout=30)
    assert page.status_code == 200 and "<html" in page.text.lower()
    run = httpx.get(f"{prefect['api_url']}/flow_runs/{link.group(2)}", timeout=30).json()
    assert run["state_type"] == "COMPLETED"


def test_next_run_reuses_server_head_and_resident_actor(first_run, services_home,
                                                        tiny_manifest, tmp_path):
    home, env = services_home
    log = tmp_path / "engine.log"
    before = services_status(env)
    args = ("run", str(tiny_manifest), "--out", str(tmp_path / "out"), "--cache",
            str(tmp_path / "cache"), "--plugin", "testkit.engines", "--engine-opt", f"log={log}",
            "--shots", "shot00")
    for _ in range(2):  # the second run's engine calls go to the actor the first one loaded
        proc = void_batch(*args, env=env)
        assert "using the local Prefect server" in proc.stderr
        assert "using the local Ray head" in proc.stderr
        log.write_text(log.read_text() + "--\n")
        args = (*args[:5], str(tmp_path / "cache2"), *args[6:])
    after = services_status(env)
    assert after["prefect"]["pid"] == before["prefect"]["pid"]
    assert after["ray"]["pid"] == before["ray"]["pid"]
    first, second = (set(line.split()[1] for line in part.strip().splitlines())
                     for part in log.read_text().split("--\n")[:2])
    assert first and first == second  # the same resident actor process served both runs

    # Run history: every CLI run of this home so far is on the server, completed.
    runs = httpx.post(f"{after['prefect']['api_url']}/flow_runs/filter",
                      json={"flows": {"name": {"any_": ["nightly-batch"]}},
                            "flow_runs": {"deployment_id": {"is_null_": True}}},
                      timeout=30).json()
    assert len(runs) >= 3 and {r["state_type"] for r in runs} == {"COMPLETED"}


def test_configured_server_and_cluster_are_used_instead(first_run, services_home,
                                                        tiny_manifest, tmp_path):
    """PREFECT_API_URL and --ray-address (with the cluster's token) select other services:
    nothing is started in a fresh Prefect home."""
    _, env = services_home
    running = services_status(env)
    other_home = tmp_path / "other-home"
    other = cli_env(other_home, PREFECT_API_URL=running["prefect"]["api_url"],
                    RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=running["ray"]["token_path"])
    proc = void_batch("run", str(tiny_manifest), "--out", str(tmp_path / "out"), "--cache",
                      str(tmp_path / "cache"), "--plugin", "testkit.engines",
                      "--ray-address", running["ray"]["address"], "--shots", "shot01", env=other)
    assert f"Prefect API: {running['prefect']['api_url']}" in proc.stderr
    status = services_status(other)
    assert not status["prefect"]["running"] and not status["ray"]["running"]
    assert {r["status"] for r in read_report(tmp_path / "out")} == {"ok"}
