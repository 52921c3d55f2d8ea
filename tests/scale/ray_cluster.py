"""A real two-node Ray cluster on this machine for the tests: a head and a worker node, each started
with `ray start --block` as its own process group, so that teardown stops exactly the processes this
test started (a machine-wide `ray stop --force` would also kill other people's Ray sessions).

Ray replaces 127.0.0.1 by the machine's own IP for its node address (it wants remotely reachable
nodes), but every port is chosen free by the test and the cluster lives only as long as the test.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_env() -> dict:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1",
           # The cluster is private to the test, so no token (CI has no ~/.ray/auth_token to share).
           "RAY_AUTH_MODE": "disabled"}
    return env


class LocalRayCluster:
    def __init__(self, cpus_per_node: int = 1):
        self.cpus = cpus_per_node
        # Unix socket paths must stay under ~100 characters: a short temp dir, not pytest's tmp_path.
        self.temp_dir = Path(tempfile.mkdtemp(prefix="dlray", dir="/tmp"))
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen] = []

    def _start(self, name: str, args: list[str]) -> None:
        log = open(self.temp_dir / f"{name}.log", "wb")
        cmd = [RAY, "start", "--block", "--node-ip-address", "127.0.0.1", "--num-cpus", str(self.cpus),
               "--disable-usage-stats", "--dashboard-agent-listen-port", str(free_port()), *args]
        self.procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=ray_env(),
                                           start_new_session=True))
        log.close()

    def start(self, timeout: float = 90) -> "LocalRayCluster":
        self._start("head", ["--head", "--port", str(self.port), "--include-dashboard=false",
                             "--temp-dir", str(self.temp_dir)])
        self._wait_nodes(1, timeout)
        self._start("worker", ["--address", self.address])
        self._wait_nodes(2, timeout)
        return self

    def _wait_nodes(self, n: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"ray start exited with {proc.returncode}:\n{self.logs()}")
            out = subprocess.run([RAY, "status", "--address", self.address], capture_output=True, text=True,
                                 env=ray_env(), timeout=60)
            if out.returncode == 0 and out.stdout.count("node_") >= n:
                return
            time.sleep(1)
        raise RuntimeError(f"the Ray cluster did not reach {n} nodes in {timeout}s:\n{self.logs()}")

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in self.temp_dir.glob("*.log"))

    def stop(self) -> None:
        """SIGTERM each node's process group, then SIGKILL what is left; remove the temp dir."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for proc in reversed(self.procs):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and any(_group_alive(p.pid) for p in self.procs):
                for proc in self.procs:
                    proc.poll()
                time.sleep(0.2)
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        _kill_stragglers(str(self.temp_dir))
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _kill_stragglers(marker: str) -> None:
    """SIGKILL any process left whose command line names this cluster's temp dir (ours alone)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            try:
                os.kill(int(entry.name), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Zombies still count as group members until reaped; /proc tells live ones apart.
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False
