"""A Ray cluster of several nodes on this machine, each node one `ray start --block` in its own
session (so a node, with its raylet and every worker it started, can be killed as a whole), with
token authentication and fake GPU counts."""
from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil

from testkit.cli import free_port, wait_until
from void_batch.services import _process

RAY = str(Path(sys.executable).with_name("ray"))


class RayCluster:
    def __init__(self, root: Path, env: dict[str, str]):
        # Ray's unix sockets live under its temp dir: keep the path short.
        self.temp_dir = Path(tempfile.mkdtemp(prefix="vbray-"))
        self.root = root
        token = root / "ray-token"
        token.write_text(secrets.token_hex(32))
        token.chmod(0o600)
        self.env = {**env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token),
                    "RAY_USAGE_STATS_ENABLED": "0"}
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.nodes: dict[str, psutil.Process] = {}

    def start_head(self, num_cpus: int, num_gpus: int) -> None:
        self._start("head", ["--head", f"--port={self.port}", f"--temp-dir={self.temp_dir}",
                             "--include-dashboard=false"], num_cpus, num_gpus)
        wait_until(lambda: (self.temp_dir / "ray_current_cluster").is_file(), 120, "ray head")

    def add_worker(self, name: str, num_cpus: int, num_gpus: int, wait: bool = True) -> None:
        self._start(name, [f"--address={self.address}"], num_cpus, num_gpus)
        if wait:  # `ray start` says so once its raylet has joined the cluster
            log = self.root / f"{name}.log"
            wait_until(lambda: "Ray runtime started" in log.read_text(errors="replace"), 120,
                       f"ray node {name}", interval=0.2)

    def _start(self, name: str, args: list[str], num_cpus: int, num_gpus: int) -> None:
        cmd = [RAY, "start", "--block", "--node-ip-address=127.0.0.1", "--disable-usage-stats",
               f"--num-cpus={num_cpus}", f"--num-gpus={num_gpus}", *args]
        self.nodes[name] = _process.spawn_detached(cmd, self.env, self.root / f"{name}.log")

    def node_of(self, pid: int) -> str | None:
        """The node whose session a process (e.g. an actor's worker) belongs to."""
        try:
            sid = os.getsid(pid)
        except OSError:
            return None
        return next((name for name, p in self.nodes.items() if p.pid == sid), None)

    def kill_node(self, name: str) -> None:
        """SIGKILL a node and every process of it, as a machine that dies would."""
        for p in _process.session_members(self.nodes[name]):
            with contextlib.suppress(psutil.Error):
                p.send_signal(signal.SIGKILL)

    def stop(self) -> None:
        for name in reversed(list(self.nodes)):
            _process.stop_tree(self.nodes[name], 5)
        subprocess.run(["rm", "-rf", str(self.temp_dir)], check=False)
