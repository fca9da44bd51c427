"""One managed network's gateway on this node: its addresses on the bridge and its dnsmasq.

The primary's network controller (herd-node) holds one `Gateway` per managed network while
it is primary. `start()` puts the gateway address(es) on the network's bridge (made elsewhere;
in `netns` if given, as on the dev cluster's namespace hosts), opens the `LeaseChannel` and
starts dnsmasq (`reconciler.network.dnsmasq.dnsmasq_argv`) as a supervised child. `update()`
applies new reservations in place (SIGHUP when one went away or changed), restarts for
anything else. `stop()` ends dnsmasq (SIGTERM, SIGKILL after `grace`; also one an earlier
herd-node left) and removes the addresses: when it returns nothing on this node answers DHCP
or DNS for the network. docs/networks-gateway.md says why and what was checked.

Supervision: dnsmasq is ready when it logs "started" (its sockets are bound by then). One
that dies after that is restarted after a capped exponential backoff (reset by a long run);
one that exits at start with a configuration, network (address in use) or file error is a
permanent failure: reported once (log and `on_failure(reason)`), state FAILED, no retry
until the next `start()` or `update()`. A failed lease-init (the daemon could not read the
leases) is retried with the backoff, its reason reported once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ipaddress
import logging
import os
import signal
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from reconciler.network.dnsmasq import (
    DHCP_HOSTS_DIR,
    DNS_HOSTS_DIR,
    DNSMASQ,
    GatewaySpec,
    Lease,
    addr_argv,
    dnsmasq_argv,
    reservation_files,
)
from reconciler.network.leasechannel import LeaseCallback, LeaseChannel, LeasesProvider
from reconciler.network.leasescript import SOCKET_ENV

log = logging.getLogger(__name__)

READY_LINE = "started, version"
PERMANENT_EXITS = frozenset({1, 2, 3, 4, 5})  # dnsmasq: config, network, file, memory, misc
_ABSENT = ("address not found", "cannot assign requested address", "cannot find device",
           "does not exist", "no such file or directory")  # address, bridge, namespace: gone


class GatewayState(StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"  # dnsmasq died; restarting after a delay
    FAILED = "failed"  # a permanent start failure: waits for start() or update()


@dataclass(frozen=True)
class GatewayStatus:
    state: GatewayState
    pid: int | None = None
    restarts: int = 0
    reason: str | None = None


@dataclass(frozen=True)
class Backoff:
    """Delays between restarts of a dnsmasq that died: initial, doubled up to cap; a run of
    `stable` seconds or more starts again from initial."""

    initial: float = 0.5
    cap: float = 30.0
    stable: float = 60.0


class GatewayError(Exception):
    """An `ip` command of the gateway's set-up or tear-down failed; the message says which."""


async def _run(argv: Sequence[str]) -> tuple[int, str]:
    """One short `ip` command, in a worker thread (as `reconciler.network.links` does: a
    cancelled caller leaves it to end by itself)."""
    try:
        done = await asyncio.to_thread(subprocess.run, list(argv), stdin=subprocess.DEVNULL,
                                       capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return -1, str(e)
    return done.returncode, done.stderr.decode(errors="replace").strip()


def _write_atomically(path: str, text: str) -> bool:
    """Write `text` at `path` (a dot-file renamed into place: dnsmasq's inotify ignores
    dot-files); True when it replaced other contents."""
    old: str | None = None
    with contextlib.suppress(FileNotFoundError), open(path) as f:
        old = f.read()
    if old == text:
        return False
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o644)  # dnsmasq reads it after dropping root
    os.replace(tmp, path)
    return old is not None


def _sync_run_dir(spec: GatewaySpec) -> bool:
    """The run directory and the reservation files as `spec` says (others removed); True
    when a file dnsmasq may have read was changed or removed (it needs a SIGHUP)."""
    wanted = reservation_files(spec)
    forgotten = False
    for sub in ("", DHCP_HOSTS_DIR, DNS_HOSTS_DIR):
        path = os.path.join(spec.run_dir, sub)
        os.makedirs(path, exist_ok=True)
        os.chmod(path, 0o755)
        for name in os.listdir(path) if sub else ():
            if f"{sub}/{name}" not in wanted:
                os.unlink(os.path.join(path, name))
                forgotten = forgotten or not name.startswith(".")
    changed = [_write_atomically(os.path.join(spec.run_dir, rel), text)
               for rel, text in wanted.items()]
    return forgotten or any(changed)


def _stale_pid(spec: GatewaySpec) -> int | None:
    """The PID of a dnsmasq a previous herd-node left running for this network, if any."""
    try:
        with open(spec.pid_file) as f:
            pid = int(f.read().strip() or 0)
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().split(b"\0")
    except (OSError, ValueError):
        return None
    mine = f"--pid-file={spec.pid_file}".encode()
    return pid if pid > 0 and mine in cmdline else None


async def _end_stranger(pid: int, *, grace: float) -> None:
    """SIGTERM a process that is not our child, wait for its end (pidfd), then SIGKILL."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    gone = loop.create_future()

    def exited() -> None:
        if not gone.done():
            gone.set_result(None)

    loop.add_reader(fd, exited)
    try:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(fd, sig)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(gone), grace)
                return
    finally:
        loop.remove_reader(fd)
        os.close(fd)


class Gateway:
    """The gateway of one managed network on this node (see the module's docstring)."""

    def __init__(self, spec: GatewaySpec, *, on_lease: LeaseCallback, leases: LeasesProvider,
                 lease_script: str, netns: str | None = None, dnsmasq: str = DNSMASQ,
                 backoff: Backoff | None = None, grace: float = 5.0,
                 ready_timeout: float = 15.0,
                 on_failure: Callable[[str], None] | None = None) -> None:
        self._spec = spec
        self._on_lease = on_lease
        self._leases = leases
        self._lease_script = lease_script
        self._netns = netns
        self._dnsmasq = dnsmasq
        self._backoff = backoff or Backoff()
        self._grace = grace
        self._ready_timeout = ready_timeout
        self._on_failure = on_failure
        self._status = GatewayStatus(GatewayState.STOPPED)
        self._reported: str | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._channel: LeaseChannel | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._settled = asyncio.Event()  # the current start attempt came to an outcome
        self._wake = asyncio.Event()  # stop() interrupts a backoff
        self._stopping = False
        self._hup_pending = False

    @property
    def spec(self) -> GatewaySpec:
        return self._spec

    @property
    def status(self) -> GatewayStatus:
        return self._status

    def argv(self) -> list[str]:
        """The command that runs this gateway's dnsmasq (in the namespace if any)."""
        argv = dnsmasq_argv(self._spec, lease_script=self._lease_script, dnsmasq=self._dnsmasq)
        return ["ip", "netns", "exec", self._netns, *argv] if self._netns else argv

    async def start(self) -> GatewayStatus:
        """Addresses, lease channel, dnsmasq; returns once dnsmasq is ready or has failed."""
        if self._supervisor is not None and not self._supervisor.done():
            return self._status
        await self.stop()  # a clean slate: a failed attempt's or an earlier daemon's leftovers
        self._stopping = False
        self._wake.clear()
        self._settled.clear()
        try:
            _sync_run_dir(self._spec)
            await self._addresses("replace")
            self._channel = LeaseChannel(self._spec.socket_path, network=self._spec.name,
                                         on_lease=self._on_lease, leases=self._init_leases)
            await self._channel.start()
        except (OSError, GatewayError) as e:
            self._fail(f"cannot set up the gateway: {e}")
            return self._status
        self._supervisor = asyncio.create_task(self._supervise(),
                                               name=f"gateway-{self._spec.name}")
        await self._settled.wait()
        return self._status

    async def stop(self) -> None:
        """dnsmasq ended (ours, or one an earlier herd-node left: see the pid file), channel
        closed, gateway addresses removed. Idempotent; safe on a gateway never started."""
        task, self._supervisor = self._supervisor, None
        if task is not None:
            self._stopping = True
            self._wake.set()
            self._signal(signal.SIGTERM)
            done, _ = await asyncio.wait({task}, timeout=self._grace)
            if not done:
                log.warning("network %s: dnsmasq ignored SIGTERM; SIGKILL", self._spec.name)
                self._signal(signal.SIGKILL)
            await task
        if self._channel is not None:
            await self._channel.stop()
            self._channel = None
        stale = _stale_pid(self._spec)
        if stale is not None:
            log.warning("network %s: ending dnsmasq %d left by an earlier herd-node",
                        self._spec.name, stale)
            await _end_stranger(stale, grace=self._grace)
        try:
            await self._addresses("del")
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._spec.pid_file)
            self._status = GatewayStatus(GatewayState.STOPPED, restarts=self._status.restarts)

    async def update(self, spec: GatewaySpec) -> GatewayStatus:
        """Apply a new spec: reservations in place, anything else by a restart."""
        old = self._spec
        if spec == old:
            return self._status
        if spec.with_reservations(()) != old.with_reservations(()):
            running = self._status.state is not GatewayState.STOPPED
            await self.stop()
            self._spec = spec
            return await self.start() if running else self._status
        self._spec = spec
        if _sync_run_dir(spec):  # new files: dnsmasq's inotify reads them
            self._hup_pending = True  # dnsmasq only forgets or changes an entry on SIGHUP
            if self._status.state is GatewayState.RUNNING:
                self._hup()
        return self._status

    async def _init_leases(self) -> Sequence[Lease]:
        net = self._spec.ipv4.net
        return [lease for lease in await self._leases() if ipaddress.ip_address(lease.ip) in net]

    async def _addresses(self, verb: str) -> None:
        for plan in self._spec.gateways:
            rc, err = await _run(addr_argv(self._spec, plan, verb=verb, netns=self._netns))
            if rc != 0 and not (verb == "del" and any(s in err.lower() for s in _ABSENT)):
                raise GatewayError(f"ip addr {verb} {plan.gateway} dev {self._spec.bridge}: {err}")

    def _signal(self, sig: int) -> None:
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)

    def _hup(self) -> None:
        self._hup_pending = False
        self._signal(signal.SIGHUP)  # only once RUNNING: before its handler, it would kill

    def _fail(self, reason: str, *, state: GatewayState = GatewayState.FAILED) -> None:
        self._status = GatewayStatus(state, restarts=self._status.restarts, reason=reason)
        self._settled.set()
        if reason != self._reported:
            self._reported = reason
            log.error("network %s: gateway: %s", self._spec.name, reason)
            if self._on_failure is not None:
                self._on_failure(reason)

    async def _supervise(self) -> None:
        delay = self._backoff.initial
        loop = asyncio.get_running_loop()
        try:
            while not self._stopping:
                began = loop.time()
                ready, reason, permanent = await self._run_once()
                if self._stopping:
                    break
                if permanent:
                    self._fail(reason)
                    return
                if ready and loop.time() - began >= self._backoff.stable:
                    delay = self._backoff.initial
                self._fail(f"{reason}; restart in {delay:g} s" if ready else reason,
                           state=GatewayState.BACKOFF)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                delay = min(delay * 2, self._backoff.cap)
                self._status = GatewayStatus(GatewayState.BACKOFF,
                                             restarts=self._status.restarts + 1,
                                             reason=self._status.reason)
        except Exception as e:  # a bug here must not leave dnsmasq unsupervised silently
            log.exception("network %s: gateway supervisor failed", self._spec.name)
            self._fail(f"supervisor failed: {e}")
        finally:
            self._settled.set()

    async def _run_once(self) -> tuple[bool, str, bool]:
        """One life of dnsmasq: (became ready, why it ended, a permanent start failure)."""
        env = {**os.environ, SOCKET_ENV: self._spec.socket_path}
        proc = await asyncio.create_subprocess_exec(
            *self.argv(), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, env=env, start_new_session=True)
        self._proc = proc
        self._status = GatewayStatus(GatewayState.STARTING, pid=proc.pid,
                                     restarts=self._status.restarts, reason=self._status.reason)
        tail: collections.deque[str] = collections.deque(maxlen=4)
        ready = asyncio.Event()
        assert proc.stderr is not None
        reader = asyncio.create_task(self._read_log(proc.stderr, tail=tail, ready=ready))
        try:
            if self._stopping:
                proc.terminate()
            if await self._until_ready(proc, ready):
                self._ready(proc)
            rc = await proc.wait()
        finally:
            self._proc = None
            if proc.returncode is None:  # cancelled: never leave dnsmasq behind
                proc.kill()
                await proc.wait()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(reader), 1.0)
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        said = f": {tail[-1]}" if tail else ""
        if not ready.is_set():
            return False, f"dnsmasq exited with {rc} at start{said}", rc in PERMANENT_EXITS
        return True, f"dnsmasq exited with {rc}{said}", False

    async def _until_ready(self, proc: asyncio.subprocess.Process, ready: asyncio.Event) -> bool:
        waits = {asyncio.ensure_future(ready.wait()), asyncio.ensure_future(proc.wait())}
        try:
            await asyncio.wait(waits, timeout=self._ready_timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
        if not ready.is_set() and proc.returncode is None:
            log.error("network %s: dnsmasq not ready after %g s; killing it",
                      self._spec.name, self._ready_timeout)
            proc.kill()
        return ready.is_set()

    def _ready(self, proc: asyncio.subprocess.Process) -> None:
        self._status = GatewayStatus(GatewayState.RUNNING, pid=proc.pid,
                                     restarts=self._status.restarts)
        self._reported = None
        self._settled.set()
        log.info("network %s: dnsmasq %d serving", self._spec.name, proc.pid)
        if self._hup_pending:
            self._hup()

    async def _read_log(self, stream: asyncio.StreamReader, *, tail: collections.deque[str],
                        ready: asyncio.Event) -> None:
        async for raw in stream:
            line = raw.decode(errors="replace").rstrip()
            if not line:
                continue
            tail.append(line)
            log.info("network %s: %s", self._spec.name, line)
            if READY_LINE in line:
                ready.set()
