"""A cluster of real `herd-node` processes on libvirt test-driver node files, for e2e tests.

Each node gets a node file (8 vCPUs, 32 GiB), a YAML config, a log and a pid file in the
cluster's directory. Every node is a coordinator, and the fence agent is a `command` that
kills the fenced node's process by its pid file (its test-driver guests die with it, like
a power-off) and exits 0 only once it is gone. Nodes can be killed, stopped (SIGSTOP),
continued and started again. Used by tests/e2e.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ctl.dev.nodes import write_fence_agent, write_node_file

HERD_NODE = str(Path(sys.executable).with_name("herd-node"))



class LocalCluster:
    def __init__(self, directory: Path, *, zk_hosts: str, zk_root: str,
                 nodes: tuple[str, ...] = ("hv1", "hv2", "hv3"), zk_timeout: float = 3.0,
                 status_interval: float = 1.0, fence_ok: bool = True, cpus: int = 8,
                 memory_mib: int = 32768) -> None:
        self.dir = directory
        self.names = nodes
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._killed: list[tuple[str, float]] = []
        fence = write_fence_agent(directory, exit_code=0 if fence_ok else 1)
        for name in nodes:
            uri = write_node_file(directory, name, cpus=cpus, memory_mib=memory_mib)
            (directory / f"{name}.yaml").write_text(
                f"name: {name}\nzk_hosts: {zk_hosts}\nzk_root: {zk_root}\n"
                f"zk_timeout: {zk_timeout}\nlibvirt_uri: {uri}\ncoordinator: true\n"
                f"initial_domain_state: ready\nstatus_interval: {status_interval}\n"
                f"event_log: {directory / (name + '.events')}\n"
                f"fence:\n  default: {{agent: command, command: {fence}, timeout: 30}}\n")

    def start(self, name: str) -> None:
        with open(self.dir / f"{name}.log", "ab") as log:
            proc = subprocess.Popen([HERD_NODE, "--config", str(self.dir / f"{name}.yaml")],
                                    stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        self.procs[name] = proc
        (self.dir / f"{name}.pid").write_text(f"{proc.pid}\n")

    def start_all(self) -> None:
        for name in self.names:
            self.start(name)

    def signal(self, name: str, sig: int) -> None:
        if sig == signal.SIGKILL:
            self._killed.append((name, time.time()))
        self.procs[name].send_signal(sig)

    def reap(self, name: str, *, timeout: float = 30) -> int:
        return self.procs[name].wait(timeout=timeout)

    def fenced(self) -> list[str]:
        """The nodes the fence agent powered off, in order."""
        return [node for node, _t in self._fence_log()]

    def _fence_log(self) -> list[tuple[str, float]]:
        path = self.dir / "fenced.log"
        lines = path.read_text().splitlines() if path.exists() else []
        return [(line.split()[0], float(line.split()[1])) for line in lines if line.strip()]

    def deaths(self) -> dict[str, list[float]]:
        """When each node's process was killed (by a test or by the fence agent): its
        test-driver guests died with it, without a lifecycle event."""
        out: dict[str, list[float]] = {}
        for node, t in [*self._killed, *self._fence_log()]:
            out.setdefault(node, []).append(t)
        return out

    def event_logs(self) -> list[Path]:
        return sorted(self.dir.glob("*.events"))

    def stop_all(self) -> None:
        """SIGTERM (after SIGCONT, for stopped ones), then SIGKILL whatever is left."""
        for proc in self.procs.values():
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    def log(self, name: str) -> str:
        return (self.dir / f"{name}.log").read_text(errors="replace")
