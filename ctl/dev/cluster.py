"""`herdctl dev up | status | down`: a whole local cluster as processes.

`up` starts, in order, ZooKeeper (Debian's package, `ctl.dev.zookeeper`), N `herd-node`
daemons (every one a coordinator, each on its own test-driver node file, initially
`ready`, fenced by a `command` agent that kills the node's process) and `herd-api` on a
free port with a token from `herd-api token create`; it records each process in the state
file as soon as it starts (`ctl.dev.state`), then waits until the API answers, every node
shows daemonState `run`, alive and `ready` (followed through `GET /watch`) and a primary
is elected. Whatever goes wrong (or Ctrl-C), it stops what it started before returning.
`down` stops every recorded process by PID (TERM, then KILL; the API first, ZooKeeper
last) and removes the state file; logs stay in the directory. Called by `ctl.cmd_dev` and
`ctl.demo`; talks to the cluster over HTTP only.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from ctl.client import ApiError, Client, Unreachable
from ctl.dev import processes, state
from ctl.dev.nodes import node_config, write_fence_agent, write_node_file, write_qemu_fence_agent
from ctl.dev.processes import ProcessRecord
from ctl.dev.qemu import HostsUnavailable, QemuHosts
from ctl.dev.state import DevState
from ctl.dev.zookeeper import ZooKeeperCluster, ZooKeeperUnavailable, free_port

Say = Callable[[str], None]
# What `up` starts afresh.
RUNTIME = ("zookeeper", "nodes", "api.log", "api.yaml", "tokens", "api.tmp", "hosts")
MARKER = ".herdctl-dev"  # `up` cleans only a directory that holds this file (or is empty)
RUN_ROOT = Path("/run/herd")  # gateways' run directories of QEMU dev hosts
POLL = 0.05  # seconds between looks at a child's start-up output (see `_serving_url`)


class DevError(Exception):
    """The dev cluster could not be brought up (or down); the message says why."""


def binary(name: str) -> str:
    """A console script of this installation (the venv's bin first, then PATH)."""
    sibling = Path(sys.executable).with_name(name)
    if sibling.exists():
        return str(sibling)
    found = shutil.which(name)
    if found is None:
        raise DevError(f"{name} is not installed (run `make setup`)")
    return found


class Launch:
    """One `dev up` in progress: the state so far and the children to reap."""

    def __init__(self, directory: Path, *, nodes: int, say: Say, hypervisor: str) -> None:
        self.dir = directory
        self.say = say
        self.state = DevState(dir=str(directory), nodes=[f"hv{i}" for i in range(1, nodes + 1)],
                              hypervisor=hypervisor)
        self.children: list[subprocess.Popen[bytes]] = []

    def start(self, spawn: Callable[[], tuple[subprocess.Popen[bytes], ProcessRecord]]
              ) -> tuple[subprocess.Popen[bytes], ProcessRecord]:
        """Start a process with `spawn` and record it in the state file, as one step that
        a Ctrl-C cannot split (it is raised once the record is saved)."""
        with processes.interrupts_deferred():
            proc, record = spawn()
            self.children.append(proc)
            self.state.processes.append(record)
            state.save(self.state)
        return proc, record

    def check_alive(self) -> None:
        for proc, record in zip(self.children, self.state.processes, strict=True):
            if proc.poll() is not None:
                raise DevError(f"{record.role} exited with code {proc.returncode}; "
                               f"see {record.log}:\n{tail(Path(record.log))}")


def tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text.splitlines()[-lines:])


def _fresh_dir(directory: Path) -> None:
    """Make `directory` ready for a new cluster: the files of the last one go (its logs
    too). A directory with other files in it and no MARKER is refused, never cleaned."""
    directory.mkdir(parents=True, exist_ok=True)
    marker = directory / MARKER
    if not marker.exists() and any(directory.iterdir()):
        raise DevError(f"{directory} is not empty and is no herdctl dev directory; "
                       "give an empty or new one with --dir")
    marker.write_text("a herdctl dev cluster lives here (herdctl dev up/down)\n")
    for name in RUNTIME:
        path = directory / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    (directory / "nodes").mkdir()


def _start_zookeeper(launch: Launch, timeout: float) -> None:
    try:
        zk = ZooKeeperCluster(launch.dir / "zookeeper", members=1)
    except ZooKeeperUnavailable as e:
        raise DevError(str(e)) from None
    member = zk.members[0]
    log = member.datadir / "zookeeper.log"

    def spawn() -> tuple[subprocess.Popen[bytes], ProcessRecord]:
        zk.spawn()
        assert member.process is not None
        return member.process, processes.record_of("zookeeper", member.process, log=log)

    proc, _record = launch.start(spawn)
    try:
        zk.wait_healthy(timeout=timeout)
    except ZooKeeperUnavailable as e:
        raise DevError(f"ZooKeeper did not start: {e}") from None
    launch.state.zk_hosts = zk.dsn  # with Herd's identity: auth and ACLs on
    state.save(launch.state)
    launch.say(f"zookeeper   {zk.hosts} (pid {proc.pid}; auth and ACLs on)")


def hosts_of(dev: DevState) -> QemuHosts:
    """The QEMU hosts of a dev cluster (`<dir>/hosts`)."""
    return QemuHosts(Path(dev.dir) / "hosts", dev.nodes)


def _start_hosts(launch: Launch) -> None:
    """QEMU hosts: one libvirtd per node in namespaces of its own (ctl.dev.qemu)."""
    hosts = hosts_of(launch.state)
    state.save(launch.state)  # `down` tears the hosts down even if `up` is cut short here
    try:
        hosts.up()
    except HostsUnavailable as e:
        raise DevError(f"QEMU hosts: {e}") from None
    for host in hosts.hosts.values():
        launch.say(f"libvirtd    {host.name} at {host.address} "
                   f"(pid {host.daemon_pid('libvirtd')})")


def private_file(path: Path, text: str) -> Path:
    """Write `text` to `path`, readable by its owner only (it holds ZooKeeper's secret)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)  # an older file keeps its mode through O_CREAT
    return path


CONSOLE_LOGS = "/var/log/libvirt/herd-console"  # where a QEMU host's virtlogd writes them


def _node_config(dev: DevState, name: str) -> Path:
    """Write the node's herd-node config (and the fence agent); its path."""
    folder = Path(dev.dir) / "nodes"
    netns = None
    if dev.hypervisor == "qemu":
        hosts = hosts_of(dev)
        fence = write_qemu_fence_agent(folder, hosts=hosts.dir, python=sys.executable)
        uri, address, netns = hosts[name].uri, hosts[name].address, hosts[name].netns
        # /var/log/libvirt is the host's own directory (a bind mount in its namespace)
        logs = (CONSOLE_LOGS, str(hosts[name].dir / "log" / "herd-console"))
    else:
        fence, address, logs = write_fence_agent(folder), None, None
        uri = write_node_file(folder, name)
    # dnsmasq reads its run directory as `nobody`: under /run, not the 0700 home.
    run_dir = RUN_ROOT / f"dev-{hashlib.sha1(dev.dir.encode()).hexdigest()[:8]}" / name
    return private_file(folder / f"{name}.yaml", node_config(
        name, zk_hosts=dev.zk_hosts, zk_root=dev.zk_root, libvirt_uri=uri, fence=fence,
        address=address, event_log=folder / f"{name}.events", netns=netns,
        run_dir=run_dir if netns is not None else None,
        metrics_address=f"127.0.0.1:{free_port()}", console_logs=logs))


def start_node(dev: DevState, name: str) -> tuple[subprocess.Popen[bytes], ProcessRecord]:
    """Start the node's herd-node again (tests restart killed or fenced nodes with it),
    recorded in the state file so that `down` stops it too."""
    with processes.interrupts_deferred():
        proc, record = _spawn_node(dev, name)
        dev.processes = [p for p in dev.processes if p.role != record.role] + [record]
        state.save(dev)
    return proc, record


def revive_node(directory: Path, name: str, *, say: Say) -> ProcessRecord:
    """`herdctl dev start-node`: boot the node's QEMU host if it is powered off (fenced),
    then start its herd-node unless it runs. The new process is recorded for `down`."""
    dev = state.load(directory)
    if dev is None:
        raise DevError(f"no dev cluster recorded in {directory}")
    if name not in dev.nodes:
        raise DevError(f"no node {name!r} in the dev cluster (nodes: {', '.join(dev.nodes)})")
    running = [p for p in dev.processes if p.role == f"node/{name}" and processes.alive(p)]
    if running:
        raise DevError(f"herd-node of {name} already runs (pid {running[0].pid})")
    if dev.hypervisor == "qemu" and hosts_of(dev)[name].daemon_pid("libvirtd") is None:
        try:
            hosts_of(dev).start(name)
        except HostsUnavailable as e:
            raise DevError(f"host {name}: {e}") from None
        say(f"libvirtd    {name} booted (pid {hosts_of(dev)[name].daemon_pid('libvirtd')})")
    _proc, record = start_node(dev, name)
    say(f"herd-node   {name} (pid {record.pid})")
    return record


def _spawn_node(dev: DevState, name: str) -> tuple[subprocess.Popen[bytes], ProcessRecord]:
    folder = Path(dev.dir) / "nodes"
    config = folder / f"{name}.yaml"
    if not config.exists():
        config = _node_config(dev, name)
    proc, record = processes.spawn(f"node/{name}", [binary("herd-node"), "--config", str(config)],
                                   log=folder / f"{name}.log")
    (folder / f"{name}.pid").write_text(f"{proc.pid}\n")  # what the fence agent kills
    return proc, record


def _start_nodes(launch: Launch) -> None:
    for name in launch.state.nodes:
        _node_config(launch.state, name)
        proc, _record = launch.start(partial(_spawn_node, launch.state, name))
        launch.say(f"herd-node   {name} (pid {proc.pid})")


def _create_token(directory: Path) -> str:
    out = subprocess.run([binary("herd-api"), "token", "create", "--token-file",
                          str(directory / "tokens"), "--label", "herdctl-dev"],
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    if out.returncode != 0 or not out.stdout.strip():
        raise DevError(f"herd-api token create failed: {out.stderr.strip()}")
    return out.stdout.strip()


def _serving_url(launch: Launch, log: Path, *, deadline: float) -> str:
    """The URL of herd-api's `herd-api: serving on <url>` line in its log."""
    while time.monotonic() < deadline:
        launch.check_alive()
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("herd-api: serving on "):
                return line.split(" on ", 1)[1].strip()
        # The line goes to a log file (a pipe would outlive herdctl): nothing to wait on
        # but the child's own output, so look again shortly, within the deadline.
        time.sleep(POLL)
    raise DevError(f"herd-api did not serve within the time limit; see {log}:\n{tail(log)}")


def _start_api(launch: Launch, *, deadline: float) -> None:
    launch.state.token = _create_token(launch.dir)
    log = launch.dir / "api.log"
    config = private_file(launch.dir / "api.yaml", yaml.safe_dump(
        {"zk_hosts": launch.state.zk_hosts, "zk_root": launch.state.zk_root}))
    argv = [binary("herd-api"), "--config", str(config), "--listen-host", "127.0.0.1",
            "--listen-port", "0", "--token-file", str(launch.dir / "tokens"),
            "--no-anonymous-reads"]
    proc, _record = launch.start(lambda: processes.spawn("api", argv, log=log))
    launch.state.url = _serving_url(launch, log, deadline=deadline)
    state.save(launch.state)
    launch.say(f"herd-api    {launch.state.url} (pid {proc.pid})")


def node_ready(obj: dict[str, Any]) -> bool:
    """A node object (as GET /node or a watch event has it) that can take VMs."""
    status = obj.get("status") or {}
    return bool(obj.get("alive")) and status.get("daemonState") == "run" \
        and status.get("domainState") == "ready"


def _node_events(launch: Launch, client: Client, *,
                 deadline: float) -> Iterator[dict[str, Any]]:
    """Node watch events until the deadline, resumed every few seconds so that a dead
    child is noticed even while no event comes."""
    version: str | None = None
    while time.monotonic() < deadline:
        launch.check_alive()
        window = max(0.1, min(3.0, deadline - time.monotonic()))
        for event in client.watch(timeout=window, kind="Node", resourceVersion=version):
            version = event.get("resourceVersion", version)
            yield event


def _wait_nodes(launch: Launch, client: Client, *, deadline: float) -> str:
    """Follow the nodes until all are ready and one is the primary (its Node says so);
    the primary's name."""
    seen: dict[str, dict[str, Any]] = {}
    for event in _node_events(launch, client, deadline=deadline):
        seen[event["name"]] = event["object"]
        primary = next((n for n, o in seen.items() if o.get("primary")), None)
        if primary and all(node_ready(seen.get(n, {})) for n in launch.state.nodes):
            return primary
    states = {n: (seen.get(n, {}).get("status") or {}).get("daemonState", "absent")
              for n in launch.state.nodes}
    raise DevError(f"the nodes were not all running and ready, with a primary, in time: "
                   f"{states}")


def _wait_healthy(launch: Launch, *, deadline: float) -> None:
    client = Client(launch.state.url, token=launch.state.token, timeout=10)
    try:
        primary = _wait_nodes(launch, client, deadline=deadline)
    except (ApiError, Unreachable) as e:
        raise DevError(f"the API did not become healthy: {e}") from None
    launch.say(f"ready       {len(launch.state.nodes)} nodes, primary {primary}")


def up(directory: Path, *, nodes: int, timeout: float, say: Say,
       hypervisor: str = "test") -> DevState:
    """Start the whole cluster in `directory`; on any failure stop what was started."""
    previous = state.load(directory)
    if previous is not None and any(processes.alive(p) for p in previous.processes):
        raise DevError(f"a dev cluster already runs from {directory} "
                       f"(API {previous.url or 'not serving'}); `herdctl dev down` first")
    if previous is not None and previous.hypervisor == "qemu":
        hosts_of(previous).down()  # what a crashed `dev up` or `down` left behind
    _fresh_dir(directory)
    launch = Launch(directory, nodes=nodes, say=say, hypervisor=hypervisor)
    deadline = time.monotonic() + timeout
    try:
        if hypervisor == "qemu":
            _start_hosts(launch)
        _start_zookeeper(launch, timeout)
        _start_nodes(launch)
        _start_api(launch, deadline=deadline)
        _wait_healthy(launch, deadline=deadline)
    except BaseException:
        say("dev up failed: stopping what it started")
        stop_all(launch.state, children=launch.children, say=say)
        stop_strays(launch.state, say=say)
        if launch.state.hypervisor == "qemu":
            hosts_of(launch.state).down()
        if not any(processes.alive(r) for r in launch.state.processes):
            state.remove(directory)
        raise
    launch.state.ready = True
    state.save(launch.state)
    return launch.state


def stop_all(dev: DevState, *, children: list[subprocess.Popen[bytes]] | None = None,
             say: Say) -> list[tuple[str, int, str]]:
    """Stop every recorded process, newest first (the API, the nodes, ZooKeeper last),
    and reap the ones that are this process's children."""
    outcome = []
    by_pid = {p.pid: p for p in children or []}
    for record in reversed(dev.processes):
        how = processes.stop(record)
        processes.reap(by_pid.get(record.pid))
        outcome.append((record.role, record.pid, how))
        say(f"{record.role:<11} pid {record.pid}: {how}")
    return outcome


def stop_strays(dev: DevState, *, say: Say) -> list[tuple[str, int, str]]:
    """Stop the cluster programs that run with the directory in their arguments but are
    not recorded: started by a `dev up` that was killed before it recorded them."""
    outcome = []
    for stray in processes.strays(Path(dev.dir), known={r.pid for r in dev.processes}):
        how = processes.stop(stray)
        outcome.append((stray.role, stray.pid, how))
        say(f"{stray.role:<11} pid {stray.pid}: {how}")
    return outcome


def down(directory: Path, *, say: Say) -> list[tuple[str, int, str]]:
    """Stop the cluster recorded in `directory` (nothing to do without a state file). The
    state file goes only once nothing recorded runs, so a failed `down` can be repeated."""
    dev = state.load(directory)
    if dev is None:  # none recorded; a process may still run that names the directory
        return stop_strays(DevState(dir=str(directory)), say=say)
    outcome = stop_all(dev, say=say) + stop_strays(dev, say=say)
    if dev.hypervisor == "qemu":
        hosts_of(dev).down()
        say("hosts       guests, libvirtd and namespaces removed")
    left = [r for r in dev.processes if processes.alive(r)]
    if left:
        raise DevError("still running: " + ", ".join(f"{r.role} (pid {r.pid})" for r in left))
    state.remove(directory)
    return outcome


def status(directory: Path) -> dict[str, Any] | None:
    """The recorded processes (running or not) and the API's cluster summary."""
    dev = state.load(directory)
    if dev is None:
        return None
    procs = [{"role": r.role, "pid": r.pid, "running": processes.alive(r), "log": r.log}
             for r in dev.processes]
    summary: Any
    try:
        summary = Client(dev.url, token=dev.token, timeout=5).get("/status") if dev.url \
            else None
    except (ApiError, Unreachable) as e:
        summary = {"error": str(e)}
    return {"dir": dev.dir, "url": dev.url, "zk_hosts": dev.zk_hosts, "nodes": dev.nodes,
            "ready": dev.ready, "processes": procs, "cluster": summary}
