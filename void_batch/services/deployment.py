"""The pull step of the Prefect deployments in infra/prefect.yaml (run by the worker before each
flow run): work in the void-batch checkout, so the deployments' entrypoints
(`flows/nightly_batch.py:...`) resolve.

The checkout is $VOID_BATCH_HOME in the worker's environment, else the checkout the worker's
own void-batch is installed from (`pip install -e .` by scripts/install.sh, as on every GPU
worker image). Prefect's stock `set_working_directory` step with `{{ $VOID_BATCH_HOME }}` failed
with an unhelpful error whenever the variable was missing from the worker's environment.
"""
from __future__ import annotations

import os
from pathlib import Path

ENTRYPOINT_FILE = Path("flows") / "nightly_batch.py"


def checkout_dir() -> Path:
    configured = os.environ.get("VOID_BATCH_HOME")
    if configured:
        home = Path(configured).expanduser()
        if not (home / ENTRYPOINT_FILE).is_file():
            raise FileNotFoundError(f"VOID_BATCH_HOME={configured} is not a void-batch checkout "
                                    f"(no {ENTRYPOINT_FILE})")
        return home
    import void_batch

    home = Path(void_batch.__file__).resolve().parents[1]
    if not (home / ENTRYPOINT_FILE).is_file():
        raise FileNotFoundError("void-batch is not installed from a checkout here: set "
                                "VOID_BATCH_HOME in the worker's environment to one")
    return home


def use_checkout() -> dict[str, str]:
    """Prefect pull step: chdir into the checkout; returns {"directory": ...}."""
    home = checkout_dir()
    os.chdir(home)
    return {"directory": str(home)}
