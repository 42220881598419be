"""The persistent local Ray head: one `ray start --head --block` in the background, started by
the first `void-batch run` that needs Ray on a workstation and reused by every later one, so the
detached engine actors (and the model loaded in them) stay resident between runs, as they do on
a cluster. Token authentication is on (Ray 2.60 sets it up for local clusters by default): the
token is generated here, kept in a 0600 file, and handed to the head and to the CLI's driver
through RAY_AUTH_MODE=token + RAY_AUTH_TOKEN_PATH.

The head runs in its own temp dir (not /tmp/ray), so other users' `ray.init()` on the same
host neither join it nor disturb it, and it is stopped through its own pid (SIGTERM to
`ray start --block` stops the raylet, GCS and workers it started), never with `ray stop`,
which kills every Ray process of the host by name.
"""
from __future__ import annotations

import hashlib
import os
import secrets
import shlex
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from void_batch.services import _process

DEFAULT_PORT = 6380  # not Ray's 6379: a cluster head of the same host may hold that


@dataclass
class HeadStatus:
    running: bool
    address: str | None = None
    dashboard_url: str | None = None
    pid: int | None = None
    log: str | None = None
    token_path: str | None = None
    started: float | None = None


class LocalRayHead(_process.RecordedService):
    """Start / find / stop the persistent Ray head of this user (per Prefect home; `ensure`,
    `stop`: _process.RecordedService). Stopping it stops its actors and their models."""

    name, what, address_key = "ray-head", "the local Ray head", "address"

    def __init__(self) -> None:
        super().__init__()
        self.token_path = self.record_path.with_name("ray-auth-token")
        self.temp_dir = _short_temp_dir(self.record_path.with_name("ray"))

    def status(self) -> HeadStatus:
        rec, proc = self.running()
        if proc is None:
            return HeadStatus(running=False, log=str(self.log_path))
        return HeadStatus(running=True, address=rec["address"],
                          dashboard_url=rec.get("dashboard_url"), pid=proc.pid,
                          log=str(self.log_path), token_path=str(self.token_path),
                          started=rec.get("started"))

    def driver_env(self, address: str) -> dict[str, str]:
        """What a driver process needs to join this head (see driver_runtime_env for the
        hook)."""
        return {"RAY_ADDRESS": address, "RAY_AUTH_MODE": "token",
                "RAY_AUTH_TOKEN_PATH": str(self.token_path),
                "RAY_RUNTIME_ENV_HOOK": f"{__name__}.driver_runtime_env"}

    def _token(self) -> None:
        if not self.token_path.is_file() or not self.token_path.read_text().strip():
            fd = os.open(self.token_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))  # what `ray get-auth-token --generate` makes

    def _start(self) -> dict:
        self._token()
        port = _process.free_port(int(os.environ.get("VOID_BATCH_RAY_PORT", DEFAULT_PORT)) or None)
        dash_port = _process.free_port(None)
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        (self.temp_dir / "ray_current_cluster").unlink(missing_ok=True)  # written when ready
        ray_bin = Path(sys.executable).with_name("ray")
        cmd = [str(ray_bin)] if ray_bin.exists() else [sys.executable, "-m", "ray.scripts.scripts"]
        cmd += ["start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1",
                "--include-dashboard=true", "--dashboard-host=127.0.0.1",
                f"--dashboard-port={dash_port}", "--disable-usage-stats",
                f"--temp-dir={self.temp_dir}"]
        # Extra `ray start` options, e.g. "--num-gpus=2 --object-store-memory=4000000000".
        cmd += shlex.split(os.environ.get("VOID_BATCH_RAY_HEAD_ARGS", ""))
        env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN")}
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(self.token_path),
                   RAY_USAGE_STATS_ENABLED="0")
        return self._spawn(cmd, env, f"port {port}", address=f"127.0.0.1:{port}",
                           dashboard_url=f"http://127.0.0.1:{dash_port}",
                           temp_dir=str(self.temp_dir))

    def wait_ready(self, timeout: float = 120) -> None:
        """Block until `ray start` reports the head up (it writes the address file last)."""
        rec, proc = self._running_or_fail()
        marker = Path(rec["temp_dir"]) / "ray_current_cluster"
        _process.wait_for(marker.is_file, timeout, proc, self.what, self.log_path,
                          interval=0.2)


def driver_runtime_env(runtime_env: dict | None) -> dict:
    """Ray's RAY_RUNTIME_ENV_HOOK, called by the driver's `ray.init`: the job's workers (the
    engine actors) import from the driver's sys.path. Ray itself only passes on the driver's
    script folder and cwd; the head's workers would otherwise import from the environment of
    whichever command started the head, and not find plugins (`--plugin`) or a checkout on
    PYTHONPATH. An explicit PYTHONPATH in the runtime env wins."""
    env = dict(runtime_env or {})
    env_vars = dict(env.get("env_vars") or {})
    if "PYTHONPATH" not in env_vars:
        paths = [p for p in sys.path if p and os.path.isdir(p)]
        env_vars["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        env["env_vars"] = env_vars
    return env


def _short_temp_dir(preferred: Path) -> Path:
    """Ray puts unix sockets under its temp dir (`session_<date>_<pid>/sockets/...`), and a
    socket path may not exceed 107 bytes: fall back to a folder in /tmp named after the user
    and the state folder (two Prefect homes never share a head)."""
    # 107 bytes - len("/session_2026-12-01_06-51-37_759604_<pid>/sockets/plasma_store") ~ 42
    if len(str(preferred)) <= 36:
        return preferred
    tag = hashlib.sha256(str(preferred).encode()).hexdigest()[:8]
    return Path(tempfile.gettempdir()) / f"void-batch-ray-{os.getuid()}-{tag}"
