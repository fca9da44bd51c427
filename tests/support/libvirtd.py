"""The system libvirtd (QEMU driver) for real-guest tests, started without systemd.

`LibvirtDaemon.start()` makes `qemu:///system` answer: it gives `/dev/kvm` group `kvm`
and mode 0660 when it exists (else libvirt re-probes QEMU on every call), runs
`virtlogd -d` and `libvirtd -d` unless they already run, and waits until
`virsh -c qemu:///system version` answers. Anything that prevents it raises
`LibvirtUnavailable` with the reason (the e2e conftest turns it into a skip). `stop()`
stops, by PID, only daemons that tests started, and only when no other test session still
uses them (file locks under /run/lock; a developer may run sessions side by side); a
libvirtd that was running before is never stopped. `qemu_domain_xml()` is the stubborn
guest of DESIGN.md section 6; `remove_domain()` and `qemu_pid()` help tests clean up and
look at the QEMU process. Used by `tests/e2e/conftest.py` and the real-QEMU e2e tests.

Facts of Debian 12 (libvirt 9.0, QEMU 7.2), checked here as root without systemd:

- `virtlogd -d` and `libvirtd -d` return at once (their parents exit once the daemon has
  written its pid file and bound its sockets). The pid files are `/run/virtlogd.pid` and
  `/run/libvirtd.pid` (not under `/run/libvirt`); both are removed on a clean exit (SIGTERM).
- The first connection after a start blocks until the QEMU driver is initialised: ~8 s
  when QEMU's capabilities are probed, ~0.1 s when the cache under
  `/var/cache/libvirt/qemu/capabilities` is valid. Here it is re-probed at about every
  other start ("host cpuid changed": leaf 0x1f reports the x2APIC id of whichever of the
  two CPUs the probe ran on).
- A running guest's QEMU writes its pid to `/run/libvirt/qemu/<name>.pid`; QEMU processes
  are libvirtd's children and survive a libvirtd stop, so leftover guests must be
  destroyed before the daemon stops.
- The daemons detach (setsid, double fork): they are never children of the test process.
  A container's PID 1 may not reap them, so an exited daemon can linger as a zombie;
  liveness checks treat a zombie as gone, and exits are awaited on a pidfd.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ctl.dev.guest import fix_kvm_permissions, guest_xml, kvm_usable
from ctl.dev.processes import wait_pid

SYSTEM_URI = "qemu:///system"
TEST_DOMAIN_PREFIX = "herd-e2e-"  # names of the guests tests create (and may sweep)
QEMU_RUN_DIR = Path("/run/libvirt/qemu")
QEMU_BINARY = "qemu-system-x86_64"
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# Several test sessions may share the daemons (a developer's runs side by side). Each holds
# USE_LOCK shared while it needs them; START_LOCK serialises starting them; OWNED_FILE
# lists the daemons that test sessions started. The last session out stops those (a session
# killed hard leaves them to the next one); a libvirtd that tests did not start is never
# stopped.
USE_LOCK = Path("/run/lock/herd-tests-libvirtd.use")
START_LOCK = Path("/run/lock/herd-tests-libvirtd.start")
OWNED_FILE = Path("/run/lock/herd-tests-libvirtd.owned")
READY_TIMEOUT = 60.0  # covers a QEMU capabilities probe (~8 s here) with a wide margin


class LibvirtUnavailable(RuntimeError):
    """The system libvirtd cannot be used here; the message says why."""


# --- processes that are not our children -------------------------------------------------

def process_alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def stop_pid(pid: int, *, timeout: float = 15.0) -> None:
    """SIGTERM, wait; SIGKILL if it is still there after `timeout`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        if wait_pid(pid, timeout=timeout):
            return
    raise RuntimeError(f"process {pid} survived SIGKILL")


def _which(program: str) -> str | None:
    """The program's path; the sbin directories count even when PATH lacks them."""
    return shutil.which(program, path=f"{os.environ.get('PATH', '')}:{SYSTEM_PATH}")


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


@dataclass(frozen=True)
class SystemDaemon:
    """One of libvirt's daemons, found through its pid file."""

    program: str

    @property
    def pidfile(self) -> Path:
        return Path("/run") / f"{self.program}.pid"

    def pid(self) -> int | None:
        """The PID of the running daemon, None when it does not run."""
        pid = _read_pid(self.pidfile)
        if pid is None or not process_alive(pid):
            return None
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            return None
        return pid if comm == self.program[:15] else None


VIRTLOGD = SystemDaemon("virtlogd")
LIBVIRTD = SystemDaemon("libvirtd")


# --- /dev/kvm and QEMU guests ----------------------------------------------------------------

def qemu_domain_xml(name: str, *, memory_mib: int = 32, kvm: bool = False) -> str:
    """The stubborn disk-less guest of `ctl.dev.guest`; TCG unless `kvm` (the same
    everywhere, and it starts faster than nested KVM here)."""
    return guest_xml(name, memory_mib=memory_mib, kvm=kvm and kvm_usable())


def qemu_pid(name: str) -> int | None:
    """The PID of the guest's QEMU process while it runs (libvirt's pid file), else None."""
    pid = _read_pid(QEMU_RUN_DIR / f"{name}.pid")
    return pid if pid is not None and process_alive(pid) else None


def virsh(*args: str, uri: str = SYSTEM_URI,
          timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run virsh against uri (a separate process: no part in this process's libvirt events)."""
    return subprocess.run([_which("virsh") or "virsh", "-q", "-c", uri, *args],
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, check=False)


def remove_domain(name: str, *, uri: str = SYSTEM_URI) -> None:
    """Destroy (if it runs) and undefine (if defined) the domain; absent: nothing happens."""
    virsh("destroy", name, uri=uri)
    virsh("undefine", name, uri=uri)


def remove_domains(prefix: str, *, uri: str = SYSTEM_URI) -> list[str]:
    """Destroy and undefine every domain whose name starts with prefix; their names."""
    listed = virsh("list", "--all", "--name", uri=uri)
    names = [n for n in listed.stdout.split() if n.startswith(prefix)]
    for name in names:
        remove_domain(name, uri=uri)
    return names


# --- the daemons ---------------------------------------------------------------------------

def _lock(path: Path, how: int) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, how)
    return fd


def _owned() -> dict[str, int]:
    """The daemons test sessions started, by program (under START_LOCK or USE_LOCK held alone)."""
    try:
        data = json.loads(OWNED_FILE.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): int(v) for k, v in data.items()} if isinstance(data, dict) else {}


class LibvirtDaemon:
    """libvirtd (and virtlogd) for `uri`, started here unless already running."""

    def __init__(self, workdir: Path, *, uri: str = SYSTEM_URI,
                 timeout: float = READY_TIMEOUT) -> None:
        self.workdir = workdir
        self.uri = uri
        self.timeout = timeout
        self.started: dict[str, int] = {}  # program -> PID, what this object started
        self._use_fd: int | None = None

    def start(self) -> None:
        """Make `uri` answer, or raise LibvirtUnavailable saying why."""
        self._check_prerequisites()
        fix_kvm_permissions()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._use_fd = _lock(USE_LOCK, fcntl.LOCK_SH)  # waits while a last user stops them
        start_fd = _lock(START_LOCK, fcntl.LOCK_EX)
        try:
            self._start_missing()
            self._wait_ready()
        except BaseException:
            os.close(start_fd)
            self.stop()
            raise
        os.close(start_fd)

    def stop(self) -> None:
        """Leave; the last session out stops, by PID, the daemons tests started (libvirtd
        first, after destroying the guests tests left: QEMU would outlive it)."""
        if self._use_fd is None:
            return
        fd, self._use_fd = self._use_fd, None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)  # other sessions use them; the last of them stops them
            return
        try:
            self._stop_owned()
        finally:
            os.close(fd)

    def _start_missing(self) -> None:
        """Spawn whichever daemon does not run, recording it in OWNED_FILE at once."""
        for daemon in (VIRTLOGD, LIBVIRTD):
            if daemon.pid() is not None:
                continue
            if daemon is LIBVIRTD and self._ask(timeout=5.0) is None:
                continue  # answers without our pid file: someone else's, leave it be
            pid = self._spawn(daemon)
            OWNED_FILE.write_text(json.dumps({**_owned(), daemon.program: pid}))

    def _stop_owned(self) -> None:
        owned = _owned()
        ours = {d: owned[d.program] for d in (LIBVIRTD, VIRTLOGD)
                if d.program in owned and d.pid() == owned[d.program]}
        if LIBVIRTD in ours:
            remove_domains(TEST_DOMAIN_PREFIX, uri=self.uri)
        for pid in ours.values():
            stop_pid(pid)
        OWNED_FILE.unlink(missing_ok=True)
        self.started.clear()

    @staticmethod
    def _check_prerequisites() -> None:
        if os.geteuid() != 0:
            raise LibvirtUnavailable("the system libvirtd needs root (run the tests as root)")
        for program in ("libvirtd", "virtlogd", "virsh", QEMU_BINARY):
            if _which(program) is None:
                raise LibvirtUnavailable(
                    f"{program} is not installed (Debian: libvirt-daemon-system, "
                    "libvirt-daemon-driver-qemu, libvirt-clients, qemu-system-x86; make setup)")

    def _log(self, daemon: SystemDaemon) -> Path:
        return self.workdir / f"{daemon.program}.log"

    def _spawn(self, daemon: SystemDaemon) -> int:
        """`<program> -d`; the parent returns once the daemon wrote its pid file."""
        env = dict(os.environ, LIBVIRT_LOG_OUTPUTS=f"3:file:{self._log(daemon)}")
        done = subprocess.run([_which(daemon.program) or daemon.program, "-d"],
                              capture_output=True, text=True, env=env, timeout=30,
                              stdin=subprocess.DEVNULL, check=False)
        pid = daemon.pid()
        if done.returncode != 0 or pid is None:
            raise LibvirtUnavailable(
                f"`{daemon.program} -d` failed (exit {done.returncode}): "
                f"{done.stderr.strip() or self.log_tail(daemon) or 'no pid file, no message'}")
        self.started[daemon.program] = pid
        return pid

    def _ask(self, *, timeout: float) -> str | None:
        """None when `virsh version` answers, else why not."""
        try:
            done = virsh("version", uri=self.uri, timeout=timeout)
        except subprocess.TimeoutExpired:
            return f"`virsh -c {self.uri} version` did not answer within {timeout:.0f} s"
        if done.returncode == 0:
            return None
        return done.stderr.strip() or f"virsh exited with {done.returncode}"

    def _wait_ready(self) -> None:
        """Ask until `uri` answers. A daemon's socket offers nothing to wait on, so this
        retries, bounded by `timeout`; each try blocks while libvirtd initialises QEMU."""
        deadline = time.monotonic() + self.timeout
        while (why := self._ask(timeout=max(1.0, deadline - time.monotonic()))) is not None:
            for daemon in (VIRTLOGD, LIBVIRTD):
                if daemon.program in self.started and daemon.pid() is None:
                    raise LibvirtUnavailable(
                        f"{daemon.program} exited while starting: {self.log_tail(daemon)}")
            if time.monotonic() >= deadline:
                raise LibvirtUnavailable(f"{self.uri} did not answer within "
                                         f"{self.timeout:.0f} s: {why}")
            time.sleep(0.1)

    def log_tail(self, daemon: SystemDaemon, *, lines: int = 10) -> str:
        path = self._log(daemon)
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])
