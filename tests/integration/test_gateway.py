"""A managed network's gateway with the real dnsmasq, in network namespaces.

Each test builds its own world with tests/support/netlab.py: a "host" namespace with a
bridge per network and a "guest" namespace per bridge; Herd's `Gateway` runs dnsmasq in the
host namespace, guests ask for leases and resolve names as a VM would; a `LeaseBook` plays
ZooKeeper's leases (failover). A network with `ipv6` also gets its router advertisements
from a second, DNS-less dnsmasq: a guest takes them as a VM's kernel would.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import signal
import time
from collections.abc import Callable

import pytest

from reconciler.network.dnsmasq import Lease, Reservation
from reconciler.network.gateway import Backoff, Gateway, GatewayState
from reconciler.network.leasechannel import LeaseAction, LeaseChannel
from tests.support.dnsquery import query_a
from tests.support.netlab import (
    KNOWN,
    Lab,
    LeaseBook,
    configure,
    gateways,
    lab,
    lease,
    left_running,
    link_local,
    listening,
    other_dns,
    plain_dns,
    resolve,
    router_of,
    run_script,
    sockets_of,
)

__all__ = ["gateways", "lab", "other_dns"]  # the fixtures, used by name

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.access("/usr/sbin/dnsmasq", os.X_OK),
    reason="needs root and /usr/sbin/dnsmasq")


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
    assert await resolve(guest, "vm1.web.herd.internal", server=str(net[1])) == (answer.ip,)
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
        assert await resolve(guest, f"{name}.db.herd.internal", server=gw_ip) == (ip,), name

    # a new reservation works without a restart (inotify); a removed one is forgotten (SIGHUP)
    added = Reservation("52:54:00:00:01:03", str(net[52]), "cache")
    pid = gw.status.pid
    await gw.update(spec.with_reservations((db, added)))
    assert gw.status.pid == pid
    assert await resolve(guest, "cache.db.herd.internal", server=gw_ip) == (added.ip,)
    other = await lease(guest, added.mac, timeout=KNOWN)
    assert other is not None and other.ip == added.ip
    assert await resolve(guest, "printer.db.herd.internal", server=gw_ip) == ()
    unreserved = await lease(guest, printer.mac)  # from the pool now
    assert unreserved is not None and unreserved.ip != printer.ip

    moved = Reservation(added.mac, str(net[53]), "cache")  # a changed reservation (SIGHUP)
    await gw.update(spec.with_reservations((db, moved)))
    again = await lease(guest, moved.mac, timeout=KNOWN)
    assert again is not None and again.ip == moved.ip
    assert await resolve(guest, "cache.db.herd.internal", server=gw_ip) == (moved.ip,)
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
    assert await resolve(guest, "app1.app.herd.internal", server=gw_ip) == (first.ip,)  # init


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
    assert await resolve(guest, "known.init.herd.internal", server=str(net[1])) == (known.ip,)
    assert await resolve(guest, "stale.init.herd.internal", server=str(net[1])) == ()


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
    assert await resolve(guest, "quiet.quiet.herd.internal", server=str(net[1]),
                         timeout=1.0) is None


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
        assert await resolve(guest, f"{name}.{spec.domain}",
                             server=spec.ipv4.gateway) == (answer.ip,)
    assert await resolve(guests[0], f"b1.{specs[0].domain}", server=specs[0].ipv4.gateway) == ()
    assert [list(b.leases) for b in books] == [["52:54:00:00:05:01"], ["52:54:00:00:05:02"]]


async def test_another_dns_server_on_the_host_keeps_answering(
        lab: Lab, gateways: Callable[..., Gateway], other_dns: str) -> None:
    async def other_answers() -> bool:
        return await resolve(lab.host, "other.example", server=other_dns) == (other_dns,)

    guest = lab.segment(0)
    assert await other_answers()
    spec = lab.spec(0, name="dual")
    gw = gateways(spec, LeaseBook())
    assert (await gw.start()).state is GatewayState.RUNNING
    assert await other_answers()
    # each answers for its own names only
    assert await resolve(lab.host, "other.example", server=spec.ipv4.gateway) == ()
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
        gateway = spec.ipv4.gateway
        assert await resolve(lab.host, "other.example", server=gateway) == (gateway,)
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
    book = LeaseBook((known,), failing_reads=1)  # ZooKeeper away at the first attempt
    reasons: list[str] = []
    gw = gateways(spec, book, backoff=Backoff(initial=0.2, cap=1.0),
                  on_failure=reasons.append)
    status = await gw.start()
    assert status.state is GatewayState.BACKOFF
    assert status.reason is not None and "lease-init" in status.reason
    answer = await lease(guest, known.mac, timeout=KNOWN)  # answered once it is back
    assert answer is not None and answer.ip == known.ip
    assert gw.status.state is GatewayState.RUNNING and gw.status.restarts == 1
    assert reasons == [status.reason]


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
    stored = Lease("52:54:00:00:0a:01", "10.1.2.3", "one", int(time.time()) + 60, "01:aa")
    book = LeaseBook((stored,))
    path = os.path.join(lab.base, "lease.sock")
    channel = LeaseChannel(path, network="n1", on_lease=book.on_lease, leases=book.provide)
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
        book.failing_writes = True
        rc, _, err, _ = await run_script("add", "52:54:00:00:0a:03", "10.1.2.5",
                                         socket_path=path)
        assert rc == 0 and "ZooKeeper is away" in err
        print(f"\nlease script round trip: {took * 1000:.0f} ms")
    finally:
        await channel.stop()
    assert not os.listdir(os.path.dirname(path)).count("lease.sock")


async def test_ipv6_networks_listen_on_their_gateways_only(
        lab: Lab, gateways: Callable[..., Gateway]) -> None:
    specs = [lab.spec(i, name=name, ipv6=True) for i, name in enumerate(("six", "seven"))]
    for i in (0, 1):
        lab.segment(i)
    gws = [gateways(spec, LeaseBook()) for spec in specs]
    for gw in gws:  # both take DHCPv6's port 547 as well as 67
        assert (await gw.start()).state is GatewayState.RUNNING
    mine = [{s.ipv4.gateway, f"[{s.ipv6.gateway}]"} for s in specs if s.ipv6]
    assert listening(lab, "udp") == listening(lab, "tcp") == mine[0] | mine[1]
    await gws[0].stop()
    assert listening(lab, "udp") == mine[1]


async def test_ipv6_guests_get_their_router_and_prefix_from_a_dns_less_dnsmasq(
        lab: Lab, gateways: Callable[..., Gateway], other_dns: str) -> None:
    guest = lab.segment(0, slaac=True)
    resv = Reservation("52:54:00:00:0d:01", str(lab.network(0)[80]), "six")
    spec = lab.spec(0, name="ra", ipv6=True, reservations=(resv,))
    assert spec.ipv6 is not None
    gw = gateways(spec, LeaseBook())
    status = await gw.start()
    assert status.state is GatewayState.RUNNING and status.ra_pid is not None
    began = time.monotonic()
    route, address = await router_of(guest)
    print(f"\nrouter and address after {time.monotonic() - began:.2f} s: {route} {address}")
    assert route["gateway"] == link_local(lab.host, "br0") and route["dev"] == "eth0"
    assert route["protocol"] == "ra" and ipaddress.ip_address(address) in spec.ipv6.net
    # it holds a raw ICMPv6 socket and nothing else: no DNS, no DHCP(v6)
    assert sockets_of(lab.host, status.ra_pid) == ["raw *:58"]
    mine = {spec.ipv4.gateway, f"[{spec.ipv6.gateway}]"}  # DNS: the main instance only
    assert listening(lab, "udp") == listening(lab, "tcp") == mine | {other_dns}
    assert await resolve(lab.host, "other.example", server=other_dns) == (other_dns,)
    answer = await lease(guest, resv.mac, timeout=KNOWN)  # DHCPv4: the main instance, as ever
    assert answer is not None and answer.ip == resv.ip

    await gw.stop()
    assert gw.status.state is GatewayState.STOPPED and gw.status.ra_pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(status.ra_pid, 0)  # ended (and reaped)
    assert {"dnsmasq.pid", "dnsmasq-ra.pid"}.isdisjoint(os.listdir(spec.run_dir))
    assert await resolve(lab.host, "other.example", server=other_dns) == (other_dns,)


@pytest.mark.parametrize("verb", ["start", "stop"])
async def test_a_dnsmasq_left_by_an_earlier_daemon_is_ended(
        lab: Lab, gateways: Callable[..., Gateway], verb: str) -> None:
    guest = lab.segment(0)
    net = lab.network(0)
    resv = Reservation("52:54:00:00:0b:01", str(net[70]), "heir")
    spec = lab.spec(0, name="orphan", reservations=(resv,), ipv6=True)
    book = LeaseBook()
    gw = gateways(spec, book)
    async with left_running(lab, gw, book) as orphans:  # main and router advertisements
        if verb == "start":  # this node is still primary: new ones take over
            assert (await gw.start()).state is GatewayState.RUNNING
            assert {gw.status.pid, gw.status.ra_pid}.isdisjoint(o.pid for o in orphans)
        else:  # no longer primary: stop() on a gateway this daemon never started
            await gw.stop()
            assert spec.ipv4.gateway not in lab.host_addresses("br0")
        for orphan in orphans:
            assert await asyncio.wait_for(orphan.wait(), 5) is not None
        answer = await lease(guest, resv.mac, timeout=KNOWN)
        assert (answer is not None and answer.ip == resv.ip) if verb == "start" else not answer


async def test_a_lost_add_event_is_repaired_by_the_guest_after_failover(
        lab: Lab, gateways: Callable[..., Gateway]) -> None:
    guest = lab.segment(0)
    spec = lab.spec(0, name="lost")
    old = gateways(spec, LeaseBook(failing_writes=True))  # the script logs it; dnsmasq goes on
    await old.start()
    first = await lease(guest, "52:54:00:00:0c:01", hostname="lost1")
    assert first is not None
    await old.stop()

    book = LeaseBook()
    new = gateways(spec, book)  # the new primary knows nothing of that lease
    await new.start()
    again = await lease(guest, "52:54:00:00:0c:01", hostname="lost1", reboot=first.ip,
                        timeout=KNOWN)  # the guest asks for its address again (reboot/renew)
    assert again is not None and again.ip == first.ip
    leases = await book.wait_for(lambda ls: "52:54:00:00:0c:01" in ls)
    assert leases["52:54:00:00:0c:01"].ip == first.ip  # and its record is back
