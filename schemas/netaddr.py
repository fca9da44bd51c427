"""Address fields and checks of client networks: IP networks and addresses, MAC addresses,
DNS names, Linux interface names. Loaded values stay plain strings in their canonical
form (`10.0.0.0/24`, `52:54:00:ab:cd:ef`, `web.herd.internal`), so that stored documents
compare and serialize unchanged.

Pure (the standard library's `ipaddress`). Used by `schemas.network` and, for the MAC
rules, by `schemas.domainxml` users in `server` (the MACs fixed at define).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from marshmallow import ValidationError, fields

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAC_RE = r"^[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}$"  # as given in a path or a document
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_IFNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$")


def normal_mac(value: str) -> str:
    """`value` as a lower-case, colon-separated unicast MAC, or a ValidationError."""
    mac = value.strip().lower().replace("-", ":")
    if _MAC.fullmatch(mac) is None:
        raise ValidationError(f"Not a MAC address: {value[:40]!r} (example: 52:54:00:12:34:56).")
    if int(mac[:2], 16) & 1:
        raise ValidationError(f"{mac} is a multicast MAC address: a NIC needs a unicast one.")
    if mac == "00:00:00:00:00:00":
        raise ValidationError("00:00:00:00:00:00 is not a usable MAC address.")
    return mac


def validate_dns_name(value: str) -> None:
    """A DNS name of lower-case labels (a zone or a host name), at most 253 characters."""
    labels = value.split(".")
    if len(value) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValidationError(
            f"Not a DNS name: {value[:80]!r} (lower-case labels of letters, digits and "
            "'-', separated by dots, such as web.herd.internal).")


def validate_hostname(value: str) -> None:
    """One DNS label: what DHCP hands out and DNS answers under the network's domain."""
    if _LABEL.fullmatch(value) is None:
        raise ValidationError(f"Not a host name: {value[:80]!r} (one DNS label: lower-case "
                              "letters, digits and '-', up to 63 characters).")


def validate_ifname(value: str) -> None:
    """A Linux network interface name (at most 15 characters)."""
    if _IFNAME.fullmatch(value) is None:
        raise ValidationError(f"Not an interface name: {value[:40]!r} (1-15 letters, digits, "
                              "'_', '.' and '-').")


class _Parsed(fields.String):
    """A string field parsed by `_parse` and stored in its canonical text."""

    def _parse(self, text: str) -> Any:
        raise NotImplementedError

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None,
                     **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        return str(self._parse(text))


class Network(_Parsed):
    """An IP network in CIDR notation, host bits zero (`10.100.0.0/24`)."""

    def __init__(self, *, version: int, **kwargs: Any) -> None:
        self.version = version
        super().__init__(**kwargs)

    def _parse(self, text: str) -> IPNetwork:
        try:
            net = ipaddress.ip_network(text, strict=True)
        except ValueError as e:
            raise ValidationError(f"Not an IPv{self.version} network: {text[:60]!r} ({e}).") \
                from None
        if net.version != self.version:
            raise ValidationError(f"{text[:60]!r} is not an IPv{self.version} network.")
        if net.num_addresses < 4:
            raise ValidationError(f"{net} is too small: a network needs room for a gateway "
                                  "and guests.")
        return net


class Address(_Parsed):
    """A single IP address (`10.100.0.1`)."""

    def __init__(self, *, version: int | None = None, **kwargs: Any) -> None:
        self.version = version
        super().__init__(**kwargs)

    def _parse(self, text: str) -> IPAddress:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            raise ValidationError(f"Not an IP address: {text[:60]!r}.") from None
        if self.version is not None and address.version != self.version:
            raise ValidationError(f"{text[:60]!r} is not an IPv{self.version} address.")
        return address


class Mac(_Parsed):
    """A unicast MAC address, stored lower-case with colons."""

    def _parse(self, text: str) -> str:
        return normal_mac(text)


def host_in(network: str, address: str) -> str | None:
    """Why `address` cannot be a host of `network` (outside it, its network or broadcast
    address), or None when it can."""
    net, ip = ipaddress.ip_network(network), ipaddress.ip_address(address)
    if ip not in net:
        return f"{ip} is outside the network {net}"
    if ip == net.network_address:
        return f"{ip} is the network's own address"
    if isinstance(net, ipaddress.IPv4Network) and ip == net.broadcast_address:
        return f"{ip} is the network's broadcast address"
    return None


def overlap(a: str, b: str) -> bool:
    net_a, net_b = ipaddress.ip_network(a), ipaddress.ip_network(b)
    return net_a.version == net_b.version and net_a.overlaps(net_b)


def address_key(address: str) -> IPAddress:
    return ipaddress.ip_address(address)
