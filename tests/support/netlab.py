"""Network namespaces for a managed network's gateway with the real dnsmasq.

Used by tests/integration/test_gateway.py. Each test builds its own world (`lab` fixture): a
"host" namespace with a bridge per network (as the network controller would make it) and,
per bridge, a "guest" namespace joined by a veth. Herd's `Gateway` runs dnsmasq in the host
namespace (`gateways` fixture, all stopped at the end); guests ask for leases with
tests/support/dhcpclient.py (`lease`) and resolve names with tests/support/dnsquery.py. The
fake `LeaseBook` plays ZooKeeper's /herd/networks/<net>/leases: what `on_lease` wrote is what
the next gateway's `leases()` provider returns (failover). `plain_dns` and the `other_dns`
fixture: another DNS server on the host. `listening`, `sockets_of`: what `ss` shows.
`router_of`: the default route and address a guest got by router advertisement.
`left_running`: the dnsmasq processes a herd-node killed with -9 leaves. `run_script`: the
lease script as dnsmasq runs it.

dnsmasq pings an address before it offers it to a client it does not know (the offer comes
after ~3 s); a known client (a lease or a reservation) is answered at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from reconciler.network.dnsmasq import AddressPlan, DhcpPool, GatewaySpec, Lease, Reservation
from reconciler.network.gateway import Gateway
from reconciler.network.leasechannel import LeaseAction, LeaseChannel, LeaseEvent
from tests.support.dhcpclient import DhcpAnswer, request_lease
from tests.support.dnsquery import query_a

UNKNOWN = 8.0  # a DHCP client's patience when dnsmasq first pings the address (~3 s)
KNOWN = 3.0


def sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


@dataclass
class Lab:
    """The namespaces of one test: a host with bridges, a guest per bridge."""

    tag: str
    base: str  # run directories and the lease script wrapper live here
    namespaces: list[str]

    @property
    def host(self) -> str:
        return f"hgw-{self.tag}"

    def segment(self, index: int, *, slaac: bool = False) -> str:
        """Bridge br<index> in the host, a guest namespace on it; returns the guest's name.
        `slaac`: the guest takes router advertisements (accept_ra=2, forwarding off), and no
        one waits for duplicate address detection (as on a bridge that is long up)."""
        guest = f"hcl{index}-{self.tag}"
        sh("ip", "netns", "add", guest)
        self.namespaces.append(guest)
        sh("ip", "-n", self.host, "link", "add", f"br{index}", "type", "bridge")
        sh("ip", "-n", self.host, "link", "add", f"ve{index}", "type", "veth", "peer", "name",
           "eth0", "netns", guest)
        sh("ip", "-n", self.host, "link", "set", f"ve{index}", "master", f"br{index}")
        if slaac:
            sh("ip", "netns", "exec", self.host, "sysctl", "-qw",
               f"net.ipv6.conf.br{index}.accept_dad=0")
            sh("ip", "netns", "exec", guest, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=0",
               "net.ipv6.conf.eth0.accept_ra=2", "net.ipv6.conf.eth0.accept_dad=0")
        for ns, dev in ((self.host, f"br{index}"), (self.host, f"ve{index}"), (guest, "eth0"),
                        (guest, "lo")):
            sh("ip", "-n", ns, "link", "set", dev, "up")
        return guest

    def spec(self, index: int, *, name: str, reservations: tuple[Reservation, ...] = (),
             lease_time: int = 600, ipv6: bool = False) -> GatewaySpec:
        """Network 10.<120+index>.<tag byte>.0/24 on br<index>: gateway .1, pool .100-.200;
        `ipv6`: also fd<tag byte>:<index>::/64, gateway ::1, DHCPv6 pool ::100-::1ff."""
        net = self.network(index)
        v6 = f"fd{self.tag[:2]}:{index}::"
        return GatewaySpec(
            name=name, bridge=f"br{index}", domain=f"{name}.herd.internal",
            ipv4=AddressPlan(network=str(net), gateway=str(net[1]),
                             dhcp=DhcpPool(str(net[100]), str(net[200]), lease_time)),
            ipv6=AddressPlan(f"{v6}/64", f"{v6}1", DhcpPool(f"{v6}100", f"{v6}1ff", lease_time))
            if ipv6 else None,
            run_dir=os.path.join(self.base, name), nameservers=("192.0.2.53",),
            reservations=reservations)

    def network(self, index: int) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"10.{120 + index}.{int(self.tag[:2], 16)}.0/24")

    def host_addresses(self, bridge: str) -> str:
        return sh("ip", "-n", self.host, "-4", "addr", "show", "dev", bridge)

    @property
    def lease_script(self) -> str:
        return os.path.join(self.base, "herd-dnsmasq-lease")


@pytest.fixture
def lab() -> Iterator[Lab]:
    tag = uuid.uuid4().hex[:6]
    base = tempfile.mkdtemp(prefix="herd-gw-", dir="/tmp")
    os.chmod(base, 0o755)  # dnsmasq reads the host files after dropping root
    world = Lab(tag, base, [])
    script = world.lease_script
    with open(script, "w") as f:
        f.write(f'#!/bin/sh\nexec {sys.executable} -m reconciler.network.leasescript "$@"\n')
    os.chmod(script, 0o755)
    try:
        sh("ip", "netns", "add", world.host)
        world.namespaces.append(world.host)
        sh("ip", "-n", world.host, "link", "set", "lo", "up")
        yield world
    finally:
        for ns in reversed(world.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


class LeaseBook:
    """What the daemon would keep in ZooKeeper: the leases by MAC, from on_lease events.
    ZooKeeper away: the next `failing_reads` reads fail, and every write while
    `failing_writes`."""

    def __init__(self, leases: tuple[Lease, ...] = (), *, failing_reads: int = 0,
                 failing_writes: bool = False) -> None:
        self.leases: dict[str, Lease] = {lease.mac: lease for lease in leases}
        self.events: list[LeaseEvent] = []
        self.failing_reads, self.failing_writes = failing_reads, failing_writes
        self._changed = asyncio.Condition()

    async def on_lease(self, event: LeaseEvent) -> None:
        if self.failing_writes:
            raise ConnectionError("ZooKeeper is away")
        async with self._changed:
            self.events.append(event)
            if event.action is LeaseAction.DEL:
                self.leases.pop(event.lease.mac, None)
            else:
                self.leases[event.lease.mac] = event.lease
            self._changed.notify_all()

    async def provide(self) -> list[Lease]:
        if self.failing_reads > 0:
            self.failing_reads -= 1
            raise ConnectionError("ZooKeeper is away")
        return list(self.leases.values())

    async def wait_for(self, check: Callable[[dict[str, Lease]], bool], *,
                       timeout: float = 5.0) -> dict[str, Lease]:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: check(self.leases))
            return dict(self.leases)

    async def wait_event(self, check: Callable[[LeaseEvent], bool], *,
                         timeout: float = 5.0) -> LeaseEvent:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: any(check(e) for e in self.events))
            return next(e for e in self.events if check(e))


@pytest.fixture
async def gateways(lab: Lab) -> AsyncIterator[Callable[..., Gateway]]:
    """A factory of gateways in the lab's host namespace, all stopped at the end:
    `make(spec, book, **more_gateway_arguments)`."""
    made: list[Gateway] = []

    def make(spec: GatewaySpec, book: LeaseBook, **kw: Any) -> Gateway:
        """`book` keeps the leases unless `on_lease`/`leases` say otherwise."""
        kw = {"on_lease": book.on_lease, "leases": book.provide, **kw}
        gw = Gateway(spec, lease_script=lab.lease_script, netns=lab.host, **kw)
        made.append(gw)
        return gw

    yield make
    for gw in made:
        await gw.stop()


async def lease(guest: str, mac: str, *, hostname: str | None = None,
                timeout: float = UNKNOWN, reboot: str | None = None) -> DhcpAnswer | None:
    return await request_lease(guest, mac, hostname=hostname, timeout=timeout, reboot=reboot)


async def resolve(guest: str, name: str, *, server: str,
                  timeout: float = 2.0) -> tuple[str, ...] | None:
    """The A records `server` answers for `name`, asked from `guest`; None: no answer."""
    found = await query_a(guest, name, server=server, timeout=timeout)
    return None if found is None else found.addresses


def configure(guest: str, answer: DhcpAnswer, *, prefixlen: int = 24) -> None:
    """Put the leased address on the guest's interface (as its DHCP client would)."""
    sh("ip", "-n", guest, "addr", "replace", f"{answer.ip}/{prefixlen}", "dev", "eth0")


@contextlib.contextmanager
def plain_dns(lab: Lab, address: str, *, device: str) -> Iterator[None]:
    """Another DNS server on the host: a plain dnsmasq on `address`:53 (put on `device`)."""
    sh("ip", "-n", lab.host, "addr", "add", f"{address}/32", "dev", device)
    hosts = os.path.join(lab.base, f"hosts-{address}")
    with open(hosts, "w") as f:
        f.write(f"{address} other.example\n")
    os.chmod(hosts, 0o644)
    proc = subprocess.Popen(
        ["ip", "netns", "exec", lab.host, "/usr/sbin/dnsmasq", "--conf-file=/dev/null",
         "--keep-in-foreground", "--log-facility=-", f"--listen-address={address}",
         "--bind-interfaces", "--no-resolv", "--no-hosts", f"--addn-hosts={hosts}",
         f"--pid-file={hosts}.pid"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # ready when it says so (its sockets are bound)
            if "started, version" in line:
                break
        else:
            raise AssertionError(f"the other DNS server did not start: {proc.wait()}")
        yield
    finally:
        proc.terminate()
        proc.wait(5)


@pytest.fixture
def other_dns(lab: Lab) -> Iterator[str]:
    """Another DNS server on another address of the host (10.53.<tag>.53 on lo)."""
    address = f"10.53.{int(lab.tag[:2], 16)}.53"
    with plain_dns(lab, address, device="lo"):
        yield address


def listening(lab: Lab, proto: str) -> set[str]:
    """Local addresses with port 53 of `proto` (tcp/udp) sockets in the host namespace."""
    out = sh("ip", "netns", "exec", lab.host, "ss", "-Hln", f"--{proto}")
    return {line.split()[3].rsplit(":", 1)[0] for line in out.splitlines()
            if line.split()[3].endswith(":53")}


def sockets_of(netns: str, pid: int, *, kinds: str = "-tuw") -> list[str]:
    """`proto local-address:port` of the listening sockets (`ss -Hlnp` of `kinds`: t tcp,
    u udp, w raw) that process `pid` holds in `netns`."""
    out = sh("ip", "netns", "exec", netns, "ss", "-Hlnp", kinds)
    return sorted(f"{f[0]} {f[4]}" for f in map(str.split, out.splitlines())
                  if f"pid={pid}," in f[-1])


def link_local(netns: str, device: str) -> str:
    found = json.loads(sh("ip", "-n", netns, "-j", "-6", "addr", "show", "dev", device,
                          "scope", "link"))
    return next(str(a["local"]) for i in found for a in i["addr_info"] if "local" in a)


async def router_of(guest: str, *, deadline: float = 10.0) -> tuple[dict[str, Any], str]:
    """The guest's IPv6 default route (`ip -j` form) and its global address, once it has
    both from a router advertisement (the kernel has no event to await: polled)."""
    end = time.monotonic() + deadline
    while True:
        routes = json.loads(sh("ip", "-n", guest, "-j", "-6", "route", "show", "default"))
        addrs = json.loads(sh("ip", "-n", guest, "-j", "-6", "addr", "show", "dev", "eth0",
                              "scope", "global"))
        found = [a["local"] for i in addrs for a in i["addr_info"]
                 if "local" in a and not a.get("tentative")]
        if routes and found:
            return routes[0], found[0]
        if time.monotonic() > end:
            raise AssertionError(f"no router advertisement in {deadline} s: {routes} {addrs}")
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def left_running(lab: Lab, gw: Gateway, book: LeaseBook,
                       ) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """What a herd-node killed with -9 leaves: the gateway addresses and its dnsmasq (with
    its router advertisement instance for a network with ipv6), with their pid files,
    started by a lease channel that is gone now. Killed at the end if still there."""
    spec = gw.spec
    os.makedirs(spec.run_dir)
    for plan in spec.gateways:
        sh("ip", "-n", lab.host, "addr", "add", f"{plan.gateway}/{plan.prefixlen}", "dev",
           spec.bridge, *(["nodad"] if plan.version == 6 else []))
    earlier = LeaseChannel(spec.socket_path, network=spec.name, on_lease=book.on_lease,
                           leases=book.provide)
    await earlier.start()
    procs: list[asyncio.subprocess.Process] = []
    try:
        for argv in [gw.argv()] + ([gw.ra_argv()] if spec.ipv6 else []):
            procs.append(await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                env={**os.environ, "HERD_LEASE_SOCKET": spec.socket_path}))
            stderr = procs[-1].stderr
            assert stderr is not None
            async with asyncio.timeout(10):
                while b"started, version" not in await stderr.readline():
                    pass
        await earlier.stop()  # the earlier daemon is gone
        yield procs
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
        await earlier.stop()


async def run_script(*args: str, socket_path: str, env: dict[str, str] | None = None,
                     ) -> tuple[int, str, str, float]:
    """herd-dnsmasq-lease run as dnsmasq would: (exit status, stdout, stderr, seconds)."""
    began = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "reconciler.network.leasescript", *args,
        env={**os.environ, "HERD_LEASE_SOCKET": socket_path, **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode(), time.monotonic() - began
