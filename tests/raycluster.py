"""A real Ray cluster on 127.0.0.1 for tests: a head node and worker nodes, each its own process group.

Each node is ``ray start --block``, started in a new session, so a test can kill one node
(raylet and its workers) with one signal, as a machine failure would, and the teardown
stops exactly the processes it started (``ray stop`` would stop every Ray on the machine).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).with_name("ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: Token authentication, with a token of this test run's own, shared by the nodes and the
#: driver (this process). Set before ray is imported: Ray reads it once per process.
AUTH = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
os.environ.update(AUTH)


def _env() -> dict[str, str]:
    env = dict(os.environ) | AUTH
    # Workers import this checkout's dedup, whatever the venv's install points at.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    return env


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (from /proc: raylet, workers, actors)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def running(pid: int, name: str) -> list[int]:
    """Processes below ``pid`` whose command line (Ray's process title) contains ``name``."""
    out = []
    for child in descendants(pid):
        with contextlib.suppress(OSError):
            if name.encode() in Path(f"/proc/{child}/cmdline").read_bytes():
                out.append(child)
    return out


@dataclass
class LocalRayCluster:
    """Nodes started on loopback; ``address`` is the head's GCS address."""

    temp_dir: Path
    logs: Path
    object_store_bytes: int = 300_000_000
    address: str = ""
    nodes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_head(self, cpus: int = 1) -> None:
        port = _free_port()
        self.address = f"127.0.0.1:{port}"
        self._start(
            "--head",
            f"--port={port}",
            "--include-dashboard=false",
            f"--temp-dir={self.temp_dir}",
            f"--num-cpus={cpus}",
            log="head",
        )

    def add_worker(self, cpus: int = 1) -> subprocess.Popen[bytes]:
        return self._start(f"--address={self.address}", f"--num-cpus={cpus}", log=f"worker{len(self.nodes)}")

    def _start(self, *args: str, log: str) -> subprocess.Popen[bytes]:
        out = (self.logs / f"{log}.log").open("wb")
        node = subprocess.Popen(
            [
                str(RAY),
                "start",
                "--block",
                "--node-ip-address=127.0.0.1",
                f"--object-store-memory={self.object_store_bytes}",
                "--disable-usage-stats",
                *args,
            ],
            env=_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.nodes.append(node)
        return node

    def wait_for(self, alive: int, timeout: float = 120.0) -> None:
        """Block until ``alive`` nodes are up (the caller is connected with ``ray.init``)."""
        import ray

        deadline = time.monotonic() + timeout
        while sum(1 for n in ray.nodes() if n.get("Alive")) < alive:
            if time.monotonic() > deadline:
                raise TimeoutError(f"Ray cluster at {self.address}: fewer than {alive} nodes after {timeout:.0f} s")
            time.sleep(0.5)

    def kill(self, node: subprocess.Popen[bytes]) -> None:
        """Kill a node and everything it started, at once (SIGKILL), as a machine failure would."""
        for pid in [node.pid, *descendants(node.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.pid, signal.SIGKILL)
        node.wait(timeout=30)

    def stop(self) -> None:
        """Stop every node started here: workers first, then the head."""
        for node in reversed(self.nodes):
            if node.poll() is None:
                try:
                    os.killpg(node.pid, signal.SIGTERM)
                    node.wait(timeout=20)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    self.kill(node)
            self.kill(node)  # a node's children may outlive its `ray start`


@contextlib.contextmanager
def connected_cluster(base: Path, workers: int = 1, head_cpus: int = 1) -> Iterator[LocalRayCluster]:
    """A head and ``workers`` one-CPU worker nodes, with this process connected as the driver.

    With ``head_cpus=0`` the head only coordinates (as in production): all work runs on workers.
    """
    import ray

    # Ray's sockets live under its temp dir, and AF_UNIX paths are limited to 107 bytes:
    # a short folder of its own, not pytest's long per-test one (which keeps the node logs).
    short = Path(tempfile.mkdtemp(prefix="dray-"))
    nodes = LocalRayCluster(short, logs=base)
    nodes.start_head(cpus=head_cpus)
    try:
        deadline = time.monotonic() + 60
        while True:  # the head's GCS takes a few seconds to listen
            try:
                ray.init(address=nodes.address, logging_level="WARNING", log_to_driver=False)
                break
            except (ConnectionError, RuntimeError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        for k in range(workers):  # one at a time: two raylets starting together can time out on 2 cores
            nodes.add_worker(cpus=1)
            nodes.wait_for(2 + k)
        yield nodes
    finally:
        ray.shutdown()
        nodes.stop()
        shutil.rmtree(short, ignore_errors=True)
