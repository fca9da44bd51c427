"""Self-fencing on real QEMU hosts (issue #17): hv1 has no fence agent that counts
(`fence: self`); its herd-watchdog (`reconciler.watchdog`) is petted by its herd-node
while that daemon holds its ZooKeeper session, which goes through a TCP forwarder the test
controls (`tests.support.tcpforward`).

- SIGSTOP of hv1's herd-node (a hung daemon), and separately a cut of its ZooKeeper
  connection (the daemon runs on, alone): the watchdog kills the daemon and powers the
  guest off, and only then (session expired + selfFenceTimeout + margin) does the primary
  on hv2 recover the guest there. Checked from outside by the recorder
  (`tests.support.hostwatch`): the guest's run on hv1 ended before its run on hv2 began,
  and it never ran on two hosts at once.
The cluster's processes are started by `herdctl` (`herdctl dev down` stops them); the
watchdog and the forwarders by this module, which stops them.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from store import events
from store.target import ZKTarget
from tests.support import hostwatch
from tests.support.libvirtd import process_alive, stop_pid
from tests.support.qemucluster import Cluster, running_cluster
from tests.support.tcpforward import Forwarder
from tests.support.waits import poll_until

pytestmark = pytest.mark.qemu

NODES = ("hv1", "hv2")
TIMEOUT = 3  # selfFenceTimeout, seconds
WATCHDOG = str(Path(sys.executable).with_name("herd-watchdog"))


@dataclass
class SelfFencing:
    """hv1's watchdog and its way to ZooKeeper."""

    cluster: Cluster
    socket: Path
    forwarders: list[Forwarder]

    def ask(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(self.socket))
            s.sendall(line.encode() + b"\n")
            return s.makefile().readline().strip()

    def fired(self) -> list[dict[str, Any]]:
        return list(json.loads(self.ask("status"))["fired"])

    def start_node(self) -> None:
        """hv1's herd-node again (after the watchdog killed it), ready, watchdog armed."""
        self.cluster.herdctl("dev", "start-node", "hv1")
        self.cluster.until("hv1", lambda n: n["alive"] and _armed(n), kind="Node")
        self.cluster.client.post("/node/hv1/domain-state",
                                 {"state": "ready", "wait": True, "timeout": 60}, timeout=70)


def _armed(node: dict[str, Any]) -> bool:
    status = node.get("status") or {}
    return status.get("daemonState") == "run" and \
        (status.get("watchdog") or {}).get("timeout") == TIMEOUT


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("qemu-selffence"), NODES) as made:
        yield made


@pytest.fixture(scope="module")
def hv1(cluster: Cluster) -> Iterator[SelfFencing]:
    sock = cluster.dir / "hv1-watchdog.sock"
    with open(cluster.dir / "hv1-watchdog.log", "ab") as log:
        watchdog = subprocess.Popen([WATCHDOG, "--socket", str(sock), "--libvirt-uri",
                                     cluster.hosts["hv1"].uri], stdout=log, stderr=log)
    target = ZKTarget.parse(cluster.zk_hosts)
    forwarders = [Forwarder((h, int(p)))
                  for h, _, p in (a.rpartition(":") for a in target.hosts.split(","))]
    try:
        poll_until(sock.exists, timeout=10, interval=0.05)
        made = SelfFencing(cluster, sock, forwarders)
        _self_fencing_hv1(made, zk_hosts=cluster.zk_hosts.replace(
            target.hosts, ",".join(f.address for f in forwarders)))
        yield made
    finally:
        for f in forwarders:
            f.close()
        watchdog.terminate()
        watchdog.wait(timeout=10)


def _self_fencing_hv1(made: SelfFencing, *, zk_hosts: str) -> None:
    """hv1's herd-node reaches ZooKeeper through the forwarders and pets the watchdog;
    its Node says `fence: self`; the cluster's selfFenceTimeout is short."""
    cluster = made.cluster
    cluster.ctl("config", "set", f"selfFenceTimeout={TIMEOUT}")
    stop_pid(cluster.node_pid("hv1"))  # a clean stop: the guests (none yet) stay
    path = cluster.dir / "nodes" / "hv1.yaml"
    config = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**config, "zk_hosts": zk_hosts,
                                    "watchdog_socket": str(made.socket)}))
    node = cluster.client.get("/node/hv1")
    spec = {**node["spec"], "fence": "self"}
    doc = {"apiVersion": "herd/v1", "kind": "Node", "metadata": {"name": "hv1"}, "spec": spec}
    (cluster.dir / "hv1-node.yaml").write_text(yaml.safe_dump(doc))
    cluster.ctl("apply", "-f", str(cluster.dir / "hv1-node.yaml"))
    made.start_node()


def _recovered(cluster: Cluster, vm: str, *, since: float) -> None:
    """The guest's run on hv1 ended before its run on hv2 began; never two runs."""
    history = cluster.history()
    events = [e for e in history if e.get("kind") == "event" and e.get("vm") == vm
              and float(e["t"]) >= since]
    off = [e["t"] for e in events if e["node"] == "hv1" and e["event"] == "stopped"]
    on = [e["t"] for e in events if e["node"] == "hv2" and e["event"] == "started"]
    assert off and on and off[0] < on[0], events
    now = time.time()
    runs = [i for i in hostwatch.running_from_events(history, end=now) if i.vm == vm]
    assert not hostwatch.double_runs(runs)
    assert not hostwatch.double_runs(
        [i for i in hostwatch.running_from_samples(history) if i.vm == vm])
    assert hostwatch.where(history, vm) == ["hv2"]


def _fenced_by_watchdog(made: SelfFencing, vm: str, *, fault: Callable[[int], None]) -> None:
    cluster = made.cluster
    cluster.define(vm, "hv1")
    cluster.state(vm, "start")
    daemon, fired_before = cluster.node_pid("hv1"), len(made.fired())
    since = time.time()
    fault(daemon)
    cluster.until(vm, lambda v: (v["status"] or {}).get("state") == "running"
                  and v["status"]["node"] == "hv2", timeout=90)
    assert not process_alive(daemon)  # killed by the watchdog
    [fired] = made.fired()[fired_before:]
    assert (fired["name"], fired["killed"], fired["guests"]) == ("hv1", daemon, [vm])
    _recovered(cluster, vm, since=since)
    with cluster.store() as store:
        [fenced] = [e for e in events.recent(store, limit=200) if e.get("kind") == "fenced"
                    and e.get("node") == "hv1" and e["time"] >= since]
    assert "watchdog" in fenced["message"]


def test_a_hung_daemon_is_fenced_by_its_watchdog(hv1: SelfFencing) -> None:
    _fenced_by_watchdog(hv1, "sf1", fault=lambda pid: os.kill(pid, signal.SIGSTOP))
    hv1.start_node()
    hv1.cluster.delete("sf1")


def test_a_node_cut_from_zookeeper_is_fenced_by_its_watchdog(hv1: SelfFencing) -> None:
    def cut(_pid: int) -> None:
        for f in hv1.forwarders:
            f.cut()
    try:
        _fenced_by_watchdog(hv1, "sf2", fault=cut)
    finally:
        for f in hv1.forwarders:
            f.restore()
    hv1.start_node()
    hv1.cluster.delete("sf2")
