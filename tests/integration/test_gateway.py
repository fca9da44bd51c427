"""A managed network's gateway with the real dnsmasq, in network namespaces.

Each test builds its own world: a "host" namespace with a bridge per network (as the
network controller would make it) and, per bridge, a "guest" namespace joined by a veth.
Herd's `Gateway` runs dnsmasq in the host namespace; guests ask for leases with
tests/support/dhcpclient.py and resolve names with tests/support/dnsquery.py. The fake
`LeaseBook` plays ZooKeeper's /herd/networks/<net>/leases: what `on_lease` wrote is what
the next gateway's `leases()` provider returns (failover).

dnsmasq pings an address before it offers it to a client it does not know (the offer comes
after ~3 s); a known client (a lease or a reservation) is answered at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import pytest

from reconciler.network.dnsmasq import AddressPlan, DhcpPool, GatewaySpec, Lease, Reservation
from reconciler.network.gateway import Backoff, Gateway, GatewayState
from reconciler.network.leasechannel import LeaseAction, LeaseEvent
from tests.support.dhcpclient import DhcpAnswer, request_lease
from tests.support.dnsquery import query_a

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.access("/usr/sbin/dnsmasq", os.X_OK),
    reason="needs root and /usr/sbin/dnsmasq")

UNKNOWN = 8.0  # a DHCP client's patience when dnsmasq first pings the address (~3 s)
KNOWN = 3.0


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, text=True)


@dataclass
class Lab:
    """The namespaces of one test: a host with bridges, a guest per bridge."""

    tag: str
    base: str  # run directories and the lease script wrapper live here
    namespaces: list[str]

    @property
    def host(self) -> str:
        return f"hgw-{self.tag}"

    def segment(self, index: int) -> str:
        """Bridge br<index> in the host, a guest namespace on it; returns the guest's name."""
        guest = f"hcl{index}-{self.tag}"
        sh("ip", "netns", "add", guest)
        self.namespaces.append(guest)
        sh("ip", "-n", self.host, "link", "add", f"br{index}", "type", "bridge")
        sh("ip", "-n", self.host, "link", "add", f"ve{index}", "type", "veth", "peer", "name",
           "eth0", "netns", guest)
        sh("ip", "-n", self.host, "link", "set", f"ve{index}", "master", f"br{index}")
        for ns, dev in ((self.host, f"br{index}"), (self.host, f"ve{index}"), (guest, "eth0"),
                        (guest, "lo")):
            sh("ip", "-n", ns, "link", "set", dev, "up")
        return guest

    def spec(self, index: int, *, name: str, reservations: tuple[Reservation, ...] = (),
             lease_time: int = 600) -> GatewaySpec:
        """Network 10.<120+index>.<tag byte>.0/24 on br<index>: gateway .1, pool .100-.200."""
        net = self.network(index)
        return GatewaySpec(
            name=name, bridge=f"br{index}", domain=f"{name}.herd.internal",
            ipv4=AddressPlan(network=str(net), gateway=str(net[1]),
                             dhcp=DhcpPool(str(net[100]), str(net[200]), lease_time)),
            run_dir=os.path.join(self.base, name), nameservers=("192.0.2.53",),
            reservations=reservations)

    def network(self, index: int) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"10.{120 + index}.{int(self.tag[:2], 16)}.0/24")

    def host_addresses(self, bridge: str) -> str:
        return subprocess.run(["ip", "-n", self.host, "-4", "addr", "show", "dev", bridge],
                              check=True, capture_output=True, text=True).stdout

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
    """What the daemon would keep in ZooKeeper: the leases by MAC, from on_lease events."""

    def __init__(self, leases: tuple[Lease, ...] = ()) -> None:
        self.leases: dict[str, Lease] = {lease.mac: lease for lease in leases}
        self.events: list[LeaseEvent] = []
        self._changed = asyncio.Condition()

    async def on_lease(self, event: LeaseEvent) -> None:
        async with self._changed:
            self.events.append(event)
            if event.action is LeaseAction.DEL:
                self.leases.pop(event.lease.mac, None)
            else:
                self.leases[event.lease.mac] = event.lease
            self._changed.notify_all()

    async def provide(self) -> list[Lease]:
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
    """A factory of gateways in the lab's host namespace, all stopped at the end."""
    made: list[Gateway] = []

    def make(spec: GatewaySpec, book: LeaseBook, **kw: object) -> Gateway:
        gw = Gateway(spec, on_lease=book.on_lease, leases=book.provide,
                     lease_script=lab.lease_script, netns=lab.host, **kw)  # type: ignore[arg-type]
        made.append(gw)
        return gw

    yield make
    for gw in made:
        await gw.stop()


async def lease(guest: str, mac: str, *, hostname: str | None = None,
                timeout: float = UNKNOWN, reboot: str | None = None) -> DhcpAnswer | None:
    return await request_lease(guest, mac, hostname=hostname, timeout=timeout, reboot=reboot)


def configure(guest: str, answer: DhcpAnswer, *, prefixlen: int = 24) -> None:
    """Put the leased address on the guest's interface (as its DHCP client would)."""
    sh("ip", "-n", guest, "addr", "replace", f"{answer.ip}/{prefixlen}", "dev", "eth0")


# --- tests ------------------------------------------------------------------------------------

async def test_a_client_gets_a_lease_that_reaches_on_lease_and_dns(
        lab: Lab, gateways: Callable[..., Gateway]) -> None:
    guest = lab.segment(0)
    spec = lab.spec(0, name="web")
    book = LeaseBook()
    gw = gateways(spec, book)
    assert (await gw.start()).state is GatewayState.RUNNING
    gw_ip = spec.ipv4.gateway  # dnsmasq's only DNS sockets: no wildcard, no loopback, no ::
    assert listening(lab, "udp") == {gw_ip} and listening(lab, "tcp") == {gw_ip}

    answer = await lease(guest, "52:54:00:00:00:01", hostname="vm1")
    assert answer is not None
    net, pool = spec.ipv4.net, spec.ipv4.dhcp
    assert pool is not None
    assert int(ipaddress.IPv4Address(pool.start)) <= int(ipaddress.IPv4Address(answer.ip)) \
        <= int(ipaddress.IPv4Address(pool.end))
    assert (answer.router, answer.dns, answer.server) == (str(net[1]),) * 3
    assert (answer.lease_time, answer.domain) == (600, "web.herd.internal")

    leases = await book.wait_for(lambda ls: "52:54:00:00:00:01" in ls)
    recorded = leases["52:54:00:00:00:01"]
    assert (recorded.ip, recorded.hostname) == (answer.ip, "vm1")
    assert abs(recorded.expiry - (time.time() + 600)) < 10
    assert book.events[0].action is LeaseAction.ADD
    assert book.events[0].network == "web"

    configure(guest, answer)
    found = await query_a(guest, "vm1.web.herd.internal", server=str(net[1]))
    assert found is not None and found.addresses == (answer.ip,)
    missing = await query_a(guest, "nobody.web.herd.internal", server=str(net[1]))
    assert missing is not None and missing.rcode == 3 and not missing.addresses  # NXDOMAIN


async def test_reservations_give_their_ip_and_name_and_follow_updates(
        lab: Lab, gateways: Callable[..., Gateway]) -> None:
    guest = lab.segment(0)
    net = lab.network(0)
    db = Reservation("52:54:00:00:01:01", str(net[50]), "db1")
    printer = Reservation("52:54:00:00:01:02", str(net[51]), "printer")
    spec = lab.spec(0, name="db", reservations=(db, printer))
    gw = gateways(spec, LeaseBook())
    assert (await gw.start()).state is GatewayState.RUNNING

    answer = await lease(guest, db.mac, hostname="whatever", timeout=KNOWN)
    assert answer is not None and answer.ip == db.ip
    configure(guest, answer)
    gw_ip = str(net[1])
    for name, ip in (("db1", db.ip), ("printer", printer.ip)):  # printer never asked: DNS anyway
        found = await query_a(guest, f"{name}.db.herd.internal", server=gw_ip)
        assert found is not None and found.addresses == (ip,), name

    # a new reservation works without a restart (inotify); a removed one is forgotten (SIGHUP)
    added = Reservation("52:54:00:00:01:03", str(net[52]), "cache")
    pid = gw.status.pid
    await gw.update(spec.with_reservations((db, added)))
    assert gw.status.pid == pid
    found = await query_a(guest, "cache.db.herd.internal", server=gw_ip)
    assert found is not None and found.addresses == (added.ip,)
    other = await lease(guest, added.mac, timeout=KNOWN)
    assert other is not None and other.ip == added.ip
    gone = await query_a(guest, "printer.db.herd.internal", server=gw_ip)
    assert gone is not None and not gone.addresses
    unreserved = await lease(guest, printer.mac)  # from the pool now
    assert unreserved is not None and unreserved.ip != printer.ip

    moved = Reservation(added.mac, str(net[53]), "cache")  # a changed reservation (SIGHUP)
    await gw.update(spec.with_reservations((db, moved)))
    again = await lease(guest, moved.mac, timeout=KNOWN)
    assert again is not None and again.ip == moved.ip
    found = await query_a(guest, "cache.db.herd.internal", server=gw_ip)
    assert found is not None and found.addresses == (moved.ip,)
    assert gw.status.pid == pid and gw.status.state is GatewayState.RUNNING


async def test_failover_restores_leases_from_the_provider(
        lab: Lab, gateways: Callable[..., Gateway]) -> None:
    guest = lab.segment(0)
    spec = lab.spec(0, name="app")
    gw_ip = str(spec.ipv4.net[1])
    book = LeaseBook()
    old = gateways(spec, book)
    await old.start()
    first = await lease(guest, "52:54:00:00:02:01", hostname="app1")
    assert first is not None
    await book.wait_for(lambda ls: "52:54:00:00:02:01" in ls)

    began = time.monotonic()
    await old.stop()
    stopped = time.monotonic()
    new = gateways(spec, book)  # the new primary: same network, leases from "ZooKeeper"
    assert (await new.start()).state is GatewayState.RUNNING
    started = time.monotonic()
    again = await lease(guest, "52:54:00:00:02:01", hostname="app1", timeout=KNOWN)
    gap = time.monotonic() - began
    assert again is not None and again.ip == first.ip
    assert again.ack_seconds < 1.0  # a known lease: no ping before the offer
    print(f"\nfailover gap {gap:.3f} s (stop {stopped - began:.3f} s, start "
          f"{started - stopped:.3f} s, then DHCP); first answer {first.ack_seconds:.3f} s, "
          f"known client {again.ack_seconds:.3f} s")
    assert gap < 5.0
    # the new dnsmasq announced the lease it was given at start: "old", not "add"
    restored = await book.wait_event(lambda e: e.action is LeaseAction.OLD)
    assert restored.lease.ip == first.ip
    configure(guest, again)
    # the name came with init
    found = await query_a(guest, "app1.app.herd.internal", server=gw_ip)
    assert found is not None and found.addresses == (first.ip,)


async def test_init_serves_the_provider_leases_not_the_expired_ones(
        lab: Lab, gateways: Callable[..., Gateway]) -> None:
    guest = lab.segment(0)
    spec = lab.spec(0, name="init")
    net = spec.ipv4.net
    later = int(time.time()) + 3600
    known = Lease("52:54:00:00:03:01", str(net[177]), "known", later, "01:52:54:00:00:03:01")
    expired = Lease("52:54:00:00:03:02", str(net[178]), "stale", int(time.time()) - 10)
    gw = gateways(spec, LeaseBook((known, expired)))
    await gw.start()
    answer = await lease(guest, known.mac, timeout=KNOWN)
    assert answer is not None and answer.ip == known.ip and answer.ack_seconds < 1.0
    configure(guest, answer)
    found = await query_a(guest, "known.init.herd.internal", server=str(net[1]))
    assert found is not None and found.addresses == (known.ip,)
    stale = await query_a(guest, "stale.init.herd.internal", server=str(net[1]))
    assert stale is not None and not stale.addresses


async def test_after_stop_nothing_answers_dhcp_or_dns(
        lab: Lab, gateways: Callable[..., Gateway]) -> None:
    guest = lab.segment(0)
    net = lab.network(0)
    resv = Reservation("52:54:00:00:04:01", str(net[60]), "quiet")
    spec = lab.spec(0, name="quiet", reservations=(resv,))
    gw = gateways(spec, LeaseBook())
    await gw.start()
    answer = await lease(guest, resv.mac, timeout=KNOWN)
    assert answer is not None and answer.ip == resv.ip
    configure(guest, answer)
    assert await query_a(guest, "quiet.quiet.herd.internal", server=str(net[1])) is not None
    assert f"{net[1]}/24" in lab.host_addresses("br0")

    await gw.stop()
    assert gw.status.state is GatewayState.STOPPED
    assert str(net[1]) not in lab.host_addresses("br0")
    assert await lease(guest, resv.mac, timeout=2.0) is None
    silent = await query_a(guest, "quiet.quiet.herd.internal", server=str(net[1]), timeout=1.0)
    assert silent is None


async def test_two_networks_at_once(lab: Lab, gateways: Callable[..., Gateway]) -> None:
    guests = [lab.segment(0), lab.segment(1)]
    specs = [lab.spec(0, name="red"), lab.spec(1, name="blue")]
    books = [LeaseBook(), LeaseBook()]
    gws = [gateways(spec, book) for spec, book in zip(specs, books, strict=True)]
    for gw in gws:
        assert (await gw.start()).state is GatewayState.RUNNING
    answers = await asyncio.gather(
        lease(guests[0], "52:54:00:00:05:01", hostname="r1"),
        lease(guests[1], "52:54:00:00:05:02", hostname="b1"))
    for answer, spec, book, guest, name in zip(answers, specs, books, guests, ("r1", "b1"),
                                               strict=True):
        assert answer is not None
        assert ipaddress.ip_address(answer.ip) in spec.ipv4.net
        assert answer.server == spec.ipv4.gateway and answer.domain == spec.domain
        await book.wait_for(lambda ls: len(ls) == 1)
        configure(guest, answer)
        found = await query_a(guest, f"{name}.{spec.domain}", server=spec.ipv4.gateway)
        assert found is not None and found.addresses == (answer.ip,)
    crossed = await query_a(guests[0], f"b1.{specs[0].domain}", server=specs[0].ipv4.gateway)
    assert crossed is not None and not crossed.addresses
    assert [list(b.leases) for b in books] == [["52:54:00:00:05:01"], ["52:54:00:00:05:02"]]


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


async def test_another_dns_server_on_the_host_keeps_answering(
        lab: Lab, gateways: Callable[..., Gateway], other_dns: str) -> None:
    async def other_answers() -> bool:
        found = await query_a(lab.host, "other.example", server=other_dns)
        return found is not None and found.addresses == (other_dns,)

    guest = lab.segment(0)
    assert await other_answers()
    spec = lab.spec(0, name="dual")
    gw = gateways(spec, LeaseBook())
    assert (await gw.start()).state is GatewayState.RUNNING
    assert await other_answers()
    mine = await query_a(lab.host, "other.example", server=spec.ipv4.gateway)
    assert mine is not None and not mine.addresses  # each answers for its own names only
    answer = await lease(guest, "52:54:00:00:06:01", hostname="d1")
    assert answer is not None
    await gw.stop()
    assert await other_answers()


async def test_address_in_use_is_reported_once_and_not_retried(
        lab: Lab, gateways: Callable[..., Gateway]) -> None:
    lab.segment(0)
    spec = lab.spec(0, name="clash")
    reasons: list[str] = []
    # someone else holds the gateway address's port 53
    with plain_dns(lab, spec.ipv4.gateway, device="br0"):
        gw = gateways(spec, LeaseBook(), on_failure=reasons.append)
        status = await gw.start()
        assert status.state is GatewayState.FAILED
        assert status.reason is not None and "Address already in use" in status.reason
        assert reasons == [status.reason]
        assert gw.status.pid is None and gw.status.restarts == 0  # nothing runs, no retry
        found = await query_a(lab.host, "other.example", server=spec.ipv4.gateway)
        assert found is not None and found.addresses == (spec.ipv4.gateway,)
        await gw.stop()
        assert reasons == [status.reason]


async def test_a_killed_dnsmasq_is_restarted_with_its_leases(
        lab: Lab, gateways: Callable[..., Gateway]) -> None:
    guest = lab.segment(0)
    spec = lab.spec(0, name="phoenix")
    book = LeaseBook()
    gw = gateways(spec, book, backoff=Backoff(initial=0.1, cap=1.0))
    await gw.start()
    first = await lease(guest, "52:54:00:00:07:01")
    assert first is not None
    await book.wait_for(lambda ls: len(ls) == 1)
    pid = gw.status.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    again = await lease(guest, "52:54:00:00:07:01", timeout=KNOWN)  # retransmits until back
    assert again is not None and again.ip == first.ip
    assert gw.status.state is GatewayState.RUNNING and gw.status.restarts == 1
    assert gw.status.pid not in (None, pid)


async def test_a_failed_lease_init_is_retried_and_reported_once(
        lab: Lab, gateways: Callable[..., Gateway]) -> None:
    guest = lab.segment(0)
    spec = lab.spec(0, name="zkdown")
    known = Lease("52:54:00:00:08:01", str(spec.ipv4.net[150]), "k", int(time.time()) + 600)
    book = LeaseBook((known,))
    calls = 0

    async def flaky() -> list[Lease]:  # ZooKeeper unreachable at the first attempt
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("ZooKeeper is away")
        return await book.provide()

    reasons: list[str] = []
    gw = Gateway(spec, on_lease=book.on_lease, leases=flaky, lease_script=lab.lease_script,
                 netns=lab.host, backoff=Backoff(initial=0.2, cap=1.0),
                 on_failure=reasons.append)
    try:
        status = await gw.start()
        assert status.state is GatewayState.BACKOFF
        assert status.reason is not None and "lease-init" in status.reason
        answer = await lease(guest, known.mac, timeout=KNOWN)  # answered once it is back
        assert answer is not None and answer.ip == known.ip
        assert gw.status.state is GatewayState.RUNNING and gw.status.restarts == 1
        assert reasons == [status.reason]
    finally:
        await gw.stop()


async def run_script(*args: str, socket_path: str, env: dict[str, str] | None = None,
                     ) -> tuple[int, str, str, float]:
    began = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "reconciler.network.leasescript", *args,
        env={**os.environ, "HERD_LEASE_SOCKET": socket_path, **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode(), time.monotonic() - began


async def test_the_lease_script_without_its_daemon(lab: Lab) -> None:
    away = os.path.join(lab.base, "nobody-listens.sock")
    rc, _, err, took = await run_script("add", "52:54:00:00:09:01", "10.1.2.3", "h",
                                        socket_path=away)
    assert rc == 0 and "not delivered" in err and took < 1.5
    rc, out, err, _ = await run_script("init", socket_path=away)
    assert rc == 1 and out == "" and "no lease database" in err
    rc, _, _, _ = await run_script("tftp", "1", "2", socket_path=away)
    assert rc == 0


async def test_the_lease_script_and_its_channel(lab: Lab) -> None:
    from reconciler.network.leasechannel import LeaseChannel

    stored = Lease("52:54:00:00:0a:01", "10.1.2.3", "one", int(time.time()) + 60, "01:aa")
    book = LeaseBook((stored,))
    failing = False

    async def on_lease(event: LeaseEvent) -> None:
        if failing:
            raise RuntimeError("ZooKeeper said no")
        await book.on_lease(event)

    path = os.path.join(lab.base, "lease.sock")
    channel = LeaseChannel(path, network="n1", on_lease=on_lease, leases=book.provide)
    await channel.start()
    try:
        rc, out, _, _ = await run_script("init", socket_path=path)
        assert rc == 0 and out == stored.line() + "\n"
        env = {"DNSMASQ_LEASE_EXPIRES": "2000000000", "DNSMASQ_CLIENT_ID": "01:52:54",
               "DNSMASQ_INTERFACE": "br0"}
        rc, _, _, took = await run_script("old", "52:54:00:00:0a:02", "10.1.2.4", "two",
                                          socket_path=path, env=env)
        assert rc == 0
        assert book.leases["52:54:00:00:0a:02"] == Lease("52:54:00:00:0a:02", "10.1.2.4",
                                                         "two", 2000000000, "01:52:54")
        rc, _, _, _ = await run_script("del", "52:54:00:00:0a:01", "10.1.2.3",
                                       socket_path=path)
        assert rc == 0 and "52:54:00:00:0a:01" not in book.leases
        failing = True
        rc, _, err, _ = await run_script("add", "52:54:00:00:0a:03", "10.1.2.5",
                                         socket_path=path)
        assert rc == 0 and "ZooKeeper said no" in err
        print(f"\nlease script round trip: {took * 1000:.0f} ms")
    finally:
        await channel.stop()
    assert not os.listdir(os.path.dirname(path)).count("lease.sock")


def listening(lab: Lab, proto: str) -> set[str]:
    """Local addresses with port 53 of `proto` (tcp/udp) sockets in the host namespace."""
    out = subprocess.run(["ip", "netns", "exec", lab.host, "ss", "-Hln", f"--{proto}"],
                         check=True, capture_output=True, text=True).stdout
    return {line.split()[3].rsplit(":", 1)[0] for line in out.splitlines()
            if line.split()[3].endswith(":53")}


async def test_ipv6_networks_listen_on_their_gateways_only(
        lab: Lab, gateways: Callable[..., Gateway]) -> None:
    for i in (0, 1):
        lab.segment(i)
    specs, v6s = [], []
    for i, name in enumerate(("six", "seven")):
        base = lab.spec(i, name=name)
        prefix = f"fd{lab.tag[:2]}:{i}::"
        v6 = AddressPlan(f"{prefix}/64", f"{prefix}1",
                         DhcpPool(f"{prefix}100", f"{prefix}1ff", 600))
        specs.append(dataclasses.replace(base, ipv6=v6))
        v6s.append(str(ipaddress.ip_address(v6.gateway)))
    gws = [gateways(spec, LeaseBook()) for spec in specs]
    for gw in gws:  # both take DHCPv6's port 547 as well as 67
        assert (await gw.start()).state is GatewayState.RUNNING
    addresses = {s.ipv4.gateway for s in specs} | {f"[{v6}]" for v6 in v6s}
    assert listening(lab, "udp") == addresses and listening(lab, "tcp") == addresses
    await gws[0].stop()
    assert listening(lab, "udp") == {specs[1].ipv4.gateway, f"[{v6s[1]}]"}


@pytest.mark.parametrize("verb", ["start", "stop"])
async def test_a_dnsmasq_left_by_an_earlier_daemon_is_ended(
        lab: Lab, gateways: Callable[..., Gateway], verb: str) -> None:
    from reconciler.network.leasechannel import LeaseChannel

    guest = lab.segment(0)
    net = lab.network(0)
    resv = Reservation("52:54:00:00:0b:01", str(net[70]), "heir")
    spec = lab.spec(0, name="orphan", reservations=(resv,))
    book = LeaseBook()
    gw = gateways(spec, book)
    # what a herd-node killed with -9 leaves: the address and its dnsmasq (with its pid file)
    os.makedirs(spec.run_dir)
    sh("ip", "-n", lab.host, "addr", "add", f"{spec.ipv4.gateway}/24", "dev", "br0")
    earlier = LeaseChannel(spec.socket_path, network=spec.name, on_lease=book.on_lease,
                           leases=book.provide)
    await earlier.start()
    orphan = await asyncio.create_subprocess_exec(
        *gw.argv(), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, "HERD_LEASE_SOCKET": spec.socket_path})
    try:
        assert orphan.stderr is not None
        async with asyncio.timeout(10):
            while b"started, version" not in await orphan.stderr.readline():
                pass
        await earlier.stop()  # the earlier daemon is gone
        if verb == "start":  # this node is still primary: a new dnsmasq takes over
            assert (await gw.start()).state is GatewayState.RUNNING
            assert gw.status.pid != orphan.pid
        else:  # no longer primary: stop() on a gateway this daemon never started
            await gw.stop()
            assert spec.ipv4.gateway not in lab.host_addresses("br0")
        assert await asyncio.wait_for(orphan.wait(), 5) is not None
        answer = await lease(guest, resv.mac, timeout=KNOWN)
        assert (answer is not None and answer.ip == resv.ip) if verb == "start" else not answer
    finally:
        if orphan.returncode is None:
            orphan.kill()
        await orphan.wait()
        await earlier.stop()


async def test_a_lost_add_event_is_repaired_by_the_guest_after_failover(
        lab: Lab, gateways: Callable[..., Gateway]) -> None:
    guest = lab.segment(0)
    spec = lab.spec(0, name="lost")

    async def zookeeper_away(event: LeaseEvent) -> None:
        raise ConnectionError("ZooKeeper is away")  # the script logs it; dnsmasq goes on

    async def nothing() -> list[Lease]:
        return []

    old = Gateway(spec, on_lease=zookeeper_away, leases=nothing, lease_script=lab.lease_script,
                  netns=lab.host)
    try:
        await old.start()
        first = await lease(guest, "52:54:00:00:0c:01", hostname="lost1")
        assert first is not None
    finally:
        await old.stop()

    book = LeaseBook()
    new = gateways(spec, book)  # the new primary knows nothing of that lease
    await new.start()
    again = await lease(guest, "52:54:00:00:0c:01", hostname="lost1", reboot=first.ip,
                        timeout=KNOWN)  # the guest asks for its address again (reboot/renew)
    assert again is not None and again.ip == first.ip
    leases = await book.wait_for(lambda ls: "52:54:00:00:0c:01" in ls)
    assert leases["52:54:00:00:0c:01"].ip == first.ip  # and its record is back
