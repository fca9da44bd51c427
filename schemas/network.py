"""The Network object (issue #14): `/herd/networks/<name>`, one JSON document with the
network's spec, its DHCP reservations and its firewall rules.

- `managed`: a VXLAN (`vni`) with a bridge on every node; with `ipv4` (and/or `ipv6`) the
  primary is its gateway and serves DHCP (`dhcp` range, `reservations`) and DNS
  (`domain`, upstream `nameservers`), optionally with `nat`.
- `bridged`: a VLAN (`vlan`, on each node's `bridge_device`) or an existing `bridge`,
  present on every node; no gateway, no DHCP: the physical network serves it.

Everything one document can say about itself is checked here (field by field, then the
rules between fields); what involves other networks (unique VNI, VLAN and bridge, no
overlapping subnets) is `network_conflicts`, which the API runs against the others in
the same version-checked write. Firewall rules are checked for shape here
(`schemas.netrules`) and parsed by `nft --check` in the API. Pure; used by `server`,
`store` and `ctl` (`apply -f` of `kind: Network`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from ipaddress import ip_address
from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from schemas.common import (
    Choice,
    HerdSchema,
    ObjectMetaSchema,
    StrictBool,
    StrictInt,
    Text,
    api_version_field,
    kind_field,
)
from schemas.netaddr import (
    Address,
    Mac,
    Network,
    host_in,
    overlap,
    validate_dns_name,
    validate_hostname,
    validate_ifname,
)
from schemas.netrules import MAX_RULES, AclRuleSchema, unique_rule_names
from vocabulary import Kind, NetworkKind

MAX_VNI = 16_777_215
MAX_RESERVATIONS = 4096
MIN_LEASE, MAX_LEASE = 120, 31_536_000  # seconds: 2 minutes .. a year
MIN_MTU, MAX_MTU = 1280, 9000
ADDRESSED = ("ipv4", "ipv6")
GATEWAY_ONLY = ("domain", "nameservers")  # need a gateway (an ipv4 or ipv6 block)


class DhcpSchema(HerdSchema):
    """The dynamic range of a network: `start`..`end` (inclusive), leases of `leaseTime` s."""

    start = Address(required=True)
    end = Address(required=True)
    leaseTime = StrictInt(load_default=3600, validate=validate.Range(
        min=MIN_LEASE, max=MAX_LEASE, error=f"Must be between {MIN_LEASE} and {MAX_LEASE} "
        "seconds."))


class _IPBlockSchema(HerdSchema):
    """An address block: the network, the gateway's address in it, an optional range."""

    dhcp = fields.Nested(DhcpSchema)

    @validates_schema
    def _inside(self, data: dict[str, Any], **_kw: Any) -> None:
        net, gateway, errors = data["network"], data["gateway"], {}
        if (why := host_in(net, gateway)) is not None:
            errors["gateway"] = [f"{why}."]
        dhcp = data.get("dhcp")
        if dhcp is not None:
            errors.update(_range_errors(net, gateway, dhcp))
        if errors:
            raise ValidationError(errors)


def _range_errors(net: str, gateway: str, dhcp: Mapping[str, Any]) -> dict[str, Any]:
    found: dict[str, list[str]] = {}
    for key in ("start", "end"):
        if (why := host_in(net, dhcp[key])) is not None:
            found[key] = [f"{why}."]
    if not found:
        start, end = int(ip_address(dhcp["start"])), int(ip_address(dhcp["end"]))
        if start > end:
            found["end"] = [f"The range ends ({dhcp['end']}) before it starts "
                            f"({dhcp['start']})."]
        elif start <= int(ip_address(gateway)) <= end:
            found["start"] = [f"The range {dhcp['start']}-{dhcp['end']} holds the gateway "
                              f"{gateway}."]
    return {"dhcp": found} if found else {}


class IPv4Schema(_IPBlockSchema):
    network = Network(version=4, required=True)
    gateway = Address(version=4, required=True)


def _slaac(network: str) -> None:
    if not network.endswith("/64"):
        raise ValidationError("Must be a /64: router advertisements give guests addresses "
                              "by SLAAC, which needs 64 host bits.")


class IPv6Schema(_IPBlockSchema):
    network = Network(version=6, required=True, validate=_slaac)
    gateway = Address(version=6, required=True)


class ReservationSchema(HerdSchema):
    """A DHCP reservation: this MAC always gets this IP (and this host name in DNS)."""

    mac = Mac(required=True)
    ip = Address(required=True)
    hostname = fields.String(load_default=None, validate=validate_hostname)


class NetworkSpecSchema(HerdSchema):
    """`spec` of a Network (see the module doc)."""

    type = Choice(NetworkKind, required=True)
    description = Text(max_len=256, load_default="")
    vni = StrictInt(validate=validate.Range(min=1, max=MAX_VNI,
                                            error=f"Must be between 1 and {MAX_VNI}."))
    vlan = StrictInt(validate=validate.Range(min=1, max=4094,
                                             error="Must be between 1 and 4094."))
    bridge = fields.String(validate=validate_ifname)
    mtu = StrictInt(validate=validate.Range(min=MIN_MTU, max=MAX_MTU,
                                            error=f"Must be between {MIN_MTU} and {MAX_MTU}."))
    domain = fields.String(validate=validate_dns_name)
    ipv4 = fields.Nested(IPv4Schema)
    ipv6 = fields.Nested(IPv6Schema)
    nameservers = fields.List(Address(), load_default=list, validate=validate.Length(
        max=8, error="At most 8 nameservers."))
    nat = StrictBool(load_default=False)
    reservations = fields.List(fields.Nested(ReservationSchema), load_default=list,
                               validate=validate.Length(max=MAX_RESERVATIONS, error=(
                                   f"At most {MAX_RESERVATIONS} reservations.")))
    acl = fields.List(fields.Nested(AclRuleSchema), load_default=list, validate=[
        validate.Length(max=MAX_RULES, error=f"At most {MAX_RULES} rules."), unique_rule_names])

    @validates_schema
    def _kind_rules(self, data: dict[str, Any], **_kw: Any) -> None:
        errors = (_managed_errors(data) if data["type"] == NetworkKind.MANAGED
                  else _bridged_errors(data))
        if errors:
            raise ValidationError(errors)
        _reservation_errors(data)


def _absent(data: Mapping[str, Any], keys: Iterable[str], why: str) -> dict[str, list[str]]:
    return {key: [why] for key in keys if data.get(key) not in (None, [], False)}


def _managed_errors(data: Mapping[str, Any]) -> dict[str, list[str]]:
    errors = _absent(data, ("vlan", "bridge"), "Only a bridged network has this field.")
    if data.get("vni") is None:
        errors["vni"] = ["A managed network needs its VXLAN id (1-16777215)."]
    if not any(data.get(k) for k in ADDRESSED):
        errors.update(_absent(data, (*GATEWAY_ONLY, "nat", "reservations"),
                              "Needs a gateway: give ipv4 or ipv6."))
    if data.get("nat") and not data.get("ipv4"):
        errors["nat"] = ["NAT is for IPv4: give ipv4."]
    return errors


def _bridged_errors(data: Mapping[str, Any]) -> dict[str, list[str]]:
    errors = _absent(data, ("vni", *ADDRESSED, *GATEWAY_ONLY, "nat", "reservations"),
                     "A bridged network has no gateway, DHCP or DNS of Herd's: the physical "
                     "network serves it.")
    if (data.get("vlan") is None) == (data.get("bridge") is None):
        errors["vlan"] = ["A bridged network needs exactly one of vlan (on each node's "
                          "bridge_device) and bridge (an existing bridge)."]
    return errors


def _reservation_errors(data: Mapping[str, Any]) -> None:
    errors: dict[str, dict[str, list[str]]] = {}
    seen: dict[str, dict[str, int]] = {"mac": {}, "ip": {}, "hostname": {}}
    for index, res in enumerate(data.get("reservations") or []):
        problems = {}
        block = data.get("ipv6" if ":" in res["ip"] else "ipv4")
        if block is None:
            problems["ip"] = [f"The network has no IPv{6 if ':' in res['ip'] else 4} block."]
        elif (why := host_in(block["network"], res["ip"])) is not None \
                or res["ip"] == block["gateway"]:
            problems["ip"] = [f"{why or res['ip'] + ' is the gateway'}."]
        for key, known in seen.items():
            value = res.get(key)
            if value is not None and value in known:
                problems.setdefault(key, []).append(
                    f"Also in reservation {known[value]}: each {key} is reserved once.")
            elif value is not None:
                known[value] = index
        if problems:
            errors[str(index)] = problems
    if errors:
        raise ValidationError({"reservations": errors})


class NetworkSchema(HerdSchema):
    """The Network object: apiVersion, kind, metadata and spec."""

    apiVersion = api_version_field()
    kind = kind_field(Kind.NETWORK)
    metadata = fields.Nested(ObjectMetaSchema, required=True)
    spec = fields.Nested(NetworkSpecSchema, required=True)


def network_conflicts(name: str, spec: Mapping[str, Any],
                      others: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str]]:
    """Field errors of `spec` against the other networks' specs (by name): a VNI, VLAN or
    bridge already taken, an address block overlapping another's."""
    errors: dict[str, list[str]] = {}
    for other_name, other in sorted(others.items()):
        if other_name == name:
            continue
        for key in ("vni", "vlan", "bridge"):
            if spec.get(key) is not None and spec.get(key) == other.get(key):
                errors.setdefault(key, []).append(f"Network {other_name} has it already.")
        for key in ADDRESSED:
            mine, theirs = spec.get(key), other.get(key)
            if mine and theirs and overlap(mine["network"], theirs["network"]):
                errors.setdefault(f"{key}.network", []).append(
                    f"Overlaps {theirs['network']} of network {other_name}.")
    return errors


_MODIFIABLE = ("description", "vni", "vlan", "bridge", "mtu", "domain", "ipv4", "ipv6",
               "nameservers", "nat", "reservations", "acl")


# POST /network/{net}: spec fields to change (the others stay; `type` cannot change:
# remove the network and add it again). The merged spec is checked whole.
NetworkModifyRequest = HerdSchema.from_dict(
    {key: NetworkSpecSchema._declared_fields[key] for key in _MODIFIABLE},
    name="NetworkModifyRequest")


class NetworkCreateRequest(NetworkSchema):
    """POST /network: a whole Network object (what `get network NAME -o yaml` shows)."""
