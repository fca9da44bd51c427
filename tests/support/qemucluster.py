"""The handle of a real-QEMU dev cluster for e2e tests (`tests/e2e/test_qemu_*.py`):
`running_cluster` brings one up (`herdctl dev up --hypervisor qemu`) with the outside
recorder (`tests.support.hostwatch`) and takes it down; `Cluster` is herdctl, the API
client, the hosts, the recorder and ZooKeeper, with the waits and checks the tests share.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ctl.client import Client
from ctl.dev import state
from ctl.dev.guest import guest_xml
from ctl.dev.qemu import HostsUnavailable, QemuHosts, probe
from store import events
from store.client import Store
from store.errors import NotFound
from tests.support import hostwatch

HERDCTL = str(Path(sys.executable).with_name("herdctl"))
WAIT = 60.0  # a verb's wait=true bound; migrations take ~2 s, a fence ~15 s


@dataclass
class Cluster:
    dir: Path
    client: Client
    hosts: QemuHosts
    watch: hostwatch.HostwatchProcess
    zk_hosts: str

    def history(self) -> list[dict[str, Any]]:
        """The recorder's history up to now: once it finished a sampling round that began
        after this call (a host's listing waits while its libvirtd starts or stops a QEMU)."""
        self.watch.sync()
        return hostwatch.load(self.watch.out)

    def herdctl(self, *args: str) -> str:
        done = subprocess.run([HERDCTL, *args, "--dir", str(self.dir)], capture_output=True,
                              text=True, timeout=180, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def ctl(self, *args: str) -> str:
        """herdctl against this cluster (any command; `herdctl` above is for `dev`)."""
        done = subprocess.run([HERDCTL, *args], capture_output=True, text=True, timeout=180,
                              env={**os.environ, "HERD_DEV_DIR": str(self.dir)},
                              stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def vm_events(self, vm: str, kind: str) -> list[dict[str, Any]]:
        """`herdctl vm events VM --kind KIND -o json` (GET /event)."""
        done = subprocess.run([HERDCTL, "vm", "events", vm, "--kind", kind, "-o", "json"],
                              capture_output=True, text=True, timeout=60,
                              env={**os.environ, "HERD_DEV_DIR": str(self.dir)},
                              stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stderr
        return list(json.loads(done.stdout))

    def node_pid(self, node: str) -> int:
        dev = state.load(self.dir)
        assert dev is not None
        return next(p.pid for p in dev.processes if p.role == f"node/{node}")

    def define(self, name: str, node: str, **meta: Any) -> None:
        self.client.post("/vm", {"xml": guest_xml(name), "node": node, **meta})

    def state(self, name: str, verb: str, *, wait: bool = True) -> Any:
        return self.client.post(f"/vm/{name}/state",
                                {"state": verb, "wait": wait, "timeout": WAIT}, timeout=WAIT + 10)

    def place(self, name: str, action: str, node: str | None = None) -> Any:
        body = {"action": action, "wait": True, "timeout": WAIT,
                **({"node": node} if node else {})}
        return self.client.post(f"/vm/{name}/node", body, timeout=WAIT + 10)

    def vm(self, name: str) -> dict[str, Any]:
        return dict(self.client.get(f"/vm/{name}"))

    def until(self, name: str, check: Callable[[dict[str, Any]], bool], *,
              timeout: float = WAIT, kind: str = "VM") -> dict[str, Any]:
        """The VM (or Node) once check(object) holds, following GET /watch (no polling)."""
        path = f"/{kind.lower()}/{name}"
        version = self.client.get(f"/{kind.lower()}")["resourceVersion"]
        current = dict(self.client.get(path))
        if check(current):
            return current
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            for event in self.client.watch(timeout=min(left, 10.0), kind=kind, name=name,
                                           resourceVersion=version):
                version = event.get("resourceVersion", version)
                if event.get("object") and check(event["object"]):
                    return dict(event["object"])
        raise AssertionError(f"{name} never got there: {self.client.get(path)}")

    def lease(self, network: str, mac: str, *, timeout: float) -> dict[str, Any]:
        """The network's lease of `mac` once the gateway recorded it (leases are not in the
        watch stream: asked every half second)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for lease in self.client.get(f"/network/{network}/lease")["items"]:
                if lease["mac"] == mac:
                    return dict(lease)
            time.sleep(0.5)  # a guest's firmware on another host: nothing to watch
        raise AssertionError(f"no lease for {mac} on {network} in {timeout:.0f} s")

    def delete(self, *names: str) -> None:
        for name in names:
            self.client.call("DELETE", f"/vm/{name}", query={"force": "true"})

    def events_of(self, vm: str, kind: str) -> list[dict[str, Any]]:
        with self.store() as store:
            return [e for e in events.recent(store, limit=500)
                    if e.get("vm") == vm and e.get("kind") == kind]

    @contextmanager
    def store(self) -> Iterator[Store]:
        store = Store(self.zk_hosts, "/herd")
        store.start()
        try:
            yield store
        finally:
            store.stop()

    def owned_by_daemon(self, vm: str, pid: int) -> bool:
        """The VM's owner znode belongs to the session of the herd-node process `pid`."""
        with self.store() as store:
            try:
                owner = store.get(store.paths.vm_owner(vm))
                alive = store.get(store.paths.node_alive(owner.doc["node"]))
            except NotFound:
                return False
        return bool(alive.doc.get("pid") == pid
                    and owner.stat.ephemeralOwner == alive.stat.ephemeralOwner)


@contextmanager
def running_cluster(directory: Path, nodes: tuple[str, ...]) -> Iterator[Cluster]:
    """A dev cluster of QEMU hosts in `directory` for the block (pytest skips where the
    hosts cannot be made here, saying why); always taken down after."""
    try:
        probe()
    except HostsUnavailable as e:
        pytest.skip(f"no QEMU hosts here: {e}")
    up = subprocess.run([HERDCTL, "dev", "up", "--hypervisor", "qemu", "--nodes",
                         str(len(nodes)), "--timeout", "180", "--dir", str(directory)],
                        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        dev = state.load(directory)
        assert dev is not None
        hosts = QemuHosts(directory / "hosts", nodes)
        watch = hostwatch.HostwatchProcess(directory / "history.jsonl",
                                           {h.name: h.uri for h in hosts.hosts.values()},
                                           interval=0.05)
        watch.start()
        try:
            yield Cluster(directory, Client(dev.url, token=dev.token, timeout=WAIT + 10),
                          hosts, watch, dev.zk_hosts)
        finally:
            watch.stop()
    finally:
        subprocess.run([HERDCTL, "dev", "down", "--dir", str(directory)], capture_output=True,
                       timeout=120, stdin=subprocess.DEVNULL)


def one_continuous_run(cluster: Cluster, vm: str, *, since: float, on: str) -> None:
    """From outside Herd: vm ran without a restart, never on two hosts, never nowhere,
    and is on `on` (and only there) now."""
    history = cluster.history()
    now = time.time()
    assert hostwatch.restarts(history, vm) == [], "the guest was restarted"
    assert hostwatch.absences(history, vm, since=since, until=now) == [], \
        "a sampling round found the guest on no host"
    assert not hostwatch.double_runs(
        [i for i in hostwatch.running_from_events(history, end=now) if i.vm == vm])
    assert not hostwatch.double_runs(
        [i for i in hostwatch.running_from_samples(history) if i.vm == vm])
    assert hostwatch.where(history, vm) == [on]
