"""`herdctl network ...` (issue #14): the cluster's client networks over the REST API.

- `list`, `info NAME`, `add NAME --type managed|bridged ...`, `modify NAME ...` (only the
  options given change), `remove NAME [--force]`;
- `lease list NET`; `reservation add|list|remove`; `acl add|list|remove`.
Adding and changing needs an admin token. Errors are the server's (field → message).
`get network NAME -o yaml` (ctl.cmd_objects) prints what `apply -f` takes. Registered
by `ctl.main`.
"""

from __future__ import annotations

from typing import Any

import click

from ctl.common import Ctl, emit, output_option, pass_ctl, term_width
from ctl.netviews import (
    NETWORK_COLUMNS,
    RESERVATION_COLUMNS,
    RULE_COLUMNS,
    lease_columns,
    network_info,
)
from ctl.output import FORMATS, render, to_json, to_yaml

TYPES = ("managed", "bridged")
TABLES = tuple(f for f in FORMATS if f != "name")


@click.group("network")
def network_group() -> None:
    """Client networks: VXLAN or VLAN bridges on every node, DHCP and DNS."""


@network_group.command("list")
@output_option(*FORMATS, default="table")
@pass_ctl
def list_command(ctl: Ctl, fmt: str) -> None:
    """List networks."""
    items = ctl.client.get("/network")["items"]
    emit(render(items, fmt, columns=NETWORK_COLUMNS, kind="network", width=term_width()))


@network_group.command("info")
@click.argument("name")
@output_option("text", "json", "yaml", default="text")
@pass_ctl
def info_command(ctl: Ctl, name: str, *, fmt: str) -> None:
    """Everything about one network, and its state on each node."""
    net = ctl.client.get(f"/network/{name}")
    if fmt != "text":
        emit(to_json(net) if fmt == "json" else to_yaml(net))
        return
    emit(network_info(net, ctl.client.get("/node")["items"]))


def spec_options(func: Any) -> Any:
    """The options of `add` and `modify` (each becomes a spec field when given)."""
    options = [
        click.option("--description"), click.option("--vni", type=int, help="VXLAN id"),
        click.option("--vlan", type=int, help="VLAN id on each node's bridge_device"),
        click.option("--bridge", help="an existing bridge on every node"),
        click.option("--mtu", type=int), click.option("--domain", help="DNS zone"),
        click.option("--ipv4", help="network, e.g. 10.100.0.0/24"),
        click.option("--gateway4", help="the gateway's IPv4 address"),
        click.option("--dhcp4", metavar="START-END", help="the dynamic range"),
        click.option("--ipv6", help="a /64"), click.option("--gateway6"),
        click.option("--lease-time", type=int, help="seconds (default 3600)"),
        click.option("--nameserver", "nameservers", multiple=True, help="upstream DNS"),
        click.option("--nat/--no-nat", default=None, help="SNAT to the primary's uplink"),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _address_block(network: str | None, gateway: str | None, dhcp: str | None,
                   lease_time: int | None) -> dict[str, Any] | None:
    if network is None and gateway is None:
        return None
    block: dict[str, Any] = {"network": network, "gateway": gateway}
    if dhcp is not None:
        start, _, end = dhcp.partition("-")
        block["dhcp"] = {"start": start, "end": end}
        if lease_time is not None:
            block["dhcp"]["leaseTime"] = lease_time
    return block


def spec_of(*, ipv4: str | None = None, gateway4: str | None = None, dhcp4: str | None = None,
            ipv6: str | None = None, gateway6: str | None = None,
            lease_time: int | None = None, nameservers: tuple[str, ...] = (),
            **simple: Any) -> dict[str, Any]:
    """The spec fields the options give (nothing for an option left out)."""
    spec = {key: value for key, value in simple.items() if value is not None}
    if nameservers:
        spec["nameservers"] = list(nameservers)
    for key, block in (("ipv4", _address_block(ipv4, gateway4, dhcp4, lease_time)),
                       ("ipv6", _address_block(ipv6, gateway6, None, None))):
        if block is not None:
            spec[key] = block
    return spec


@network_group.command("add")
@click.argument("name")
@click.option("--type", "kind", type=click.Choice(TYPES), required=True)
@spec_options
@pass_ctl
def add_command(ctl: Ctl, /, name: str, *, kind: str, **options: Any) -> None:
    """Add a network."""
    body = {"apiVersion": "herd/v1", "kind": "Network", "metadata": {"name": name},
            "spec": {"type": kind, **spec_of(**options)}}
    ctl.client.post("/network", body)
    emit(f"network/{name} added")


@network_group.command("modify")
@click.argument("name")
@spec_options
@pass_ctl
def modify_command(ctl: Ctl, /, name: str, **options: Any) -> None:
    """Change the given fields of a network (address blocks are replaced whole)."""
    net = ctl.client.post(f"/network/{name}", spec_of(**options))
    emit(f"network/{name} modified (generation {net['metadata'].get('generation')})")


@network_group.command("remove")
@click.argument("name")
@click.option("--force", is_flag=True, help="even while VMs name it")
@pass_ctl
def remove_command(ctl: Ctl, name: str, *, force: bool) -> None:
    """Remove a network (refused while a VM names it, unless --force)."""
    answer = ctl.client.call("DELETE", f"/network/{name}", query={"force": force or None})
    users = answer.get("vms") or []
    emit(f"network/{name} removed" + (f" (still named by {', '.join(users)})" if users else ""))


@network_group.group("lease")
def lease_group() -> None:
    """What DHCP handed out."""


@lease_group.command("list")
@click.argument("network")
@output_option(*TABLES, default="table")
@pass_ctl
def lease_list(ctl: Ctl, network: str, *, fmt: str) -> None:
    """The network's leases."""
    items = ctl.client.get(f"/network/{network}/lease")["items"]
    emit(render(items, fmt, columns=lease_columns(), width=term_width()))


@network_group.group("reservation")
def reservation_group() -> None:
    """DHCP reservations: a MAC always gets its IP."""


@reservation_group.command("add")
@click.argument("network")
@click.argument("mac")
@click.argument("ip")
@click.option("--hostname")
@pass_ctl
def reservation_add(ctl: Ctl, network: str, mac: str, ip: str, *,
                    hostname: str | None) -> None:
    """Reserve IP for MAC."""
    body = {"mac": mac, "ip": ip, **({"hostname": hostname} if hostname else {})}
    made = ctl.client.post(f"/network/{network}/reservation", body)
    emit(f"network/{network}: {made['mac']} reserved {made['ip']}")


@reservation_group.command("list")
@click.argument("network")
@output_option(*TABLES, default="table")
@pass_ctl
def reservation_list(ctl: Ctl, network: str, *, fmt: str) -> None:
    """The network's reservations."""
    items = ctl.client.get(f"/network/{network}/reservation")["items"]
    emit(render(items, fmt, columns=RESERVATION_COLUMNS, width=term_width()))


@reservation_group.command("remove")
@click.argument("network")
@click.argument("mac")
@pass_ctl
def reservation_remove(ctl: Ctl, network: str, mac: str) -> None:
    """Remove the reservation of MAC."""
    answer = ctl.client.call("DELETE", f"/network/{network}/reservation/{mac}")
    emit(f"network/{network}: reservation of {answer['mac']} removed")


@network_group.group("acl")
def acl_group() -> None:
    """Firewall rules (nftables syntax) on the network's traffic, at its gateway."""


@acl_group.command("add")
@click.argument("network")
@click.argument("name")
@click.option("--direction", type=click.Choice(["in", "out"]), required=True,
              help="in: to the guests; out: from them")
@click.option("--rule", required=True, help="one nftables rule, e.g. 'tcp dport 22 accept'")
@click.option("--order", type=int, help="lower first (default 1000)")
@click.option("--description")
@pass_ctl
def acl_add(ctl: Ctl, network: str, name: str, *, direction: str, rule: str,
            order: int | None, description: str | None) -> None:
    """Add a firewall rule."""
    body: dict[str, Any] = {"name": name, "direction": direction, "rule": rule}
    body.update({k: v for k, v in (("order", order), ("description", description))
                 if v is not None})
    ctl.client.post(f"/network/{network}/acl", body)
    emit(f"network/{network}: rule {name} added")


@acl_group.command("list")
@click.argument("network")
@output_option(*TABLES, default="table")
@pass_ctl
def acl_list(ctl: Ctl, network: str, *, fmt: str) -> None:
    """The network's rules, in the order they apply."""
    items = ctl.client.get(f"/network/{network}/acl")["items"]
    emit(render(items, fmt, columns=RULE_COLUMNS, width=term_width()))


@acl_group.command("remove")
@click.argument("network")
@click.argument("name")
@pass_ctl
def acl_remove(ctl: Ctl, network: str, name: str) -> None:
    """Remove a firewall rule."""
    ctl.client.call("DELETE", f"/network/{network}/acl/{name}")
    emit(f"network/{network}: rule {name} removed")
