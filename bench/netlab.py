"""Pieces of the client-network benchmark (issue #14): a lab of network namespaces, node
daemons with networks on, networks written to ZooKeeper, the hand-made alternatives (the
links by `ip`/`bridge` commands, a plain dnsmasq) and a DHCP probe inside a guest.

- the lab of network namespaces is `tests.support.nodelab` (shared with the tests).
- `Bench`: the ZooKeeper, scratch and run directories every scenario shares.
- `RunRoot`: a fresh /run/herd-bench-XXXX (0755: dnsmasq reads its run dir as `nobody`).
- `Daemons`: in-process herd-node daemons (`tests.support.daemons.RunningDaemon`), all
  stopped and closed by `close()`, crashed ones too.
- `native_commands` / `run_native`: the least `ip`/`bridge` commands that make one node's
  VXLAN, bridge and flood entries (no shell).
- `PlainDnsmasq`: dnsmasq started by hand in a namespace, with a minimal command line.
- `Probe`: asks for a lease every 0.1 s from inside a guest (one process), each attempt's
  end stamped with CLOCK_MONOTONIC, to see when DHCP stopped and came back.
Called by `bench.network_bench`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import percentile
from reconciler.config import NodeConfig
from store import networks
from store.client import Store
from store.codec import Doc
from store.layout import ensure_layout
from store.objects import new_object
from tests.support.daemons import RunningDaemon
from tests.support.dhcpclient import ROOT
from tests.support.libvirt_nodes import write_node_file
from tests.support.nodelab import ADDRESS, Lab, sh
from tests.support.waits import wait_doc
from tests.support.zkserver import ZooKeeperCluster

ZERO_MAC = "00:00:00:00:00:00"
READY_LINE = "started, version"  # what dnsmasq logs once its sockets are bound


@dataclass
class Bench:
    """What every scenario needs: ZooKeeper, a scratch directory, the run directory."""

    zk: ZooKeeperCluster
    workdir: Path
    run_root: Path

    def store(self, root: str) -> Store:
        store = Store(self.zk.dsn, root, timeout=5.0)
        store.start()
        ensure_layout(store)
        return store


def tag() -> str:
    """A fresh prefix for a lab's namespaces."""
    return f"hb{uuid.uuid4().hex[:6]}"


def spread(samples: Sequence[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples]
    return {"p50_ms": round(percentile(ms, 50), 1), "p90_ms": round(percentile(ms, 90), 1),
            "max_ms": round(max(ms), 1), "n": len(ms)}


class RunRoot:
    """A run directory under /run that dnsmasq (as `nobody`) can read; removed by close()."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="herd-bench-", dir="/run"))
        self.path.chmod(0o755)

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


# --- daemons and networks ---------------------------------------------------------------------

def node_config(lab: Lab, node: str, *, hosts: str, root: str, workdir: Path, run_dir: Path,
                coordinator: bool = False, fence: str | None = None) -> NodeConfig:
    """hv-<node> with networks on, its links in the lab's namespace, on the test driver."""
    return NodeConfig(
        name=f"hv-{node}", zk_hosts=hosts, zk_root=root, zk_timeout=3.0,
        libvirt_uri=write_node_file(workdir, f"hv-{node}{root.replace('/', '-')}"),
        coordinator=coordinator, address=ADDRESS[node], initial_domain_state="ready",
        status_interval=0.5 if coordinator else 1.0, resync_interval=30.0, workers=2,
        log_level="WARNING", networks=True, netns=lab.ns(node), bridge_device="u0",
        run_dir=str(run_dir / node),
        fence={"default": {"agent": "command", "command": fence}} if fence else {})


class Daemons(dict[str, RunningDaemon]):
    """Running daemons by node; `close()` stops the live ones and closes every one."""

    async def start(self, node: str, config: NodeConfig) -> None:
        self[node] = RunningDaemon(config)
        await self[node].start()

    async def close(self) -> None:
        for daemon in self.values():
            with contextlib.suppress(Exception):
                if daemon.daemon is not None:
                    await daemon.stop()
            with contextlib.suppress(Exception):
                await daemon.close()


def network_doc(name: str, vni: int, **spec: Any) -> Doc:
    return new_object({"apiVersion": "herd/v1", "kind": "Network", "metadata": {"name": name},
                       "spec": {"type": "managed", "vni": vni, **spec}})


def define_network(store: Store, name: str, doc: Doc) -> None:
    """Create the network as the API does (`store.networks`, one transaction)."""
    seen = networks.read_all(store)
    networks.commit_change(store, seen, networks.create_ops(store, name, doc))


async def stamped(store: Store, path: str, predicate: Callable[[Doc | None], bool], *,
                  timeout: float = 30.0) -> float:
    """When (time.monotonic, stamped on the watch's thread) the document at `path` first
    satisfied `predicate`."""
    when: list[float] = []

    def check(doc: Doc | None) -> bool:
        ok = predicate(doc)
        if ok and not when:
            when.append(time.monotonic())
        return ok

    await wait_doc(store, path, check, timeout=timeout)
    return when[0]


# --- the hand-made alternatives ---------------------------------------------------------------

def native_commands(ns: str, vni: int, local: str, peers: list[str]) -> list[list[str]]:
    """The least commands for one node's managed network: bridge (up), VXLAN in it (up),
    one all-zeros flood entry per peer."""
    br, vx = f"nbr{vni}", f"nvx{vni}"
    return [["ip", "-n", ns, "link", "add", br, "mtu", "1450", "up", "type", "bridge"],
            ["ip", "-n", ns, "link", "add", vx, "mtu", "1450", "master", br, "up", "type",
             "vxlan", "id", str(vni), "dstport", "4789", "local", local, "learning"],
            *(["bridge", "-n", ns, "fdb", "append", ZERO_MAC, "dev", vx, "dst", peer]
              for peer in peers)]


def run_native(commands: list[list[str]]) -> None:
    for argv in commands:
        subprocess.run(argv, check=True, capture_output=True, timeout=10)


class PlainDnsmasq:
    """dnsmasq by hand in namespace `ns`: the gateway address on `bridge`, then dnsmasq with
    `args`; ready once it logs that it started. Its log is read (and dropped) throughout."""

    def __init__(self, ns: str, bridge: str, address: str, args: list[str]) -> None:
        self.ns, self.bridge, self.address, self.args = ns, bridge, address, args
        self.proc: asyncio.subprocess.Process | None = None
        self.reader: asyncio.Task[None] | None = None

    async def start(self, *, timeout: float = 10.0) -> None:
        await asyncio.to_thread(sh, "ip", "-n", self.ns, "addr", "replace", self.address,
                                "dev", self.bridge)
        self.proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", self.ns, "/usr/sbin/dnsmasq", *self.args,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, start_new_session=True)
        ready = asyncio.Event()
        self.reader = asyncio.create_task(self._read(ready))
        async with asyncio.timeout(timeout):
            await ready.wait()

    async def _read(self, ready: asyncio.Event) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        async for line in self.proc.stderr:
            if READY_LINE.encode() in line:
                ready.set()

    async def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self.reader is not None:
            self.reader.cancel()
            await asyncio.gather(self.reader, return_exceptions=True)
        await asyncio.to_thread(subprocess.run, ["ip", "-n", self.ns, "addr", "del", self.address,
                                                 "dev", self.bridge],
                                capture_output=True, timeout=10, check=False)


# --- the DHCP probe ---------------------------------------------------------------------------

PROBE = r"""
import json, sys, time
from tests.support.dhcpclient import obtain
iface, mac, every = sys.argv[1], sys.argv[2], float(sys.argv[3])
tick = time.monotonic()
while True:
    answer = obtain(iface, mac, timeout=every * 0.9)
    print(json.dumps([time.monotonic(), answer.ip if answer else None]), flush=True)
    tick += every
    time.sleep(max(0.0, tick - time.monotonic()))
"""


@dataclass(frozen=True)
class Recovery:
    """An outage the probe saw after `since`: its last answer before, its first miss, and
    the first answer after (CLOCK_MONOTONIC seconds) with the address granted."""

    last_answer: float
    first_miss: float
    answered: float
    ip: str


class Probe:
    """One process in `guest` asking for `mac`'s lease every `every` seconds (an attempt
    gives up before the next: a recovery is seen at most `every` late), each outcome
    stamped."""

    def __init__(self, guest: str, mac: str, *, every: float = 0.1) -> None:
        self.argv = ["ip", "netns", "exec", guest, sys.executable, "-c", PROBE, "eth0", mac,
                     str(every)]
        self.samples: list[tuple[float, str | None]] = []
        self.changed = asyncio.Condition()
        self.proc: asyncio.subprocess.Process | None = None
        self.reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, cwd=ROOT, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for line in self.proc.stdout:
            stamp, ip = json.loads(line)
            async with self.changed:
                self.samples.append((float(stamp), ip))
                self.changed.notify_all()

    async def first_answer(self, *, timeout: float = 10.0) -> str:
        async with asyncio.timeout(timeout), self.changed:
            await self.changed.wait_for(lambda: any(ip for _, ip in self.samples))
            return next(ip for _, ip in self.samples if ip)

    def _recovery(self, since: float) -> Recovery | None:
        last, miss = 0.0, None
        for stamp, ip in self.samples:
            if miss is None and ip is not None:
                last = stamp
            elif miss is None and stamp > since:
                miss = stamp
            elif miss is not None and ip is not None:
                return Recovery(last, miss, stamp, ip)
        return None

    async def recovery(self, since: float, *, timeout: float = 60.0) -> Recovery:
        """The first outage that ended after `since`, once DHCP answers again."""
        async with asyncio.timeout(timeout), self.changed:
            await self.changed.wait_for(lambda: self._recovery(since) is not None)
            found = self._recovery(since)
        assert found is not None
        return found

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        if self.reader is not None:
            self.reader.cancel()
            await asyncio.gather(self.reader, return_exceptions=True)
