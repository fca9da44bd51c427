"""The processes of a fault-suite run: a 3-member ZooKeeper ensemble (`ctl.dev.zookeeper`),
`herd-node` on test-driver node files (`tests.support.cluster.LocalCluster`: coordinators,
event logs, the fence agent that kills by pid file) and one or two `herd-api` on fixed
loopback ports (so that clients find a restarted server again), sharing one token.

Every process started gets a watcher thread that reaps it and records its exit (`Exit`):
whether the harness signalled it (a fault) or not (the fence agent, or a crash). A node
or API process that ends without the harness asking is started again after
`reboot_delay` (a fenced host reboots), unless the cluster is being stopped. Node deaths
for the history (`deaths()`) are every end of a node process (see recorder.py for why),
the harness's SIGKILL times and the fence log's. `snapshot()` reads the final ZooKeeper
state directly (kazoo), keeping unparseable documents as such.

With `hosts` (real QEMU, tests/support/chaos/qemu.py `QemuNodes`) the nodes run on QEMU
hosts: `start()` makes the hosts (and their hostwatch recorder) first and `stop()` tears
them down last; a node that ended without the harness asking is started again only once
the fence agent finished powering its host off (the start boots the host); a host that is
down is booted on heal; and host deaths are the power-offs only (a daemon's end leaves its
guests running). Used by tests/support/chaos/faults.py and run.py.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from ctl.client import Client
from ctl.dev.qemu import QemuHosts
from ctl.dev.zookeeper import ZooKeeperCluster, free_port
from store import codec
from store.target import ZKTarget
from tests.support.chaos.model import ZVM, Exit, Snapshot, ZNode
from tests.support.chaos.qemu import QemuNodes
from tests.support.cluster import HERD_NODE, LocalCluster
from tests.support.waits import poll_until

HERD_API = str(Path(HERD_NODE).with_name("herd-api"))
ROOT = "/chaos"


class ChaosCluster:
    """ZooKeeper x3, `nodes` herd-node processes, `apis` herd-api processes."""

    def __init__(self, directory: Path, *, nodes: int = 3, apis: int = 1,
                 zk_timeout: float = 3.0, memory_mib: int = 65536,
                 reboot_delay: float = 1.0, hosts: QemuHosts | None = None) -> None:
        self.dir = directory
        self.zk = ZooKeeperCluster(directory / "zk", members=3)
        self.node_names = hosts.names if hosts else tuple(f"hv{i}" for i in range(1, nodes + 1))
        (directory / "nodes").mkdir(parents=True, exist_ok=True)
        self.qemu = None if hosts is None else QemuNodes(
            directory / "nodes", hosts=hosts, zk_hosts=self.zk.dsn, zk_root=ROOT,
            zk_timeout=zk_timeout, status_interval=1.0)
        self.local = self.qemu or LocalCluster(
            directory / "nodes", zk_hosts=self.zk.dsn, zk_root=ROOT, nodes=self.node_names,
            zk_timeout=zk_timeout, status_interval=1.0, memory_mib=memory_mib)
        self.api_ports = [free_port() for _ in range(apis)]
        self.api_procs: dict[int, subprocess.Popen[bytes]] = {}
        self.token = ""
        self.reboot_delay = reboot_delay
        self.exits: list[Exit] = []
        self._exit_times: dict[str, list[float]] = {}
        self._signalled: set[int] = set()  # pids the harness killed or stopped on purpose
        self._lock = threading.Lock()
        self._start_lock = threading.RLock()
        self._stopping = threading.Event()
        self._watchers: list[threading.Thread] = []
        self.stuck: list[tuple[str, float]] = []  # (process, when) SIGTERM did not end

    # --- start and stop ----------------------------------------------------------------------

    def start(self, *, config: dict[str, Any]) -> None:
        """(QEMU hosts,) ZooKeeper, the cluster defaults, every node, every API server."""
        if self.qemu is not None:
            self.qemu.up()
        self.zk.start(timeout=60)
        self._write_config(config)
        for name in self.node_names:
            self.start_node(name)
        self.token = self._create_token()
        for index in range(len(self.api_ports)):
            self.start_api(index)

    def _write_config(self, config: dict[str, Any]) -> None:
        client = zk_client(self.zk.dsn)
        client.start(timeout=30)
        try:
            client.ensure_path(ROOT)
            client.create(f"{ROOT}/config", codec.encode(config), makepath=True)
        finally:
            client.stop()
            client.close()

    def stop(self) -> None:
        """Everything down: the APIs, the nodes (SIGCONT first), ZooKeeper; watchers joined."""
        with self._start_lock:
            self._stopping.set()
        for proc in self.api_procs.values():
            self._terminate(proc)
        self.local.stop_all()
        self.zk.stop()
        for thread in self._watchers:
            thread.join(timeout=30)
        if self.qemu is not None:
            self.qemu.down()

    @staticmethod
    def _terminate(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    # --- nodes -------------------------------------------------------------------------------

    def start_node(self, name: str) -> None:
        """Start the node's daemon unless it runs already (a fault and the reboot of a
        fenced node may both want to)."""
        with self._start_lock:
            if self._stopping.is_set() or self.node_running(name):
                return
            self.local.start(name)
            self._watch(f"node/{name}", self.local.procs[name])

    def node_running(self, name: str) -> bool:
        proc = self.local.procs.get(name)
        return proc is not None and proc.poll() is None

    def signal_node(self, name: str, sig: int) -> None:
        """Send `sig` to the node's current process; after SIGKILL or SIGTERM its exit is
        the harness's doing (a paused process the fence agent kills is not)."""
        proc = self.local.procs[name]
        if proc.poll() is not None:
            return
        if sig in (signal.SIGKILL, signal.SIGTERM):
            with self._lock:
                self._signalled.add(proc.pid)
        self.local.signal(name, sig)

    def restart_node(self, name: str, *, timeout: float = 40.0) -> None:
        """A graceful restart: SIGTERM, wait for the exit, start again."""
        proc = self.local.procs[name]
        self.signal_node(name, signal.SIGCONT)
        self.signal_node(name, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stuck.append((f"node/{name}", time.time()))
            self.signal_node(name, signal.SIGKILL)
            proc.wait(timeout=10)
        self.start_node(name)

    def heal_node(self, name: str) -> None:
        """The node's daemon running and continued, on a host that is up (a daemon left
        running on a powered-off host, by a start that raced the fence, is started again)."""
        if self.node_running(name):
            if self.qemu is None or not self.qemu.host_down(name):
                self.signal_node(name, signal.SIGCONT)
                return
            self.signal_node(name, signal.SIGKILL)
            self.local.reap(name)
        self.start_node(name)

    # --- API servers -------------------------------------------------------------------------

    def _create_token(self) -> str:
        out = subprocess.run([HERD_API, "token", "create", "--token-file",
                              str(self.dir / "tokens"), "--label", "chaos"],
                             capture_output=True, text=True, timeout=60,
                             stdin=subprocess.DEVNULL, check=True)
        return out.stdout.strip()

    def api_url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.api_ports[index]}"

    def client(self, index: int, *, timeout: float = 10.0) -> Client:
        return Client(self.api_url(index), token=self.token, timeout=timeout)

    def start_api(self, index: int, *, timeout: float = 60.0) -> None:
        with self._start_lock:
            current = self.api_procs.get(index)
            if self._stopping.is_set() or (current is not None and current.poll() is None):
                return
            log = self.dir / f"api{index}.log"
            offset = log.stat().st_size if log.exists() else 0
            proc = self._spawn_api(index)
        mark = f"serving on {self.api_url(index)}".encode()

        def serving() -> bool:
            with open(log, "rb") as f:
                f.seek(offset)
                return mark in f.read()
        poll_until(lambda: proc.poll() is not None or serving(), timeout=timeout,
                   what=f"herd-api {index} serving")

    def _spawn_api(self, index: int) -> subprocess.Popen[bytes]:
        log = self.dir / f"api{index}.log"
        argv = [HERD_API, "--zk-hosts", self.zk.dsn, "--zk-root", ROOT, "--listen-host",
                "127.0.0.1", "--listen-port", str(self.api_ports[index]), "--token-file",
                str(self.dir / "tokens")]
        with open(log, "ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        self.api_procs[index] = proc
        self._watch(f"api{index}", proc)
        return proc

    def kill_api(self, index: int) -> None:
        proc = self.api_procs[index]
        with self._lock:
            self._signalled.add(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    # --- exits -------------------------------------------------------------------------------

    def _watch(self, role: str, proc: subprocess.Popen[bytes]) -> None:
        thread = threading.Thread(target=self._reap, args=(role, proc), daemon=True,
                                  name=f"reap-{role}")
        self._watchers.append(thread)
        thread.start()

    def _reap(self, role: str, proc: subprocess.Popen[bytes]) -> None:
        code = proc.wait()
        at = time.time()
        with self._lock:
            ours = proc.pid in self._signalled or self._stopping.is_set()
            self._exit_times.setdefault(role, []).append(at)
            self.exits.append(Exit(role, at, code, ours))
        if ours or self._stopping.wait(self.reboot_delay):
            return
        self._reboot(role, proc)

    def _reboot(self, role: str, proc: subprocess.Popen[bytes]) -> None:
        """A process ended without the harness asking (fenced, or crashed): start it again,
        unless something already did."""
        kind, _, name = role.partition("/")
        if kind == "node" and self.local.procs.get(name) is proc:
            if self.qemu is not None:
                self.qemu.await_power_off(name, since=time.time() - self.reboot_delay,
                                          stop=self._stopping)
            self.start_node(name)
        elif kind.startswith("api") and self.api_procs.get(int(kind[3:])) is proc:
            self.start_api(int(kind[3:]))

    def fenced_times(self) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {}
        for node, t in self.local._fence_log():
            out.setdefault(node, []).append(t)
        return out

    def deaths(self) -> dict[str, list[float]]:
        """Host deaths: every end of a node process, SIGKILLs sent, fence-agent power-offs
        (on QEMU hosts the power-offs only)."""
        if self.qemu is not None:
            return self.qemu.deaths()
        out = {node: list(ts) for node, ts in self.local.deaths().items()}
        with self._lock:
            for role, times in self._exit_times.items():
                if role.startswith("node/"):
                    out.setdefault(role[5:], []).extend(times)
        return {node: sorted(ts) for node, ts in out.items()}

    def exit_records(self) -> list[Exit]:
        """Exits, with those that the fence agent caused counted as expected."""
        fences = self.fenced_times()
        with self._lock:
            exits = list(self.exits)
        return [e if e.expected or not e.process.startswith("node/") else
                Exit(e.process, e.at, e.code,
                     any(abs(t - e.at) < 30 for t in fences.get(e.process[5:], [])))
                for e in exits]

    # --- ZooKeeper ---------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        client = zk_client(self.zk.dsn)
        client.start(timeout=30)
        try:
            return _read_snapshot(client)
        finally:
            client.stop()
            client.close()


def zk_client(dsn: str) -> KazooClient:
    """A raw client of the suite's own (config seeding, snapshots) as Herd's identity."""
    target = ZKTarget.parse(dsn)
    return KazooClient(timeout=10, default_acl=target.acl, **target.kazoo_args())


def _read(client: KazooClient, path: str) -> dict[str, Any] | str | None:
    try:
        data, _stat = client.get(path)
    except NoNodeError:
        return None
    try:
        value = codec.decode(data)
    except Exception as e:
        return f"<unparseable: {e}>"
    return value if isinstance(value, dict) else f"<unparseable: not an object: {value!r}>"


def _read_snapshot(client: KazooClient) -> Snapshot:
    vms = {}
    for name in client.get_children(f"{ROOT}/vms"):
        base = f"{ROOT}/vms/{name}"
        vms[name] = ZVM(name, _read(client, base), _read(client, f"{base}/placement"),
                        _read(client, f"{base}/status"), _read(client, f"{base}/owner"))
    nodes = {}
    for name in client.get_children(f"{ROOT}/nodes"):
        base = f"{ROOT}/nodes/{name}"
        nodes[name] = ZNode(name, _read(client, base), _read(client, f"{base}/status"),
                            client.exists(f"{base}/alive") is not None)
    events = [doc for name in sorted(client.get_children(f"{ROOT}/events"))
              if isinstance(doc := _read(client, f"{ROOT}/events/{name}"), dict)]
    return Snapshot(vms, nodes, time.time(), events)
