"""The Network schema (issue #14): every field's rule and the rules between fields and
between networks, each refusal naming its field; canonical forms of what is accepted;
MACs fixed in domain XML."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from marshmallow import ValidationError

from ctl.netviews import NETWORK_COLUMNS, network_info
from schemas.domainnics import domain_nics, networks_named, with_macs
from schemas.netrules import validate_rule_text
from schemas.network import NetworkSchema, network_conflicts

BASE: dict[str, Any] = {
    "apiVersion": "herd/v1", "kind": "Network", "metadata": {"name": "web"},
    "spec": {"type": "managed", "vni": 7, "ipv4": {"network": "10.1.0.0/24",
                                                   "gateway": "10.1.0.1"}}}


def load(**spec: Any) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    doc["spec"].update(spec)
    doc["spec"] = {k: v for k, v in doc["spec"].items() if v is not None}  # None: left out
    return dict(NetworkSchema().load(doc))


def refused(**spec: Any) -> dict[str, Any]:
    with pytest.raises(ValidationError) as e:
        load(**spec)
    messages = e.value.messages
    assert isinstance(messages, dict)
    return dict(messages["spec"])


def test_canonical_forms() -> None:
    spec = load(reservations=[{"mac": "52-54-00-AA-BB-CC", "ip": "10.1.0.9"}],
                ipv6={"network": "fd00:1::/64", "gateway": "FD00:1::1"})["spec"]
    assert spec["reservations"][0]["mac"] == "52:54:00:aa:bb:cc"
    assert spec["ipv6"]["gateway"] == "fd00:1::1"


@pytest.mark.parametrize(("spec", "field"), [
    ({"vni": 16_777_216}, "vni"), ({"vni": None}, "vni"), ({"vlan": 5}, "vlan"),
    ({"vni": True}, "vni"),
    ({"mtu": 100}, "mtu"), ({"domain": "Web_1"}, "domain"),
    ({"ipv6": {"network": "fd00::/48", "gateway": "fd00::1"}}, "ipv6"),
    ({"ipv4": {"network": "10.1.0.0/24", "gateway": "10.1.0.255"}}, "ipv4"),
    ({"ipv4": {"network": "10.1.0.0/24", "gateway": "10.1.0.1",
               "dhcp": {"start": "10.1.0.1", "end": "10.1.0.9"}}}, "ipv4"),
    ({"reservations": [{"mac": "01:00:5e:00:00:01", "ip": "10.1.0.5"}]}, "reservations"),
    ({"reservations": [{"mac": "52:54:00:00:00:01", "ip": "10.1.0.1"}]}, "reservations"),
    ({"nat": True, "ipv4": None}, "nat"),
    ({"acl": [{"name": "a", "direction": "in", "rule": "accept"},
              {"name": "a", "direction": "out", "rule": "drop"}]}, "acl"),
    ({"type": "bridged", "vni": None, "ipv4": None}, "vlan"),
    ({"type": "bridged", "vni": None, "vlan": 10, "ipv4": None, "domain": "x.y"}, "domain"),
])
def test_refusals_name_the_field(spec: dict[str, Any], field: str) -> None:
    assert field in refused(**spec)


def test_conflicts_between_networks() -> None:
    mine = load()["spec"]
    others = {"db": load(vni=7, ipv4={"network": "10.1.0.128/25",
                                      "gateway": "10.1.0.129"})["spec"], "web": mine}
    assert set(network_conflicts("web", mine, others)) == {"vni", "ipv4.network"}
    assert network_conflicts("web", mine, {"web": mine}) == {}


@given(st.text(max_size=40))
def test_a_rule_never_escapes_its_chain(text: str) -> None:
    try:
        validate_rule_text(text)
    except ValidationError:
        return
    depth = 0
    for char in text:
        depth += {"{": 1, "}": -1}.get(char, 0)
        assert depth >= 0
    assert depth == 0 and ";" not in text and "\n" not in text


def test_macs_are_fixed_only_where_missing() -> None:
    xml = ("<domain type='kvm'><name>a</name><devices><interface type='network'>"
           "<source network='web'/></interface><interface type='network'>"
           "<mac address='52:54:00:00:00:02'/><source network='db'/></interface>"
           "</devices></domain>")
    assert networks_named(xml) == ("web", "db")
    fixed = with_macs(xml, ["52:54:00:00:00:01"])
    assert [n.mac for n in domain_nics(fixed)] == ["52:54:00:00:00:01", "52:54:00:00:00:02"]
    assert with_macs(fixed, []) == fixed


def test_network_views() -> None:
    net = {"metadata": {"name": "web", "generation": 2}, **load(
        ipv4={"network": "10.1.0.0/24", "gateway": "10.1.0.1",
              "dhcp": {"start": "10.1.0.10", "end": "10.1.0.20"}})}
    row = [c.cell(net) for c in NETWORK_COLUMNS if not c.wide]
    assert row == ["web", "managed", "vxlan 7", "10.1.0.0/24", "10.1.0.1",
                   "10.1.0.10-10.1.0.20", "-"]
    assert "10.1.0.0/24 via 10.1.0.1, DHCP 10.1.0.10-10.1.0.20, leases 3600s" in \
        network_info(net)
    nodes: list[dict[str, Any]] = [{"metadata": {"name": "hv1"}, "status": {"networks": {"web": {
                 "up": True, "gateway": "running"}}}},
             {"metadata": {"name": "hv2"}, "status": {"networks": {"web": {
                 "up": False, "reason": "no VXLAN support: x"}}}},
             {"metadata": {"name": "hv3"}, "status": None}]
    text = network_info(net, nodes)
    assert "hv1: up, gateway running" in text and "hv2: down: no VXLAN support: x" in text
    assert "hv3: not reported" in text
