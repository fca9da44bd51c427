"""How networks, their reservations, firewall rules and leases look in herdctl's tables
and `network info` (issue #14). Pure: no I/O. The inputs are the API's answers
(`GET /network`, `GET /network/{net}/lease|reservation|acl`). Called by
`ctl.cmd_network` and `ctl.cmd_objects`; tested by tests/unit/test_ctl_netviews.py.
"""

from __future__ import annotations

import time
from typing import Any

from ctl.output import Column, dash, pairs


def _spec(net: dict[str, Any]) -> dict[str, Any]:
    spec = net.get("spec")
    return spec if isinstance(spec, dict) else {}


def _block(net: dict[str, Any], key: str, field: str) -> Any:
    block = _spec(net).get(key)
    return block.get(field) if isinstance(block, dict) else None


def _range(net: dict[str, Any], key: str = "ipv4") -> str:
    dhcp = _block(net, key, "dhcp")
    return f"{dhcp['start']}-{dhcp['end']}" if isinstance(dhcp, dict) else "-"


def net_id(net: dict[str, Any]) -> str:
    """`vxlan 1001`, `vlan 100` or `bridge br0`: what carries the network."""
    spec = _spec(net)
    for key, label in (("vni", "vxlan"), ("vlan", "vlan"), ("bridge", "bridge")):
        if spec.get(key) is not None:
            return f"{label} {spec[key]}"
    return "-"


NETWORK_COLUMNS = (
    Column("NAME", lambda n: str((n.get("metadata") or {}).get("name", "?"))),
    Column("TYPE", lambda n: dash(_spec(n).get("type"))),
    Column("CARRIER", net_id),
    Column("IPV4", lambda n: dash(_block(n, "ipv4", "network"))),
    Column("GATEWAY", lambda n: dash(_block(n, "ipv4", "gateway"))),
    Column("DHCP", _range),
    Column("DOMAIN", lambda n: dash(_spec(n).get("domain"))),
    Column("IPV6", lambda n: dash(_block(n, "ipv6", "network")), wide=True),
    Column("MTU", lambda n: dash(_spec(n).get("mtu")), wide=True),
    Column("RESERVED", lambda n: str(len(_spec(n).get("reservations") or [])), wide=True),
    Column("RULES", lambda n: str(len(_spec(n).get("acl") or [])), wide=True),
    Column("DESCRIPTION", lambda n: dash(_spec(n).get("description")), wide=True, flex=True),
)

RESERVATION_COLUMNS = (
    Column("MAC", lambda r: str(r.get("mac"))),
    Column("IP", lambda r: str(r.get("ip"))),
    Column("HOSTNAME", lambda r: dash(r.get("hostname"))),
)

RULE_COLUMNS = (
    Column("NAME", lambda r: str(r.get("name"))),
    Column("DIRECTION", lambda r: str(r.get("direction"))),
    Column("ORDER", lambda r: str(r.get("order"))),
    Column("RULE", lambda r: str(r.get("rule")), flex=True),
    Column("DESCRIPTION", lambda r: dash(r.get("description")), wide=True),
)


def _expires(lease: dict[str, Any], now: float | None) -> str:
    expiry = lease.get("expiry")
    if not isinstance(expiry, int | float) or expiry <= 0:
        return "never"
    left = int(expiry - (time.time() if now is None else now))
    return "expired" if left <= 0 else f"in {left // 60}m{left % 60:02d}s"


def lease_columns(now: float | None = None) -> tuple[Column, ...]:
    return (Column("MAC", lambda x: str(x.get("mac"))), Column("IP", lambda x: str(x.get("ip"))),
            Column("HOSTNAME", lambda x: dash(x.get("hostname"))),
            Column("EXPIRES", lambda x: _expires(x, now)))


def _block_text(net: dict[str, Any], key: str) -> str:
    network = _block(net, key, "network")
    if network is None:
        return "-"
    dhcp = _block(net, key, "dhcp")
    lease = f", leases {dhcp.get('leaseTime')}s" if isinstance(dhcp, dict) else ""
    return f"{network} via {_block(net, key, 'gateway')}, DHCP {_range(net, key)}{lease}"


def on_nodes(name: str, nodes: list[dict[str, Any]]) -> str:
    """Each node's state of network `name` (its status `networks`), a line each."""
    lines = []
    for node in nodes:
        entry = ((node.get("status") or {}).get("networks") or {}).get(name)
        label = str((node.get("metadata") or {}).get("name", "?"))
        if entry is None:
            lines.append(f"{label}: not reported")
            continue
        state = "up" if entry.get("up") else f"down: {entry.get('reason') or '?'}"
        gateway = f", gateway {entry['gateway']}" if entry.get("gateway") else ""
        lines.append(f"{label}: {state}{gateway}")
    return "\n".join(lines) or "-"


def network_info(net: dict[str, Any], nodes: list[dict[str, Any]] | None = None) -> str:
    spec = _spec(net)
    meta = net.get("metadata") or {}
    reserved = [f"{r['mac']} {r['ip']} {r.get('hostname') or ''}".rstrip()
                for r in spec.get("reservations") or []]
    rules = [f"{r['direction']} {r['order']} {r['name']}: {r['rule']}"
             for r in sorted(spec.get("acl") or [],
                             key=lambda r: (r["direction"], r["order"], r["name"]))]
    return pairs([
        ("Name", str(meta.get("name"))), ("Type", dash(spec.get("type"))),
        ("Carrier", net_id(net)), ("Description", dash(spec.get("description"))),
        ("MTU", dash(spec.get("mtu") or "the underlay's")),
        ("IPv4", _block_text(net, "ipv4")), ("IPv6", _block_text(net, "ipv6")),
        ("Domain", dash(spec.get("domain"))),
        ("Nameservers", dash(", ".join(spec.get("nameservers") or []))),
        ("NAT", dash(bool(spec.get("nat")))),
        ("Reservations", "\n".join(reserved) or "-"), ("Rules", "\n".join(rules) or "-"),
        ("Generation", dash(meta.get("generation"))),
        *([("Nodes", on_nodes(str(meta.get("name")), nodes))] if nodes is not None else []),
    ])
