"""One managed network's gateway on this node: its addresses on the bridge and its dnsmasq.

The primary's network controller (herd-node) holds one `Gateway` per managed network while
it is primary. `start()` puts the gateway address(es) on the network's bridge (made elsewhere;
in `netns` if given, as on the dev cluster's namespace hosts), opens the `LeaseChannel` and
starts dnsmasq (`reconciler.network.dnsmasq.dnsmasq_argv`: DNS and DHCP on the gateway
addresses) as a supervised child; for a network with `ipv6`, also a second, DNS-less dnsmasq
that sends router advertisements on the bridge (`ra_argv`). `update()` applies new
reservations in place (SIGHUP when one went away or changed), restarts for anything else.
`stop()` ends both dnsmasq (SIGTERM, SIGKILL after `grace`; also those an earlier herd-node
left, found by their pid files) and removes the addresses: when it returns nothing on this
node answers DHCP, DNS or router solicitations for the network. Supervision (readiness,
backoff, permanent failures reported once): `reconciler.network.supervise`.
docs/networks-gateway.md says why and what was checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from reconciler.network.dnsmasq import (
    DHCP_HOSTS_DIR,
    DNS_HOSTS_DIR,
    DNSMASQ,
    GatewaySpec,
    Lease,
    addr_argv,
    dnsmasq_argv,
    ra_argv,
    reservation_files,
)
from reconciler.network.leasechannel import LeaseCallback, LeaseChannel, LeasesProvider
from reconciler.network.leasescript import SOCKET_ENV
from reconciler.network.supervise import (
    SEVERITY,
    Backoff,
    State,
    Supervised,
    Timing,
    end_stranger,
    stale_pid,
)

__all__ = ["Backoff", "Gateway", "GatewayError", "GatewayState", "GatewayStatus"]

log = logging.getLogger(__name__)

_ABSENT = ("address not found", "cannot assign requested address", "cannot find device",
           "does not exist", "no such file or directory")  # address, bridge, namespace: gone


GatewayState = State  # the worst state of its dnsmasq processes


@dataclass(frozen=True)
class GatewayStatus:
    """`pid` is the main dnsmasq's, `ra_pid` the router advertisement instance's; `reason`
    says what the process in the worst state said; `restarts` counts both."""

    state: State
    pid: int | None = None
    restarts: int = 0
    reason: str | None = None
    ra_pid: int | None = None


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
        self._timing = Timing(backoff or Backoff(), grace=grace, ready=ready_timeout)
        self._on_failure = on_failure
        self._setup_failure: str | None = None
        self._setup_reported: str | None = None
        self._channel: LeaseChannel | None = None
        self._main = Supervised("dnsmasq", argv=self.argv, network=spec.name,
                                timing=self._timing, report=self._report,
                                env=lambda: {SOCKET_ENV: self._spec.socket_path},
                                on_ready=self._main_ready)
        self._ra: Supervised | None = None  # made at start() for a network with ipv6
        self._hup_pending = False

    @property
    def spec(self) -> GatewaySpec:
        return self._spec

    @property
    def status(self) -> GatewayStatus:
        """The worst state of its processes (or of its set-up), with that one's reason."""
        if self._setup_failure is not None:
            return GatewayStatus(State.FAILED, restarts=self._main.status.restarts,
                                 reason=self._setup_failure)
        main = self._main.status
        ra = self._ra.status if self._ra is not None else None
        worst = main if ra is None or SEVERITY[main.state] >= SEVERITY[ra.state] else ra
        return GatewayStatus(worst.state, pid=main.pid, reason=worst.reason,
                             restarts=main.restarts + (ra.restarts if ra else 0),
                             ra_pid=ra.pid if ra else None)

    def argv(self) -> list[str]:
        """The command that runs this gateway's dnsmasq (in the namespace if any)."""
        return self._in_netns(dnsmasq_argv(self._spec, lease_script=self._lease_script,
                                           dnsmasq=self._dnsmasq))

    def ra_argv(self) -> list[str]:
        """The command that runs its router advertisement dnsmasq (a network with ipv6)."""
        return self._in_netns(ra_argv(self._spec, dnsmasq=self._dnsmasq))

    def _in_netns(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self._netns, *argv] if self._netns else argv

    def _daemons(self) -> list[Supervised]:
        return [self._main] + ([self._ra] if self._ra is not None else [])

    async def start(self) -> GatewayStatus:
        """Addresses, lease channel, dnsmasq (both, with ipv6); returns once they are ready
        or have failed."""
        if self._setup_failure is None and all(d.active for d in self._daemons()):
            return self.status
        await self.stop()  # a clean slate: a failed attempt's or an earlier daemon's leftovers
        if self._spec.ipv6 is None:
            self._ra = None
        elif self._ra is None:
            self._ra = Supervised("dnsmasq (router advertisements)", argv=self.ra_argv,
                                  network=self._spec.name, timing=self._timing,
                                  report=self._report)
        try:
            _sync_run_dir(self._spec)
            await self._addresses("replace")
            self._channel = LeaseChannel(self._spec.socket_path, network=self._spec.name,
                                         on_lease=self._on_lease, leases=self._init_leases)
            await self._channel.start()
        except (OSError, GatewayError) as e:
            self._setup_failure = reason = f"cannot set up the gateway: {e}"
            if reason != self._setup_reported:
                self._setup_reported = reason
                self._report(reason)
            return self.status
        await asyncio.gather(*(d.start() for d in self._daemons()))
        return self.status

    async def stop(self) -> None:
        """Both dnsmasq ended (ours, or those an earlier herd-node left: see the pid files),
        channel closed, gateway addresses removed. Idempotent; safe on a gateway never
        started."""
        await asyncio.gather(*(d.stop() for d in self._daemons()))
        if self._channel is not None:
            await self._channel.stop()
            self._channel = None
        pid_files = (self._spec.pid_file, self._spec.ra_pid_file)
        for pid_file in pid_files:
            stale = stale_pid(pid_file)
            if stale is not None:
                log.warning("network %s: ending dnsmasq %d left by an earlier herd-node",
                            self._spec.name, stale)
                await end_stranger(stale, grace=self._timing.grace)
        try:
            await self._addresses("del")
        finally:
            for pid_file in pid_files:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(pid_file)
            self._setup_failure = None

    async def update(self, spec: GatewaySpec) -> GatewayStatus:
        """Apply a new spec: reservations in place, anything else by a restart."""
        old = self._spec
        if spec == old:
            return self.status
        if spec.with_reservations(()) != old.with_reservations(()):
            running = self.status.state is not State.STOPPED
            await self.stop()
            self._spec = spec
            return await self.start() if running else self.status
        self._spec = spec
        if _sync_run_dir(spec):  # new files: dnsmasq's inotify reads them
            self._hup_pending = True  # dnsmasq only forgets or changes an entry on SIGHUP
            if self._main.status.state is State.RUNNING:
                self._hup()
        return self.status

    async def _init_leases(self) -> Sequence[Lease]:
        net = self._spec.ipv4.net
        return [lease for lease in await self._leases() if ipaddress.ip_address(lease.ip) in net]

    async def _addresses(self, verb: str) -> None:
        for plan in self._spec.gateways:
            rc, err = await _run(addr_argv(self._spec, plan, verb=verb, netns=self._netns))
            if rc != 0 and not (verb == "del" and any(s in err.lower() for s in _ABSENT)):
                raise GatewayError(f"ip addr {verb} {plan.gateway} dev {self._spec.bridge}: {err}")

    def _hup(self) -> None:
        self._hup_pending = False
        self._main.signal(signal.SIGHUP)  # only once RUNNING: before its handler, it would kill

    def _main_ready(self) -> None:
        self._setup_reported = None
        if self._hup_pending:
            self._hup()

    def _report(self, reason: str) -> None:
        """A failure, reported once: each `Supervised` reports a reason once, start() a
        set-up failure once until dnsmasq was ready again."""
        log.error("network %s: gateway: %s", self._spec.name, reason)
        if self._on_failure is not None:
            self._on_failure(reason)
