"""The real-QEMU variant of the fault suite's cluster: `herd-node` processes on QEMU hosts
(`ctl.dev.qemu.QemuHosts`, one libvirtd per host in namespaces of its own) instead of on
test-driver node files, watched from outside Herd by a hostwatch process.

`QemuNodes` stands in for `tests.support.cluster.LocalCluster` (same process handling:
pid files, signals, the fence log) with what differs on real hosts:
- each node's config has `libvirt_uri = host.uri` and `address = host.address` (so live
  migrations reach the peer), and the fence agent powers the HOST off
  (`python -m ctl.dev.qemu power-off`: herd-node, guests, libvirtd);
- `start(name)` boots the host again first when it is powered off;
- host deaths are the fence agent's power-offs only: a daemon kill -9 or SIGTERM leaves
  the guests running on their host (`deaths()`);
- `up()` makes the hosts and starts `tests.support.hostwatch` on them (the run's
  independent history, `history`), `down()` stops both.
Used by tests/support/chaos/cluster.py (`ChaosCluster(hosts=...)`) and run.py.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from ctl.dev.nodes import node_config, write_qemu_fence_agent
from ctl.dev.qemu import QemuHosts
from tests.support.cluster import LocalCluster
from tests.support.hostwatch import HostwatchProcess

POWER_OFF_WAIT = 30.0  # seconds a reboot waits for the fence agent to finish a power-off


class QemuNodes(LocalCluster):
    """herd-node per QEMU host; see the module docstring."""

    def __init__(self, directory: Path, *, hosts: QemuHosts, zk_hosts: str, zk_root: str,
                 zk_timeout: float = 3.0, status_interval: float = 1.0) -> None:
        # Not LocalCluster.__init__: no test-driver node files, another fence agent.
        self.dir = directory
        self.names = hosts.names
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._killed: list[tuple[str, float]] = []
        self.hosts = hosts
        self.history = directory / "history.jsonl"
        self.watch: HostwatchProcess | None = None
        fence = write_qemu_fence_agent(directory, hosts=hosts.dir, python=sys.executable)
        for name in self.names:
            config = yaml.safe_load(node_config(
                name, zk_hosts=zk_hosts, zk_root=zk_root, libvirt_uri=hosts[name].uri,
                fence=fence, address=hosts[name].address,
                event_log=directory / f"{name}.events"))
            config.update(zk_timeout=zk_timeout, status_interval=status_interval)
            (directory / f"{name}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    def up(self) -> None:
        """The hosts, then the recorder on them (ready before any herd-node starts)."""
        self.hosts.up()
        uris = {h.name: h.uri for h in self.hosts.hosts.values()}
        self.watch = HostwatchProcess(self.history, uris)
        self.watch.start()

    def down(self) -> None:
        if self.watch is not None:
            self.watch.stop()
        self.hosts.down()

    def host_down(self, name: str) -> bool:
        return self.hosts[name].daemon_pid("libvirtd") is None

    def start(self, name: str) -> None:
        """Boot the host if it is powered off (fenced), then start its herd-node."""
        if self.host_down(name):
            self.hosts.start(name)
        super().start(name)

    def await_power_off(self, name: str, *, since: float, stop: threading.Event) -> None:
        """Until the fence agent logged a power-off of `name` after `since` (it kills
        herd-node first, the host after: booting the host in between would race it), or
        POWER_OFF_WAIT passes (the daemon ended by itself: nothing to wait for)."""
        deadline = time.monotonic() + POWER_OFF_WAIT
        while time.monotonic() < deadline and not stop.is_set():
            if any(n == name and t >= since - 1.0 for n, t in self._fence_log()):
                return
            stop.wait(0.1)  # the agent's log file: nothing to wait on

    def deaths(self) -> dict[str, list[float]]:
        """Host deaths: the fence agent's power-offs (daemon ends kill no guest here)."""
        out: dict[str, list[float]] = {}
        for node, t in self._fence_log():
            out.setdefault(node, []).append(t)
        return out


