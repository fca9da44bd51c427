"""Real hypervisors on one machine: one libvirtd (QEMU driver) per simulated host.

`QemuHosts(directory, names)` gives each host what DESIGN.md section 6 checked: a network
namespace on a private bridge (`10.213.<n>.0/24`, the root namespace is `.1`, hosts
`.11` up), and, inside it, a mount and UTS namespace with the host's name and its own
copies of /run, /etc/libvirt, /var/lib/libvirt, /var/cache/libvirt and /var/log/libvirt
(under `<directory>/<host>/`), and one directory all hosts share at `SHARED_PATH` (the
dev stand-in for an NFS or CephFS mount: a `shared` storage pool goes there), where
`virtlogd -d` and `libvirtd -d --listen` run.
libvirtd listens on TCP at the host's address (no auth: dev and tests only) for the
peer-to-peer migrations of the other hosts, has a host UUID of its own, and QEMU's
`migration_host` is the host's address. Clients in the root namespace (herd-node, tests)
reach it through its socket: `host.uri`.

- `up()` creates the bridge and every host and waits until each libvirtd answers;
  whatever goes wrong, it tears down what it made before raising `HostsUnavailable`.
- `power_off(name)` kills the host's guests and daemons with SIGKILL, like pulling the
  plug (the fence agent of a QEMU dev cluster); `start(name)` boots it again (a fresh
  /run, the persistent definitions in its /etc/libvirt kept, as after a reboot).
- `down()` stops the guests and daemons by the PIDs in each host's run directory and
  deletes the namespaces and the bridge; it also cleans up after a half-made `up()` or a
  crashed owner, from the directory alone (`hosts.json`).

Called by `ctl.dev.cluster` (`herdctl dev up --hypervisor qemu`), the real-QEMU e2e tests
and bench/. Needs root, iproute2, util-linux's unshare, libvirtd, virtlogd and QEMU; speaks
to libvirt only through `virsh` (ctl never imports libvirt).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ctl.dev.guest import fix_kvm_permissions
from ctl.dev.processes import wait_pid

SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
PROGRAMS = ("ip", "unshare", "libvirtd", "virtlogd", "virsh", "qemu-system-x86_64")
BINDS = (("run", "/run"), ("etc", "/etc/libvirt"), ("lib", "/var/lib/libvirt"),
         ("cache", "/var/cache/libvirt"), ("log", "/var/log/libvirt"))
HOSTS_FILE = "hosts.json"
SHARED_PATH = "/var/lib/libvirt/herd-shared"  # the same directory on every host
READY_TIMEOUT = 90.0  # a first start probes QEMU's capabilities (~8 s each, 2 cores shared)


class HostsUnavailable(RuntimeError):
    """The hosts cannot be made here (not root, a program missing, a daemon failing)."""


def _which(program: str) -> str | None:
    return shutil.which(program, path=f"{os.environ.get('PATH', '')}:{SYSTEM_PATH}")


def _run(*argv: str, check: bool = True, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([_which(argv[0]) or argv[0], *argv[1:]], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)
    if check and done.returncode != 0:
        raise HostsUnavailable(f"`{' '.join(argv)}` failed: {done.stderr.strip()}")
    return done


def _pid_of(path: Path, program: str) -> int | None:
    """The live (non-zombie) process whose PID `path` holds and whose name is `program`."""
    try:
        pid = int(path.read_text().split()[0])
        with open(f"/proc/{pid}/stat") as f:
            head, rest = f.read().rsplit(")", 1)
    except (OSError, ValueError, IndexError):
        return None
    alive = rest.split()[0] not in ("Z", "X")
    return pid if alive and head.split("(", 1)[1].startswith(program[:15]) else None


@dataclass(frozen=True)
class QemuHost:
    """One simulated hypervisor: its files, namespace and address."""

    name: str
    dir: Path
    address: str
    netns: str

    @property
    def uri(self) -> str:
        """libvirt URI for clients in the root namespace (through the host's socket)."""
        return f"qemu:///system?socket={self.dir / 'run/libvirt/libvirt-sock'}"

    @property
    def migration_uri(self) -> str:
        """Where the other hosts' libvirtd reach this one for peer-to-peer migration."""
        return f"qemu+tcp://{self.address}/system"

    def daemon_pid(self, program: str) -> int | None:
        return _pid_of(self.dir / "run" / f"{program}.pid", program)

    def guest_pids(self) -> dict[str, int]:
        """The QEMU process of each running guest, by domain name (libvirt's pid files)."""
        out = {}
        for path in sorted((self.dir / "run/libvirt/qemu").glob("*.pid")):
            pid = _pid_of(path, "qemu-system")
            if pid is not None:
                out[path.stem] = pid
        return out


class QemuHosts:
    """The hosts of one directory; see the module docstring."""

    def __init__(self, directory: Path, names: Sequence[str]) -> None:
        self.dir = directory.resolve()
        tag = hashlib.sha1(str(self.dir).encode()).hexdigest()[:6]
        self.bridge = f"hb{tag}"
        saved = self._load()
        self.subnet = str(saved.get("subnet") or self._free_subnet(int(tag, 16)))
        self.names = tuple(str(n) for n in saved.get("names") or names)
        self.hosts = {name: QemuHost(name, self.dir / name, f"{self.subnet}.{11 + i}",
                                     f"herd-{tag}-{name}")
                      for i, name in enumerate(self.names)}

    def __getitem__(self, name: str) -> QemuHost:
        return self.hosts[name]

    # --- up ------------------------------------------------------------------------------

    def up(self, *, timeout: float = READY_TIMEOUT) -> None:
        """Make every host and wait until its libvirtd answers (or tear down and raise)."""
        check_prerequisites()
        fix_kvm_permissions()
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / HOSTS_FILE).write_text(json.dumps(
            {"subnet": self.subnet, "names": list(self.names), "bridge": self.bridge}))
        try:
            self._make_bridge()
            for host in self.hosts.values():
                self._make_host(host)
                self._spawn_daemons(host)
            deadline = time.monotonic() + timeout
            for host in self.hosts.values():
                self._wait_ready(host, deadline=deadline)
        except BaseException:
            self.down()
            raise

    def start(self, name: str, *, timeout: float = READY_TIMEOUT) -> None:
        """Boot a powered-off host again: a fresh /run, its definitions kept."""
        host = self.hosts[name]
        self._stop_host(host, sig=signal.SIGTERM)
        shutil.rmtree(host.dir / "run", ignore_errors=True)
        (host.dir / "run").mkdir()
        self._spawn_daemons(host)
        self._wait_ready(host, deadline=time.monotonic() + timeout)

    def _make_bridge(self) -> None:
        if _run("ip", "link", "show", self.bridge, check=False).returncode != 0:
            _run("ip", "link", "add", self.bridge, "type", "bridge")
            _run("ip", "addr", "add", f"{self.subnet}.1/24", "dev", self.bridge)
        _run("ip", "link", "set", self.bridge, "up")

    def _make_host(self, host: QemuHost) -> None:
        """The host's directories and configuration, and its network namespace."""
        for sub, _target in BINDS:
            (host.dir / sub).mkdir(parents=True, exist_ok=True)
        # /var/lock is /run/lock: libvirtd locks a console's pty there (no lock: no console)
        (host.dir / "run" / "lock").mkdir(exist_ok=True)
        _write_config(host)
        if Path("/var/cache/libvirt/qemu").is_dir():  # QEMU's capabilities: skip a probe
            shutil.copytree("/var/cache/libvirt/qemu", host.dir / "cache/qemu",
                            dirs_exist_ok=True)
        veth = f"{self.bridge}-{self.names.index(host.name)}"
        _run("ip", "netns", "add", host.netns)
        _run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0",
             "netns", host.netns)
        _run("ip", "link", "set", veth, "master", self.bridge, "up")
        _run("ip", "-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "eth0")
        _run("ip", "-n", host.netns, "link", "set", "eth0", "up")
        _run("ip", "-n", host.netns, "link", "set", "lo", "up")

    def _spawn_daemons(self, host: QemuHost) -> None:
        """virtlogd and libvirtd in the host's namespaces; both detach at once. Every host
        sees the one `<directory>/shared` at SHARED_PATH, as an NFS mount would be."""
        binds = "; ".join(f"mount --bind {host.dir / sub} {target}" for sub, target in BINDS)
        shared = self.dir / "shared"
        shared.mkdir(exist_ok=True)
        script = (f"set -e; {binds}; mkdir -p {SHARED_PATH}; "
                  f"mount --bind {shared} {SHARED_PATH}; hostname {host.name}; "
                  "export LIBVIRT_LOG_OUTPUTS=3:file:/var/log/libvirt/libvirtd.log; "
                  "virtlogd -d; libvirtd -d --listen")
        _run("ip", "netns", "exec", host.netns, "unshare", "--mount", "--uts",
             "--propagation", "private", "sh", "-c", script, timeout=60)

    @staticmethod
    def _wait_ready(host: QemuHost, *, deadline: float) -> None:
        """Ask `virsh version` until it answers: the socket offers nothing to wait on."""
        while True:
            left = deadline - time.monotonic()
            try:
                done = _run("virsh", "-q", "-c", host.uri, "version", check=False,
                            timeout=max(1.0, left))
                if done.returncode == 0:
                    return
                why = done.stderr.strip()
            except subprocess.TimeoutExpired:
                why = "no answer"
            if host.daemon_pid("libvirtd") is None and left < READY_TIMEOUT - 5:
                raise HostsUnavailable(f"libvirtd of {host.name} is not running: "
                                       f"{_tail(host.dir / 'log/libvirtd.log')}")
            if time.monotonic() >= deadline:
                raise HostsUnavailable(f"libvirtd of {host.name} did not answer: {why}")
            time.sleep(0.1)

    # --- down ----------------------------------------------------------------------------

    def power_off(self, name: str) -> None:
        """Pull the plug: SIGKILL to the host's guests and daemons, then to every other
        process in the host's network namespace (a gateway's dnsmasq, say)."""
        host = self.hosts[name]
        self._stop_host(host, sig=signal.SIGKILL)
        listed = _run("ip", "netns", "pids", host.netns, check=False).stdout.split()
        for pid in (int(p) for p in listed if p.isdigit()):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            wait_pid(pid, timeout=10.0)

    def down(self) -> None:
        """Stop every guest and daemon, delete the namespaces and the bridge."""
        for host in self.hosts.values():
            self._stop_host(host, sig=signal.SIGTERM)
            if host.netns in _run("ip", "netns", "list", check=False).stdout.split():
                _run("ip", "netns", "del", host.netns, check=False)
        if _run("ip", "link", "show", self.bridge, check=False).returncode == 0:
            _run("ip", "link", "del", self.bridge, check=False)
        (self.dir / HOSTS_FILE).unlink(missing_ok=True)

    @staticmethod
    def _stop_host(host: QemuHost, *, sig: int) -> None:
        """Guests first (QEMU outlives libvirtd), then libvirtd and virtlogd."""
        pids = [*host.guest_pids().values(),
                *(p for prog in ("libvirtd", "virtlogd") if (p := host.daemon_pid(prog)))]
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                continue
            if not wait_pid(pid, timeout=15.0):
                os.kill(pid, signal.SIGKILL)
                wait_pid(pid, timeout=10.0)

    # --- helpers -------------------------------------------------------------------------

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads((self.dir / HOSTS_FILE).read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    @staticmethod
    def _free_subnet(seed: int) -> str:
        """10.213.<n> with n from the directory's hash, skipping subnets in use here."""
        used = _run("ip", "-4", "-o", "addr", check=False).stdout
        for step in range(200):
            candidate = f"10.213.{20 + (seed + step) % 200}"
            if f" {candidate}." not in used:
                return candidate
        raise HostsUnavailable("no free 10.213.x.0/24 subnet for the hosts' bridge")


def check_prerequisites() -> None:
    """Root and the programs; raise HostsUnavailable saying what is missing."""
    if os.geteuid() != 0:
        raise HostsUnavailable("real hypervisors need root (namespaces, libvirtd)")
    missing = [p for p in PROGRAMS if _which(p) is None]
    if missing:
        raise HostsUnavailable(
            f"not installed: {', '.join(missing)} (Debian: iproute2, util-linux, "
            "libvirt-daemon-system, libvirt-daemon-driver-qemu, qemu-system-x86; make setup)")


def probe() -> None:
    """Check that hosts can be made here at all: the programs, and that this machine lets
    us create a network namespace and a bridge (a container may not); HostsUnavailable
    says why not. Leaves nothing behind."""
    check_prerequisites()
    name = f"herdprobe{os.getpid() % 100000}"
    try:
        _run("ip", "netns", "add", name)
        _run("ip", "link", "add", name[:15], "type", "bridge")
    finally:
        _run("ip", "link", "del", name[:15], check=False)
        _run("ip", "netns", "del", name, check=False)


def _write_config(host: QemuHost) -> None:
    """The host's /etc/libvirt: the system's, listening on TCP at its address, with its
    own host UUID and QEMU's migration_host; no autostarted networks."""
    etc = host.dir / "etc"
    if not (etc / "libvirtd.conf").exists():
        shutil.copytree("/etc/libvirt", etc, dirs_exist_ok=True)
        shutil.rmtree(etc / "qemu/networks/autostart", ignore_errors=True)
        with open(etc / "libvirtd.conf", "a") as f:
            f.write(f'\n# herd dev host {host.name}\nlisten_tls = 0\nlisten_tcp = 1\n'
                    f'listen_addr = "{host.address}"\nauth_tcp = "none"\n'
                    f'host_uuid = "{uuid.uuid4()}"\n')
        with open(etc / "qemu.conf", "a") as f:
            f.write(f'\nmigration_host = "{host.address}"\n')


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _power_off_command(argv: Sequence[str] | None = None) -> int:
    """`python -m ctl.dev.qemu power-off --dir D --host H [--node-pidfile F] [--log L]`:
    the dev cluster's fence agent. Kills the host's herd-node (its pid file), then its
    guests and daemons; appends "<host> <time>" to the log; exit 0 once all are gone."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m ctl.dev.qemu")
    parser.add_argument("command", choices=["power-off"])
    parser.add_argument("--dir", required=True, type=Path)
    parser.add_argument("--host", required=True)
    parser.add_argument("--node-pidfile", type=Path)
    parser.add_argument("--log", type=Path)
    args = parser.parse_args(argv)
    hosts = QemuHosts(args.dir, [])
    if args.host not in hosts.hosts:
        parser.error(f"no host {args.host!r} in {args.dir}")
    node = _pid_of(args.node_pidfile, "herd-node") if args.node_pidfile else None
    if node is None and args.node_pidfile:
        node = _pid_of(args.node_pidfile, "python")  # herd-node is a Python console script
    if node is not None:
        os.kill(node, signal.SIGKILL)
        wait_pid(node, timeout=10.0)
    hosts.power_off(args.host)
    if args.log:
        with open(args.log, "a") as f:
            f.write(f"{args.host} {time.time():.6f}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(_power_off_command())
