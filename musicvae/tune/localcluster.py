"""A Ray cluster of several nodes on one machine, for the multi-node test and ``bench/scaling.py``.

Each node is a real ``ray start`` process (``--head``, then ``--address``),
each with its own CPUs and a custom resource naming it, exactly as on a
cluster of machines, only all on this host. Token authentication stays on:
every node and every client gets the same generated token through
``RAY_AUTH_MODE``/``RAY_AUTH_TOKEN`` (:attr:`LocalCluster.env`).

Ray's own ``ray.cluster_utils.Cluster`` does this inside one Python process;
separate processes are used here so that a node can be killed (SIGKILL of
its process group) the way a machine dies.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

STARTED = "Ray runtime started."


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid``, from /proc (Linux; elsewhere none are found and only the process group is killed)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])  # the field after the (command) is the state, then the parent
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found


@dataclass
class LocalNode:
    name: str
    process: subprocess.Popen
    log: Path

    def kill(self) -> None:
        """SIGKILL the node's processes (``ray start --block``, its raylet and its workers): a machine lost.

        Ray starts each worker in a session of its own, outside the node's
        process group, so they are found as the node's descendants and killed
        with it: none may outlive its machine (and, say, still write a checkpoint).
        """
        workers = _descendants(self.process.pid)
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait()

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (Ray shuts the node down cleanly), then SIGKILL whatever is left."""
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=timeout)
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            pass
        self.kill()


@dataclass
class LocalCluster:
    """``with LocalCluster(logs) as cluster: cluster.add_node(...)``; the first node added is the head."""

    logs: Path
    dashboard: bool = False
    token: str = field(default_factory=lambda: secrets.token_hex(32))
    port: int = field(default_factory=free_port)
    dashboard_port: int = field(default_factory=free_port)
    nodes: list[LocalNode] = field(default_factory=list)
    temp_dirs: list[str] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        """The environment of any process that talks to this cluster (drivers, ``ray job submit``)."""
        return {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token, "RAY_USAGE_STATS_ENABLED": "0"}

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def add_node(self, name: str, cpus: int = 1, resources: dict[str, float] | None = None, timeout: float = 120) -> LocalNode:
        """Start a node with ``cpus`` CPUs and a custom resource ``name`` (so work can be pinned to, or counted on, it)."""
        ray = Path(sys.executable).parent / "ray"
        resources = {name: 1.0, **(resources or {})}
        command = [str(ray), "start", "--block", "--node-ip-address", "127.0.0.1", f"--num-cpus={cpus}", "--num-gpus=0"]
        command += [f"--resources={json.dumps(resources)}", "--disable-usage-stats"]
        # Each node gets a temp dir of its own, as each machine has its own disk: nodes sharing
        # one would delete each other's runtime-env files (a job's --working-dir is unpacked
        # there, and every node replaces its copy when it starts a worker). The head's also
        # keeps `ray start`'s record of the cluster's address out of /tmp/ray, where every later
        # ray.init() on this machine would find it (and, once the cluster is gone, hang on it).
        temp_dir = tempfile.mkdtemp(prefix="mvray-", dir="/tmp")  # short: Unix socket paths are capped at 107 bytes
        self.temp_dirs.append(temp_dir)
        command.append(f"--temp-dir={temp_dir}")
        if not self.nodes:
            command += ["--head", f"--port={self.port}", "--ray-client-server-port", str(free_port())]
            if self.dashboard:
                command += ["--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={self.dashboard_port}"]
            else:
                command += ["--include-dashboard=false"]
        else:
            command += [f"--address={self.address}"]
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"ray-{name}.log"
        process = subprocess.Popen(command, env=self.env, start_new_session=True, stdout=log.open("w"), stderr=subprocess.STDOUT)
        node = LocalNode(name, process, log)
        self.nodes.append(node)
        deadline = time.monotonic() + timeout
        while STARTED not in log.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Ray node '{name}' did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        return node

    def shutdown(self) -> None:
        for node in reversed(self.nodes):  # workers first, the head last
            node.stop()
        self.nodes.clear()
        for temp_dir in self.temp_dirs:
            shutil.rmtree(temp_dir, ignore_errors=True)
        self.temp_dirs.clear()

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
