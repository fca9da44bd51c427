"""The pure side of a managed network's gateway (reconciler/network/dnsmasq.py): dnsmasq's
command line, the `ip addr` commands, the reservation files, the leasefile lines, and the
configurations refused with the field named."""

from __future__ import annotations

import pytest

from reconciler.network.dnsmasq import (
    AddressPlan,
    DhcpPool,
    GatewayConfigError,
    GatewaySpec,
    Lease,
    Reservation,
    addr_argv,
    dnsmasq_argv,
    leasefile_text,
    parse_lease_line,
    ra_argv,
    reservation_files,
)
from reconciler.network.leasechannel import LeaseAction, event_from_message

SCRIPT = "/usr/bin/herd-dnsmasq-lease"
V4 = AddressPlan("10.100.0.0/24", "10.100.0.1", DhcpPool("10.100.0.100", "10.100.0.200", 3600))
V6 = AddressPlan("fd00:100::/64", "fd00:100::1", DhcpPool("fd00:100::100", "fd00:100::1ff", 3600))


def spec(**changes: object) -> GatewaySpec:
    fields: dict[str, object] = {
        "name": "web", "bridge": "brweb", "domain": "web.herd.internal", "ipv4": V4,
        "run_dir": "/run/herd/networks/web", "nameservers": ("1.1.1.1", "2606:4700::1111"),
        "reservations": (Reservation("52:54:00:AA:00:01", "10.100.0.10", "db1"),)}
    fields.update(changes)
    return GatewaySpec(**fields)  # type: ignore[arg-type]


def test_dnsmasq_binds_the_gateway_address_only() -> None:
    argv = dnsmasq_argv(spec(), lease_script=SCRIPT)
    assert argv[0] == "/usr/sbin/dnsmasq"
    assert "--listen-address=10.100.0.1" in argv and "--bind-interfaces" in argv
    assert not [a for a in argv if a.startswith(("--interface", "-i", "--bind-dynamic"))]
    assert "--except-interface=lo" not in argv  # no --interface: loopback is never added
    assert {"--conf-file=/dev/null", "--keep-in-foreground", "--no-resolv", "--no-hosts",
            "--pid-file=/run/herd/networks/web/dnsmasq.pid"} <= set(argv)


def test_dnsmasq_serves_the_domain_the_range_and_the_options() -> None:
    argv = dnsmasq_argv(spec(), lease_script=SCRIPT)
    servers = [a for a in argv if a.startswith("--server=")]
    assert servers == ["--server=1.1.1.1", "--server=2606:4700::1111"]
    assert {"--domain=web.herd.internal", "--local=/web.herd.internal/", "--expand-hosts",
            "--dhcp-authoritative", "--leasefile-ro", f"--dhcp-script={SCRIPT}",
            "--dhcp-range=10.100.0.100,10.100.0.200,255.255.255.0,3600",
            "--dhcp-option=option:router,10.100.0.1",
            "--dhcp-option=option:dns-server,10.100.0.1",
            "--dhcp-hostsdir=/run/herd/networks/web/dhcp-hosts",
            "--hostsdir=/run/herd/networks/web/dns-hosts"} <= set(argv)
    assert "--enable-ra" not in argv


def test_ipv6_adds_its_address_and_range() -> None:
    argv = dnsmasq_argv(spec(ipv6=V6), lease_script=SCRIPT)
    assert [a for a in argv if a.startswith("--listen-address=")] == [
        "--listen-address=10.100.0.1", "--listen-address=fd00:100::1"]
    assert {"--dhcp-range=fd00:100::100,fd00:100::1ff,64,3600",
            "--dhcp-option=option6:dns-server,[fd00:100::1]"} <= set(argv)
    # dnsmasq 2.90 sends router advertisements only on an --interface (radv.c checks the
    # interface by name), which this DNS-serving instance must never be given: the RAs come
    # from a second instance (ra_argv, below; docs/networks-gateway.md)
    assert "--enable-ra" not in argv


def test_router_advertisements_come_from_a_dns_less_instance_on_the_bridge() -> None:
    argv = ra_argv(spec(ipv6=V6))
    assert argv[0] == "/usr/sbin/dnsmasq"
    # no DNS socket (port 0), so it may name the bridge: the only way to have RAs sent
    assert {"--port=0", "--interface=brweb", "--bind-interfaces", "--enable-ra",
            "--conf-file=/dev/null", "--keep-in-foreground", "--no-resolv", "--no-hosts",
            "--leasefile-ro", "--pid-file=/run/herd/networks/web/dnsmasq-ra.pid"} <= set(argv)
    # RA only, for SLAAC (no DHCPv6 here: the main instance serves the pool), lifetimes from
    # the lease time; the gateway as resolver (RDNSS) and the domain to search (DNSSL)
    assert [a for a in argv if a.startswith("--dhcp-range=")] == [
        "--dhcp-range=fd00:100::,ra-only,64,3600"]
    assert {"--dhcp-option=option6:dns-server,[fd00:100::1]",
            "--dhcp-option=option6:domain-search,web.herd.internal"} <= set(argv)
    # nothing of DHCPv4, DNS or leases
    assert not [a for a in argv if a.startswith(
        ("--listen-address", "--server", "--domain=", "--local", "--dhcp-script",
         "--dhcp-host", "--hostsdir", "--dhcp-authoritative", "--dhcp-option=option:"))]
    assert not [a for a in argv if "10.100.0." in a]
    slaac_only = ra_argv(spec(ipv6=AddressPlan("fd00:100::/64", "fd00:100::1")))
    assert "--dhcp-range=fd00:100::,ra-only,64,3600" in slaac_only  # IPv4's lease time
    with pytest.raises(GatewayConfigError, match=r"^ipv6:"):
        ra_argv(spec())


def test_only_the_router_advertisement_instance_names_an_interface() -> None:
    main = dnsmasq_argv(spec(ipv6=V6), lease_script=SCRIPT)
    ra = ra_argv(spec(ipv6=V6))
    assert not [a for a in main if a.startswith(("--interface", "-i", "--port"))]
    assert [a for a in ra if a.startswith(("--interface", "-i"))] == ["--interface=brweb"]
    assert "--enable-ra" not in main and "--enable-ra" in ra
    assert spec(ipv6=V6).pid_file != spec(ipv6=V6).ra_pid_file


def test_ip_addr_commands() -> None:
    s = spec(ipv6=V6)
    assert addr_argv(s, s.ipv4, verb="replace") == [
        "ip", "addr", "replace", "10.100.0.1/24", "dev", "brweb"]
    assert addr_argv(s, V6, verb="replace", netns="hv1") == [
        "ip", "-n", "hv1", "addr", "replace", "fd00:100::1/64", "dev", "brweb", "nodad"]
    assert addr_argv(s, V6, verb="del") == ["ip", "addr", "del", "fd00:100::1/64", "dev", "brweb"]
    with pytest.raises(ValueError):
        addr_argv(s, V6, verb="flush")


def test_reservation_files_one_per_mac_normalised() -> None:
    s = spec(reservations=(Reservation("52-54-00-AA-00-02", "10.100.0.11", "Cache"),
                           Reservation("52:54:00:aa:00:01", "10.100.0.10", "db1")))
    assert reservation_files(s) == {
        "dhcp-hosts/52-54-00-aa-00-01": "52:54:00:aa:00:01,10.100.0.10,db1\n",
        "dns-hosts/52-54-00-aa-00-01": "10.100.0.10 db1\n",
        "dhcp-hosts/52-54-00-aa-00-02": "52:54:00:aa:00:02,10.100.0.11,cache\n",
        "dns-hosts/52-54-00-aa-00-02": "10.100.0.11 cache\n"}
    assert reservation_files(spec(reservations=())) == {}


def test_lease_line_round_trip() -> None:
    lease = Lease("52:54:00:AA:00:01", "10.100.0.150", "vm1", 1700000000, "01:52:54:00:aa:00:01")
    assert lease.line() == "1700000000 52:54:00:aa:00:01 10.100.0.150 vm1 01:52:54:00:aa:00:01"
    assert parse_lease_line(lease.line()) == lease
    bare = Lease("52:54:00:aa:00:02", "10.100.0.151", None, 0)
    assert bare.line() == "0 52:54:00:aa:00:02 10.100.0.151 * *"
    assert parse_lease_line(bare.line()) == bare


def test_leasefile_leaves_expired_leases_out() -> None:
    live = Lease("52:54:00:aa:00:01", "10.100.0.150", "a", 2000)
    dead = Lease("52:54:00:aa:00:02", "10.100.0.151", "b", 999)
    forever = Lease("52:54:00:aa:00:03", "10.100.0.152", None, 0)
    assert leasefile_text([live, dead, forever], now=1000) == f"{live.line()}\n{forever.line()}\n"


@pytest.mark.parametrize("line", [
    "", "1700000000 52:54:00:aa:00:01 10.100.0.150 vm1",
    "soon 52:54:00:aa:00:01 10.100.0.150 vm1 *", "1 52:54:00:aa:00 10.100.0.150 vm1 *",
    "1 52:54:00:aa:00:01 10.100.0.999 vm1 *", "1 52:54:00:aa:00:01 fd00::5 vm1 *",
    "1 52:54:00:aa:00:01 10.100.0.150 bad_name *", "1 52:54:00:aa:00:01 10.100.0.150 vm1 zz"])
def test_bad_lease_lines_are_refused(line: str) -> None:
    with pytest.raises(GatewayConfigError):
        parse_lease_line(line)


def test_a_script_message_becomes_a_lease_event() -> None:
    msg = {"action": "old", "mac": "52:54:00:AA:00:01", "ip": "10.100.0.150", "hostname": "vm1",
           "env": {"DNSMASQ_TIME_REMAINING": "600", "DNSMASQ_CLIENT_ID": "01:aa",
                   "DNSMASQ_INTERFACE": "brweb"}}
    event = event_from_message("web", msg, now=1000.5)
    assert event is not None and event.action is LeaseAction.OLD
    assert event.lease == Lease("52:54:00:aa:00:01", "10.100.0.150", "vm1", 1600, "01:aa")
    assert event.interface == "brweb"
    v6 = {**msg, "ip": "fd00:100::150"}
    assert event_from_message("web", v6, now=0) is None  # DHCPv6 leases are not kept
    with pytest.raises(ValueError):
        event_from_message("web", {**msg, "action": "tftp"}, now=0)


BAD = [
    ({"name": "Web_1"}, "name"),
    ({"bridge": "a-very-long-bridge-name"}, "bridge"),
    ({"domain": "bad..domain"}, "domain"),
    ({"ipv4": AddressPlan("10.100.0.1/24", "10.100.0.1", V4.dhcp)}, "ipv4.network"),
    ({"ipv4": AddressPlan("fd00::/64", "fd00::1", V4.dhcp)}, "ipv4.network"),
    ({"ipv4": AddressPlan("10.100.0.0/24", "10.100.1.1", V4.dhcp)}, "ipv4.gateway"),
    ({"ipv4": AddressPlan("10.100.0.0/24", "10.100.0.255", V4.dhcp)}, "ipv4.gateway"),
    ({"ipv4": AddressPlan("10.100.0.0/24", "10.100.0.1")}, "ipv4.dhcp"),
    ({"ipv4": AddressPlan("10.100.0.0/24", "10.100.0.1",
                          DhcpPool("10.100.0.200", "10.100.0.100", 3600))}, "ipv4.dhcp"),
    ({"ipv4": AddressPlan("10.100.0.0/24", "10.100.0.150",
                          DhcpPool("10.100.0.100", "10.100.0.200", 3600))}, "ipv4.dhcp"),
    ({"ipv4": AddressPlan("10.100.0.0/24", "10.100.0.1",
                          DhcpPool("10.100.0.100", "10.100.1.200", 3600))}, "ipv4.dhcp.end"),
    ({"ipv4": AddressPlan("10.100.0.0/24", "10.100.0.1",
                          DhcpPool("10.100.0.100", "10.100.0.200", 60))}, "ipv4.dhcp.leaseTime"),
    ({"ipv6": AddressPlan("10.0.0.0/24", "10.0.0.1")}, "ipv6.network"),
    ({"ipv6": AddressPlan("fd00::/48", "fd00::1", DhcpPool("fd00::100", "fd00::1ff", 600))},
     "ipv6.network"),
    ({"ipv6": AddressPlan("fd00::/48", "fd00::1")}, "ipv6.network"),  # RA (SLAAC): a /64
    ({"ipv6": AddressPlan("fd00::/96", "fd00::1")}, "ipv6.network"),
    ({"nameservers": ("dns.example",)}, "nameservers[0]"),
    ({"run_dir": "run/web"}, "run_dir"),
    ({"run_dir": "/run/my networks/web"}, "run_dir"),
    ({"run_dir": "/run/" + "x" * 100}, "run_dir"),
    ({"reservations": (Reservation("52:54:00:aa:00:01", "10.100.1.10", "a"),)},
     "reservations[0].ip"),
    ({"reservations": (Reservation("52:54:00:aa:00:01", "10.100.0.1", "a"),)},
     "reservations[0].ip"),
    ({"reservations": (Reservation("52:54:00:aa:00", "10.100.0.10", "a"),)},
     "reservations[0].mac"),
    ({"reservations": (Reservation("52:54:00:aa:00:01", "10.100.0.10", "a.b"),)},
     "reservations[0].hostname"),
    ({"reservations": (Reservation("52:54:00:aa:00:01", "10.100.0.10", "a"),
                       Reservation("52:54:00:AA:00:01", "10.100.0.11", "b"))},
     "reservations[1].mac"),
    ({"reservations": (Reservation("52:54:00:aa:00:01", "10.100.0.10", "a"),
                       Reservation("52:54:00:aa:00:02", "10.100.0.10", "b"))},
     "reservations[1].ip"),
]


@pytest.mark.parametrize(("changes", "field"), BAD, ids=[f for _, f in BAD])
def test_bad_configurations_name_their_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(GatewayConfigError) as e:
        spec(**changes)
    assert str(e.value).startswith(f"{field}:")


def test_an_unsafe_script_path_is_refused() -> None:
    with pytest.raises(GatewayConfigError, match="lease_script"):
        dnsmasq_argv(spec(), lease_script="/tmp/x; rm -rf /")
