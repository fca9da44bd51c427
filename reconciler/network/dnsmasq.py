"""What a managed network's gateway is, as dnsmasq and `ip` need it: pure values and builders.

`GatewaySpec` is one managed network as the primary serves it (addresses, DHCP pools, domain,
upstream nameservers, reservations, run directory); building one validates it and raises
`GatewayConfigError` naming the field. From a spec this module builds dnsmasq's argv
(`dnsmasq_argv`: DNS and DHCP, bound to the gateway addresses), the argv of the second,
DNS-less dnsmasq that sends a network with `ipv6` its router advertisements (`ra_argv`), the
`ip addr` commands that put the gateway addresses on the bridge (`addr_argv`), and the
contents of the two reservation files (`reservation_files`). `Lease` is
one DHCPv4 lease with dnsmasq's leasefile line format (`Lease.line`, `parse_lease_line`,
`leasefile_text`), which its `--dhcp-script ... init` must print.

Called by `reconciler.network.gateway` (the I/O) and `reconciler.network.leasechannel`. Pure:
no I/O, no project imports. Why each dnsmasq option: docs/networks-gateway.md.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DNSMASQ = "/usr/sbin/dnsmasq"
MIN_LEASE_TIME = 120  # dnsmasq silently raises shorter leases to 2 minutes: refuse them instead
SOCKET_NAME = "lease.sock"
PID_NAME = "dnsmasq.pid"
RA_PID_NAME = "dnsmasq-ra.pid"  # the router advertisement instance (`ra_argv`)
DHCP_HOSTS_DIR = "dhcp-hosts"  # --dhcp-hostsdir: mac,ip,hostname lines
DNS_HOSTS_DIR = "dns-hosts"  # --hostsdir: "ip hostname" lines (reservation names in DNS)
MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes with the terminating NUL

_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", re.IGNORECASE)
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_CLIENT_ID = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2})*$", re.IGNORECASE)
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9._/+-]*$")  # dnsmasq runs "<script> init" through sh


class GatewayConfigError(ValueError):
    """A managed network's gateway cannot be built from this configuration; says which field."""


def _fail(where: str, message: str) -> GatewayConfigError:
    return GatewayConfigError(f"{where}: {message}")


def _ip(where: str, text: str) -> IPAddress:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise _fail(where, f"not an IP address: {text!r}") from None


def check_hostname(where: str, name: str) -> str:
    """A single DNS label (what a DHCP client or a reservation names itself)."""
    if not _LABEL.match(name):
        raise _fail(where, f"not a host name (one DNS label): {name!r}")
    return name.lower()


def check_mac(where: str, mac: str) -> str:
    """A MAC address, lower case with colons."""
    norm = mac.strip().lower().replace("-", ":")
    if not _MAC.match(norm):
        raise _fail(where, f"not a MAC address: {mac!r}")
    return norm


@dataclass(frozen=True)
class DhcpPool:
    """The dynamic range of one address family and the lease time in seconds."""

    start: str
    end: str
    lease_time: int


@dataclass(frozen=True)
class AddressPlan:
    """One address family of a managed network: its network, the gateway and the pool."""

    network: str  # CIDR, e.g. 10.100.0.0/24
    gateway: str
    dhcp: DhcpPool | None = None

    @property
    def net(self) -> IPNetwork:
        return ipaddress.ip_network(self.network)

    @property
    def prefixlen(self) -> int:
        return self.net.prefixlen

    @property
    def version(self) -> int:
        return self.net.version

    def checked(self, where: str, version: int) -> AddressPlan:
        """This plan validated (`GatewayConfigError` naming the field), addresses canonical."""
        try:
            net = ipaddress.ip_network(self.network, strict=True)
        except ValueError as e:
            raise _fail(f"{where}.network", str(e)) from None
        if net.version != version:
            raise _fail(f"{where}.network", f"not an IPv{version} network: {self.network}")
        gateway = _ip(f"{where}.gateway", self.gateway)
        if gateway not in net or gateway in (net.network_address, net.broadcast_address):
            raise _fail(f"{where}.gateway", f"{gateway} is not a host address of {net}")
        if version == 6 and net.prefixlen != 64:  # dnsmasq refuses RA on any other length
            raise _fail(f"{where}.network", f"a /64 (router advertisements, SLAAC): {net}")
        pool = self.dhcp
        if pool is not None:
            _check_pool(f"{where}.dhcp", pool, net=net, gateway=gateway)
            pool = DhcpPool(str(ipaddress.ip_address(pool.start)),
                            str(ipaddress.ip_address(pool.end)), pool.lease_time)
        return AddressPlan(str(net), str(gateway), pool)


def _check_pool(where: str, pool: DhcpPool, *, net: IPNetwork, gateway: IPAddress) -> None:
    start, end = _ip(f"{where}.start", pool.start), _ip(f"{where}.end", pool.end)
    for name, addr in (("start", start), ("end", end)):
        if addr not in net or addr in (net.network_address, net.broadcast_address):
            raise _fail(f"{where}.{name}", f"{addr} is not a host address of {net}")
    if int(start) > int(end):
        raise _fail(where, f"start {start} is after end {end}")
    if int(start) <= int(gateway) <= int(end):
        raise _fail(where, f"the range {start}-{end} contains the gateway {gateway}")
    if not isinstance(pool.lease_time, int) or pool.lease_time < MIN_LEASE_TIME:
        raise _fail(f"{where}.leaseTime", f"at least {MIN_LEASE_TIME} s, not {pool.lease_time!r}")


@dataclass(frozen=True)
class Reservation:
    """A fixed IPv4 address and name for one MAC address."""

    mac: str
    ip: str
    hostname: str

    def dhcp_host_line(self) -> str:
        """The line of a --dhcp-hostsdir file."""
        return f"{self.mac},{self.ip},{self.hostname}"


@dataclass(frozen=True, kw_only=True)
class GatewaySpec:
    """One managed network's gateway on this node. Validated when built."""

    name: str
    bridge: str
    domain: str
    ipv4: AddressPlan
    run_dir: str
    ipv6: AddressPlan | None = None
    nameservers: tuple[str, ...] = ()
    reservations: tuple[Reservation, ...] = field(default=())

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise _fail("name", f"lower-case letters, digits and '-', not {self.name!r}")
        if not re.match(r"^[A-Za-z0-9_.-]{1,15}$", self.bridge):
            raise _fail("bridge", f"not a network device name: {self.bridge!r}")
        labels = self.domain.rstrip(".").split(".")
        if not self.domain or not all(_LABEL.match(label) for label in labels):
            raise _fail("domain", f"not a DNS domain: {self.domain!r}")
        object.__setattr__(self, "ipv4", self.ipv4.checked("ipv4", 4))
        if self.ipv4.dhcp is None:
            raise _fail("ipv4.dhcp", "a managed network's IPv4 needs a DHCP range")
        if self.ipv6 is not None:
            object.__setattr__(self, "ipv6", self.ipv6.checked("ipv6", 6))
        object.__setattr__(self, "nameservers", tuple(
            str(_ip(f"nameservers[{i}]", s)) for i, s in enumerate(self.nameservers)))
        object.__setattr__(self, "domain", self.domain.rstrip(".").lower())
        _check_run_dir(self.run_dir)
        object.__setattr__(self, "reservations", _checked_reservations(self))

    @property
    def socket_path(self) -> str:
        return str(PurePosixPath(self.run_dir) / SOCKET_NAME)

    @property
    def pid_file(self) -> str:
        return str(PurePosixPath(self.run_dir) / PID_NAME)

    @property
    def ra_pid_file(self) -> str:
        return str(PurePosixPath(self.run_dir) / RA_PID_NAME)

    @property
    def gateways(self) -> tuple[AddressPlan, ...]:
        return (self.ipv4,) if self.ipv6 is None else (self.ipv4, self.ipv6)

    def with_reservations(self, reservations: Iterable[Reservation]) -> GatewaySpec:
        """The same gateway with another set of reservations (validated)."""
        return dataclasses.replace(self, reservations=tuple(reservations))


def _check_run_dir(run_dir: str) -> None:
    if not _SAFE_PATH.match(run_dir) or ".." in run_dir.split("/"):
        raise _fail("run_dir", f"an absolute path of [A-Za-z0-9._/+-], not {run_dir!r}")
    if len(str(PurePosixPath(run_dir) / SOCKET_NAME)) > MAX_SOCKET_PATH:
        raise _fail("run_dir", f"too long for a Unix socket path: {run_dir!r}")


def _checked_reservations(spec: GatewaySpec) -> tuple[Reservation, ...]:
    net = spec.ipv4.net
    seen: dict[str, set[str]] = {"mac": set(), "ip": set(), "hostname": set()}
    out = []
    for i, r in enumerate(spec.reservations):
        where = f"reservations[{i}]"
        ip = _ip(f"{where}.ip", r.ip)
        if ip not in net or ip in (net.network_address, net.broadcast_address):
            raise _fail(f"{where}.ip", f"{ip} is not a host address of {net}")
        if str(ip) == spec.ipv4.gateway:
            raise _fail(f"{where}.ip", f"{ip} is the gateway")
        norm = Reservation(check_mac(f"{where}.mac", r.mac), str(ip),
                           check_hostname(f"{where}.hostname", r.hostname))
        for key in ("mac", "ip", "hostname"):
            value = getattr(norm, key)
            if value in seen[key]:
                raise _fail(f"{where}.{key}", f"{value} is reserved twice")
            seen[key].add(value)
        out.append(norm)
    return tuple(sorted(out, key=lambda r: ipaddress.ip_address(r.ip)))


def _dhcp_range(plan: AddressPlan) -> list[str]:
    pool = plan.dhcp
    if pool is None:
        return []
    width = str(plan.net.netmask) if plan.version == 4 else str(plan.prefixlen)
    return [f"--dhcp-range={pool.start},{pool.end},{width},{pool.lease_time}"]


def dnsmasq_argv(spec: GatewaySpec, *, lease_script: str, dnsmasq: str = DNSMASQ) -> list[str]:
    """dnsmasq's command line for this gateway: bound to the gateway addresses only."""
    if not _SAFE_PATH.match(lease_script):
        raise _fail("lease_script", f"an absolute path of [A-Za-z0-9._/+-], not {lease_script!r}")
    run = PurePosixPath(spec.run_dir)
    argv = [dnsmasq, "--conf-file=/dev/null", "--keep-in-foreground", "--log-facility=-",
            f"--pid-file={spec.pid_file}", "--bind-interfaces"]
    argv += [f"--listen-address={plan.gateway}" for plan in spec.gateways]
    argv += ["--no-resolv", "--no-hosts", "--domain-needed"]
    argv += [f"--server={server}" for server in spec.nameservers]
    argv += [f"--domain={spec.domain}", f"--local=/{spec.domain}/", "--expand-hosts",
             f"--hostsdir={run / DNS_HOSTS_DIR}", f"--dhcp-hostsdir={run / DHCP_HOSTS_DIR}",
             "--dhcp-authoritative"]
    argv += _dhcp_range(spec.ipv4)
    argv += [f"--dhcp-option=option:router,{spec.ipv4.gateway}",
             f"--dhcp-option=option:dns-server,{spec.ipv4.gateway}"]
    if spec.ipv6 is not None:  # no --enable-ra here: dnsmasq sends RAs only on an --interface
        argv += [*_dhcp_range(spec.ipv6),
                 f"--dhcp-option=option6:dns-server,[{spec.ipv6.gateway}]"]
    argv += ["--leasefile-ro", f"--dhcp-script={lease_script}"]
    return argv


def ra_argv(spec: GatewaySpec, *, dnsmasq: str = DNSMASQ) -> list[str]:
    """The second dnsmasq of a network with `ipv6`: router advertisements on the bridge and
    nothing else. dnsmasq 2.90 advertises only on an interface named by `--interface`, which
    the main instance must never be given; this one may, as it opens no DNS socket
    (`--port=0`) and no DHCP one (no IPv4 range; `ra-only` is not DHCPv6). It advertises the
    prefix for SLAAC (A flag, M and O clear), the gateway's link-local address as the default
    router, and the gateway as resolver (RDNSS) and the domain as search list (DNSSL). The
    prefix's lifetimes are the network's lease time (dnsmasq raises them to 30 min at least)."""
    v6 = spec.ipv6
    if v6 is None:
        raise _fail("ipv6", "router advertisements need an IPv6 network")
    pool = v6.dhcp or spec.ipv4.dhcp
    lifetime = f",{pool.lease_time}" if pool is not None else ""
    return [dnsmasq, "--conf-file=/dev/null", "--keep-in-foreground", "--log-facility=-",
            f"--pid-file={spec.ra_pid_file}", "--port=0", f"--interface={spec.bridge}",
            "--bind-interfaces", "--no-resolv", "--no-hosts", "--leasefile-ro", "--enable-ra",
            "--quiet-ra", f"--dhcp-range={v6.net.network_address},ra-only,{v6.prefixlen}{lifetime}",
            f"--dhcp-option=option6:dns-server,[{v6.gateway}]",
            f"--dhcp-option=option6:domain-search,{spec.domain}"]


def addr_argv(spec: GatewaySpec, plan: AddressPlan, *, verb: str,
              netns: str | None = None) -> list[str]:
    """`ip addr replace|del` of one gateway address on the bridge (in `netns` if given)."""
    if verb not in ("replace", "del"):
        raise ValueError(f"verb must be replace or del, not {verb!r}")
    ns = ["-n", netns] if netns else []
    argv = ["ip", *ns, "addr", verb, f"{plan.gateway}/{plan.prefixlen}", "dev", spec.bridge]
    if verb == "replace" and plan.version == 6:
        argv.append("nodad")  # a tentative address cannot be bound: dnsmasq would fail
    return argv


def reservation_files(spec: GatewaySpec) -> dict[str, str]:
    """Relative path in the run directory -> contents: one file per reservation (named after
    its MAC) in each of dnsmasq's two host directories. One file each, because dnsmasq's
    inotify only ever adds the entries of a changed file: a new reservation is a new file
    (no restart, no signal); a changed or removed one needs a SIGHUP."""
    files = {}
    for r in spec.reservations:
        stem = r.mac.replace(":", "-")
        files[f"{DHCP_HOSTS_DIR}/{stem}"] = f"{r.dhcp_host_line()}\n"
        files[f"{DNS_HOSTS_DIR}/{stem}"] = f"{r.ip} {r.hostname}\n"
    return files


@dataclass(frozen=True)
class Lease:
    """One DHCPv4 lease. `expiry` in seconds since the epoch, 0 for an infinite lease.
    Validated and normalised when built (a bad field could not be printed as a line)."""

    mac: str
    ip: str
    hostname: str | None
    expiry: int
    client_id: str | None = None

    def __post_init__(self) -> None:
        address = _ip("lease.ip", self.ip)
        if address.version != 4:
            raise _fail("lease.ip", f"not an IPv4 address: {self.ip!r}")
        if isinstance(self.expiry, bool) or not isinstance(self.expiry, int) or self.expiry < 0:
            raise _fail("lease.expiry", f"seconds since the epoch, not {self.expiry!r}")
        if self.client_id is not None and not _CLIENT_ID.match(self.client_id):
            raise _fail("lease.client_id", f"not colon-separated hex: {self.client_id!r}")
        object.__setattr__(self, "mac", check_mac("lease.mac", self.mac))
        object.__setattr__(self, "ip", str(address))
        if self.hostname is not None:
            object.__setattr__(self, "hostname", check_hostname("lease.hostname", self.hostname))

    def line(self) -> str:
        """dnsmasq's leasefile line: "expiry mac ip hostname clientid" ('*' for none)."""
        return (f"{self.expiry} {self.mac} {self.ip} {self.hostname or '*'} "
                f"{self.client_id or '*'}")

    def expired(self, now: float) -> bool:
        return self.expiry != 0 and self.expiry <= now


def parse_lease_line(line: str) -> Lease:
    """The `Lease` of one leasefile line; `GatewayConfigError` for anything else."""
    parts = line.split()
    if len(parts) != 5 or not parts[0].isdigit():
        raise _fail("lease", f"not a leasefile line: {line!r}")
    expiry, mac, ip, hostname, client_id = parts
    return Lease(mac=mac, ip=ip, hostname=None if hostname == "*" else hostname,
                 expiry=int(expiry), client_id=None if client_id == "*" else client_id)


def leasefile_text(leases: Iterable[Lease], *, now: float) -> str:
    """What `<script> init` prints: the unexpired leases, one line each."""
    return "".join(f"{lease.line()}\n" for lease in leases if not lease.expired(now))
