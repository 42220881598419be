"""Test-wide settings. Environment first: HF_HUB_OFFLINE must be set before huggingface_hub
is imported, and Prefect must never touch the user's ~/.prefect."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

_TMP_HOME = tempfile.mkdtemp(prefix="void-batch-tests-")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("PREFECT_HOME", os.path.join(_TMP_HOME, "prefect"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TQDM_DISABLE", "1")
# A `void-batch run` a test starts gets per-command services that end with it, never the
# background server and Ray head a user's first run leaves running (the services tests ask
# for those explicitly: testkit.cli.cli_env).
os.environ.setdefault("VOID_BATCH_LOCAL_SERVICES", "temporary")

import pytest  # noqa: E402

pytest_plugins = ["testkit.mask_fixtures", "testkit.batch_fixtures"]

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VOID_SHARED", REPO.parent / "shared")).resolve()
SAMPLES = SHARED / "samples"
PARITY = SHARED / "parity"


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    if not SAMPLES.is_dir():
        pytest.fail(f"sample clips not found at {SAMPLES} (set VOID_SHARED)")
    return SAMPLES


@pytest.fixture(scope="session")
def parity_dir() -> Path:
    if not PARITY.is_dir():
        pytest.fail(f"parity fixtures not found at {PARITY} (set VOID_SHARED)")
    return PARITY
