"""Pieces of the node benchmark: herd-node in-process or as a process, VMs in bulk, and a
status watcher on a ZooKeeper client of its own.

- `LoopThread`: one asyncio loop in a thread of its own; every in-process daemon of a run
  lives on it (libvirt-python binds its event implementation to one loop per process).
- `InProcessNode`: a `NodeDaemon` on that loop with a handed-in `LibvirtHypervisor` on
  libvirt's test driver, as `tests/integration/test_node_daemon.py` runs it.
- `NodeProcess`: `herd-node` as a real process (for its RSS), stopped by SIGTERM and reaped.
- `StatusWatch`: an `Informer` over `/vms` on a separate `Store`; `expect()` returns an
  `Arrival` that records when (on the watch's thread) a set of VMs reached a state.
Called by `bench.node_bench`.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from bench.fixtures import vm_doc
from reconciler.config import NodeConfig
from reconciler.daemon import NodeDaemon
from reconciler.libvirt.adapter import LibvirtHypervisor
from store import txn, vms
from store.client import Store
from store.codec import Doc
from store.informer import Change, Informer
from store.watches import watch_doc
from tests.support.libvirt_nodes import simple_domain_xml, write_node_file

T = TypeVar("T")

NODE = "hv1"
OTHER_NODES = 100  # VMs not on hv1 are spread over hv-other-0 .. hv-other-99
NODE_CPUS = 256
NODE_MEMORY_MIB = 1024 * 1024  # 1 TiB: room for 1,000 test-driver domains of 256 MiB
HERD_NODE = str(Path(sys.executable).with_name("herd-node"))


# --- VMs ------------------------------------------------------------------------------------

def bench_vm(name: str, node: str, state: str = "running") -> Doc:
    """A VM as the API defines it; those on hv1 get a domain the test driver can run."""
    doc = vm_doc(name, node)
    doc["spec"]["state"] = state
    if node == NODE:
        doc["spec"]["xml"] = simple_domain_xml(name, memory_mib=256)
    return doc


def cluster_vms(total: int, mine: list[str], state: str = "running") -> list[Doc]:
    """`total` VMs: the named ones on hv1 (defined last), the others on hv-other-N."""
    others = [bench_vm(f"other{i:05d}", f"hv-other-{i % OTHER_NODES}", state)
              for i in range(total - len(mine))]
    return [*others, *(bench_vm(name, NODE, state) for name in mine)]


def define(store: Store, docs: list[Doc]) -> float:
    """Define the VMs with pipelined transactions (one per VM); returns the seconds taken."""
    start = time.perf_counter()
    errors = txn.commit_pipelined(store, [vms.define_ops(store.paths, d) for d in docs])
    failed = [e for e in errors if e is not None]
    if failed:
        raise RuntimeError(f"{len(failed)} VM definitions failed, first: {failed[0]}")
    return time.perf_counter() - start


def set_state(store: Store, name: str, state: str) -> None:
    """Change spec.state (and the generation) as the API does: read, modify, versioned set."""
    def modify(doc: Doc) -> Doc:
        meta = doc["metadata"]
        return {**doc, "spec": {**doc["spec"], "state": state},
                "metadata": {**meta, "generation": meta["generation"] + 1}}
    store.update(store.paths.vm(name), modify)


# --- in-process daemon ------------------------------------------------------------------------

class LoopThread:
    """An asyncio loop running forever in a daemon thread; `run()` a coroutine on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="bench-loop",
                                        daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 300.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


def node_config(hosts: str, root: str, workdir: Path) -> NodeConfig:
    """hv1 with production intervals, on a fresh test-driver node file of 256 CPUs, 1 TiB."""
    uri = write_node_file(workdir, f"{NODE}{root.replace('/', '-')}", cpus=NODE_CPUS,
                          memory_mib=NODE_MEMORY_MIB)
    return NodeConfig(name=NODE, zk_hosts=hosts, zk_root=root, zk_timeout=10.0,
                      libvirt_uri=uri, coordinator=False, address=None,
                      initial_domain_state="ready", status_interval=5.0,
                      resync_interval=30.0, workers=8, log_level="WARNING")


class InProcessNode:
    """A `NodeDaemon` on the loop thread, its test-driver hypervisor handed in."""

    def __init__(self, loop: LoopThread, config: NodeConfig) -> None:
        self.loop = loop
        self.config = config
        self.hv = LibvirtHypervisor(config.libvirt_uri)
        self._daemon: NodeDaemon | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def daemon(self) -> NodeDaemon:
        if self._daemon is None:
            raise RuntimeError("the daemon is not running")
        return self._daemon

    def start(self) -> None:
        """Open libvirt, run the daemon, return once it is ready (caches synced)."""
        self.loop.run(self._start())

    async def _start(self) -> None:
        await self.hv.open()
        self._daemon = NodeDaemon(self.config, hypervisor=self.hv)
        self._task = asyncio.create_task(self._daemon.run())
        ready = asyncio.create_task(self._daemon.ready.wait())
        done, _ = await asyncio.wait({self._task, ready}, timeout=120,
                                     return_when=asyncio.FIRST_COMPLETED)
        if ready not in done:
            ready.cancel()
            if self._task in done:
                self._task.result()
            raise RuntimeError("the daemon did not become ready")

    def wait_idle(self) -> None:
        """Until the daemon's work queue has nothing queued, in flight or scheduled."""
        self.loop.run(self.daemon.queue.wait_idle())

    def stop(self) -> None:
        self.loop.run(self._stop())

    async def _stop(self) -> None:
        if self._daemon is not None and self._task is not None:
            self._daemon.stop()
            await asyncio.wait_for(self._task, 60)
        self._daemon = self._task = None
        await self.hv.close()


# --- herd-node as a process -------------------------------------------------------------------

class NodeProcess:
    """`herd-node` for hv1 as a child process, its output in a log file."""

    def __init__(self, hosts: str, root: str, workdir: Path) -> None:
        uri = write_node_file(workdir, f"{NODE}-process", cpus=NODE_CPUS,
                              memory_mib=NODE_MEMORY_MIB)
        args = ["--name", NODE, "--zk-hosts", hosts, "--zk-root", root,
                "--libvirt-uri", uri, "--initial-domain-state", "ready",
                "--log-level", "WARNING"]
        self.log = workdir / "herd-node.log"
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([HERD_NODE, *args], stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def memory_kib(self) -> dict[str, int]:
        """VmRSS and VmHWM (peak RSS) of the process, in KiB."""
        out = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
        return out

    def terminate(self) -> int:
        """SIGTERM, wait for the exit (SIGKILL after 30 s) and reap; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait(timeout=10)


def wait_doc(store: Store, path: str, predicate: Callable[[Doc | None], bool],
             timeout: float = 60.0) -> None:
    """Block until the document at `path` satisfies `predicate` (a data watch, no polling)."""
    seen = threading.Event()

    def on_change(doc: Doc | None) -> bool:
        if predicate(doc):
            seen.set()
            return False
        return True

    watch_doc(store, path, on_change)
    if not seen.wait(timeout):
        raise TimeoutError(f"{path} did not reach the expected state in {timeout}s")


# --- watching statuses --------------------------------------------------------------------------

@dataclass
class Arrival:
    """Waits for every VM of `pending` to show status `state`; `at` is perf_counter then."""

    state: str
    pending: set[str]
    away_from: str | None = None  # the status must also name a node other than this one
    done: threading.Event = field(default_factory=threading.Event)
    at: float = 0.0

    def wait(self, timeout: float) -> float:
        if not self.done.wait(timeout):
            raise TimeoutError(f"{len(self.pending)} VMs never showed {self.state}, "
                               f"e.g. {sorted(self.pending)[:3]}")
        return self.at


class StatusWatch:
    """VM status states as a separate ZooKeeper client sees them (one recursive watch)."""

    def __init__(self, hosts: str, root: str) -> None:
        self.store = Store(hosts, root)
        self.store.start()
        self.informer = Informer(self.store, self.store.paths.vms)
        self._states: dict[str, str] = {}
        self._nodes: dict[str, str | None] = {}
        self._arrivals: list[Arrival] = []
        self._lock = threading.Lock()
        self.informer.subscribe(self._on_change)
        self.informer.start()

    def _on_change(self, change: Change) -> None:
        now = time.perf_counter()
        parts = self.store.paths.split(change.path)
        if len(parts) != 3 or parts[2] != "status" or change.new is None:
            return
        name, state = parts[1], str(change.new.doc.get("state"))
        node = change.new.doc.get("node")
        with self._lock:
            self._states[name] = state
            self._nodes[name] = node
            for arrival in list(self._arrivals):
                if arrival.state == state and (arrival.away_from is None
                                               or node not in (None, arrival.away_from)):
                    arrival.pending.discard(name)
                if not arrival.pending:
                    arrival.at = now
                    arrival.done.set()
                    self._arrivals.remove(arrival)

    def expect(self, names: Iterable[str], state: str, *,
               away_from: str | None = None) -> Arrival:
        """Arm before the write that causes it; resolves at once if already there."""
        with self._lock:
            arrival = Arrival(state, {n for n in names if self._states.get(n) != state
                                      or (away_from is not None
                                          and self._nodes.get(n) in (None, away_from))},
                              away_from)
            if arrival.pending:
                self._arrivals.append(arrival)
            else:
                arrival.at = time.perf_counter()
                arrival.done.set()
        return arrival

    def stop(self) -> None:
        self.informer.stop()
        self.store.stop()
