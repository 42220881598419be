"""Long-lived local services the CLI starts in the background and reuses: a Prefect server (UI,
run history) and a Ray head (resident engine actors). Both are *meant to outlive the command
that started them*; `void-batch server status|stop` shows and stops them.

State (pid, address, log) lives in `<Prefect home>/void-batch-services/` (Prefect home is
$PREFECT_HOME, else ~/.prefect), beside the Prefect database the server uses. Nothing here is
used when PREFECT_API_URL / RAY_ADDRESS select another server or cluster.
"""
from __future__ import annotations

import os
from pathlib import Path


def prefect_home() -> Path:
    """$PREFECT_HOME or ~/.prefect, read without importing Prefect (~1.5 s)."""
    return Path(os.path.expanduser(os.environ.get("PREFECT_HOME") or "~/.prefect"))


def state_dir() -> Path:
    d = prefect_home() / "void-batch-services"
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    return d


def temporary_mode() -> bool:
    """VOID_BATCH_LOCAL_SERVICES=temporary: per-command server and Ray that end with it (CI,
    scratch machines); default `persistent`."""
    mode = os.environ.get("VOID_BATCH_LOCAL_SERVICES", "persistent").strip().lower()
    if mode not in ("persistent", "temporary"):
        raise ValueError(f"VOID_BATCH_LOCAL_SERVICES={mode!r}: use persistent or temporary")
    return mode == "temporary"
