"""Fixtures of the flow tests (a pytest plugin, loaded by tests/conftest.py): one Prefect test
server and one local Ray (2 CPUs, one declared fake GPU) for the whole session, started only
when a test asks for them, plus tiny synthetic shots written with the engine's own video IO."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from testkit.flows import TESTS, write_shot


@pytest.fixture(scope="session")
def prefect_server():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture(scope="session")
def ray_local():
    import ray

    # The engine actors import the test engines (testkit.engines): tests/ importable in Ray workers.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(TESTS), os.environ.get("PYTHONPATH")) if p)
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False,
             namespace="void-batch")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def batch_env(prefect_server, ray_local):
    """Everything a flow run needs."""
    import testkit.engines  # noqa: F401  (registers test-twopass in the driver)

    return None


@pytest.fixture
def tiny_shots(tmp_path):
    """A factory: n synthetic shot folders under tmp_path/shots."""
    def make(n: int = 2, **kw) -> list[Path]:
        return [write_shot(tmp_path / "shots", f"shot{i:02d}", seed=i, **kw) for i in range(n)]
    return make
