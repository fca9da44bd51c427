"""The Network object through herd-api against a real ZooKeeper (issue #14): add, show,
list, modify and remove networks; reservations, firewall rules (parsed by a real
`nft --check`) and leases; every bad input a 4xx naming the field with nothing written;
the rules between networks under concurrency; and what VMs may say of networks (unknown
network refused, MACs fixed at define and kept on replace, a MAC used twice refused, a
network named by a VM removed only with force)."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from schemas.domainnics import domain_nics
from store import networks
from store.client import Store
from tests.integration.test_api import Api, api_server

WEB: dict[str, Any] = {
    "apiVersion": "herd/v1", "kind": "Network", "metadata": {"name": "web"},
    "spec": {"type": "managed", "vni": 1001, "domain": "web.herd.internal",
             "ipv4": {"network": "10.100.0.0/24", "gateway": "10.100.0.1",
                      "dhcp": {"start": "10.100.0.100", "end": "10.100.0.199"}}}}
NIC_VM = ("<domain type='test'><name>{name}</name><memory unit='MiB'>64</memory>"
          "<devices><interface type='network'><source network='{net}'/>{mac}</interface>"
          "</devices></domain>")


def network(name: str = "web", **spec: Any) -> dict[str, Any]:
    doc = copy.deepcopy(WEB)
    doc["metadata"]["name"] = name
    doc["spec"].update(spec)
    return doc


def nic_vm(name: str, net: str = "web", mac: str | None = None) -> str:
    return NIC_VM.format(name=name, net=net, mac=f"<mac address='{mac}'/>" if mac else "")


@pytest_asyncio.fixture
async def api(zk_hosts: str, zk_root: str, tmp_path: Path) -> AsyncIterator[Api]:
    async with api_server(zk_hosts, zk_root, tmp_path) as a:
        yield a


def stored(store: Store) -> list[str]:
    return store.children(store.paths.networks)


async def test_add_show_list_modify_and_remove(api: Api, store: Store) -> None:
    status, body = await api.post("/network", WEB)
    assert status == 201, body
    assert body["spec"]["ipv4"]["dhcp"]["leaseTime"] == 3600 and body["metadata"]["generation"] == 1
    assert store.get(store.paths.network("web")).doc["spec"]["vni"] == 1001
    status, body = await api.get("/network")
    assert [n["metadata"]["name"] for n in body["items"]] == ["web"]
    status, body = await api.post("/network/web", {"description": "front", "mtu": 1400})
    assert status == 200 and body["spec"]["description"] == "front"
    assert body["spec"]["vni"] == 1001 and body["metadata"]["generation"] == 2
    status, body = await api.call("DELETE", "/network/web")
    assert status == 200 and body["deleted"] is True
    assert stored(store) == [] and (await api.get("/network/web"))[0] == 404


@pytest.mark.parametrize(("spec", "where"), [
    ({"ipv4": {"network": "10.100.0.0/24", "gateway": "10.9.0.1"}}, ["ipv4", "gateway"]),
    ({"ipv4": {"network": "10.100.0.0/24", "gateway": "10.100.0.1",
               "dhcp": {"start": "10.100.1.10", "end": "10.100.0.20"}}}, ["ipv4", "dhcp"]),
    ({"ipv4": {"network": "10.100.0.5/24", "gateway": "10.100.0.1"}}, ["ipv4", "network"]),
    ({"vni": 0}, ["vni"]),
    ({"reservations": [{"mac": "52:54:00:00:00:01", "ip": "10.200.0.5"}]},
     ["reservations", "0", "ip"]),
    ({"reservations": [{"mac": "52:54:00:00:00:01", "ip": "10.100.0.5"},
                       {"mac": "52:54:00:00:00:01", "ip": "10.100.0.6"}]},
     ["reservations", "1", "mac"]),
    ({"acl": [{"name": "ssh", "direction": "in", "rule": "tcp dprt 22 accept"}]},
     ["acl", "0", "rule"]),
    ({"acl": [{"name": "x", "direction": "in", "rule": "accept } table ip evil {"}]},
     ["acl", "0", "rule"]),
    ({"type": "bridged"}, ["vlan"]),
])
async def test_bad_networks_are_422_naming_the_field_and_write_nothing(
        api: Api, store: Store, spec: dict[str, Any], where: list[str]) -> None:
    status, body = await api.post("/network", network(**spec))
    assert status == 422, body
    details = body["error"]["details"]["spec"]
    for key in where:
        details = details[key]
    assert details and stored(store) == []


async def test_the_rules_between_networks_hold_under_concurrent_writes(
        api: Api, store: Store) -> None:
    assert (await api.post("/network", WEB))[0] == 201
    status, body = await api.post("/network", network(
        "db", vni=1002, ipv4={"network": "10.100.0.128/25", "gateway": "10.100.0.129"}))
    assert status == 422 and "Overlaps 10.100.0.0/24" in str(body["error"]["details"])
    same_vni = [network(f"n{i}", vni=2000, ipv4={
        "network": f"10.{i}.0.0/24", "gateway": f"10.{i}.0.1"}) for i in range(1, 6)]
    answers = await asyncio.gather(*(api.post("/network", doc) for doc in same_vni))
    assert sorted(status for status, _ in answers) == [201, 422, 422, 422, 422]
    assert len(stored(store)) == 2  # web and exactly one of the five


async def test_reservations_rules_and_leases(api: Api, store: Store) -> None:
    assert (await api.post("/network", WEB))[0] == 201
    res = {"mac": "52:54:00:AB:CD:EF", "ip": "10.100.0.10", "hostname": "db1"}
    status, body = await api.post("/network/web/reservation", res)
    assert status == 201 and body["mac"] == "52:54:00:ab:cd:ef"
    assert (await api.post("/network/web/reservation", res))[0] == 409
    status, body = await api.post("/network/web/reservation", {**res, "mac": "52:54:00:00:00:02"})
    assert status == 422 and "ip" in body["error"]["details"]["spec"]["reservations"]["1"]
    status, body = await api.post("/network/web/acl", {"name": "ssh", "direction": "in",
                                                       "rule": "tcp dport { 22, 443 } accept"})
    assert status == 201, body
    status, body = await api.post("/network/web/acl", {"name": "bad", "direction": "out",
                                                       "rule": "ip daddr 10.0.0.0/33 drop"})
    assert status == 422 and "nft:" in str(body["error"]["details"])
    assert [r["name"] for r in (await api.get("/network/web/acl"))[1]["items"]] == ["ssh"]
    networks.put_lease(store, "web", networks.lease_doc(
        mac="52:54:00:ab:cd:ef", ip="10.100.0.10", hostname="db1", expiry=2e9))
    status, body = await api.get("/network/web/lease")
    assert [(x["mac"], x["ip"]) for x in body["items"]] == [("52:54:00:ab:cd:ef", "10.100.0.10")]
    assert (await api.call("DELETE", "/network/web/reservation/52-54-00-ab-cd-ef"))[0] == 200
    assert (await api.call("DELETE", "/network/web/acl/ssh"))[0] == 200
    spec = store.get(store.paths.network("web")).doc["spec"]
    assert spec["reservations"] == [] and spec["acl"] == []
    assert (await api.call("DELETE", "/network/web/acl/ssh"))[0] == 404


async def test_vms_name_known_networks_and_get_fixed_unique_macs(api: Api, store: Store) -> None:
    status, body = await api.post("/vm", {"xml": nic_vm("a1")})
    assert status == 422 and body["error"]["code"] == "unknown_network"
    assert "web" in body["error"]["details"]["xml"][0]
    assert (await api.post("/network", WEB))[0] == 201
    status, body = await api.post("/vm", {"xml": nic_vm("a1")})
    assert status == 201, body
    [nic] = domain_nics(store.get(store.paths.vm("a1")).doc["spec"]["xml"])
    assert nic.mac is not None and nic.mac.startswith("52:54:00:")
    status, body = await api.post("/vm", {"xml": nic_vm("a2", mac=nic.mac)})
    assert status == 422 and body["error"]["code"] == "duplicate_mac"
    status, body = await api.post("/vm/a1", {"xml": nic_vm("a1").replace("64", "128")})
    assert status == 200, body
    [kept] = domain_nics(store.get(store.paths.vm("a1")).doc["spec"]["xml"])
    assert kept.mac == nic.mac  # a replaced XML keeps its NIC's address
    status, body = await api.call("DELETE", "/network/web")
    assert status == 409 and body["error"]["details"]["vms"] == ["a1"]
    status, body = await api.call("DELETE", "/network/web?force=true")
    assert status == 200 and body["vms"] == ["a1"] and stored(store) == []


async def test_only_admins_change_networks(api: Api) -> None:
    status, body = await api.post("/token", {"name": "ops", "role": "operator"})
    ops = {"Authorization": f"Bearer {body['secret']}"}
    status, body = await api.post("/network", WEB, headers=ops)
    assert status == 403 and "admin" in body["error"]["message"]
    assert (await api.get("/network", headers=ops))[0] == 200


async def test_apply_makes_a_network_and_the_vms_on_it_in_one_transaction(
        api: Api, store: Store) -> None:
    vm = {"apiVersion": "herd/v1", "kind": "VM", "metadata": {"name": "w1"},
          "spec": {"xml": nic_vm("w1")}}
    status, body = await api.post("/apply", {"objects": [WEB, vm]})
    assert status == 200, body
    assert [r["action"] for r in body["results"]] == ["created", "created"]
    assert domain_nics(store.get(store.paths.vm("w1")).doc["spec"]["xml"])[0].mac
    status, body = await api.post("/apply", {"objects": [WEB]})
    assert body["results"][0]["action"] == "unchanged"
    changed = network(description="front")
    status, body = await api.post("/apply", {"objects": [changed]})
    assert body["results"][0]["action"] == "configured"
    assert store.get(store.paths.network("web")).doc["metadata"]["generation"] == 2
    clash = network("db", ipv4={"network": "10.100.0.0/16", "gateway": "10.100.255.1"})
    bad_rule = network("ops", vni=7, ipv4={"network": "10.7.0.0/24", "gateway": "10.7.0.1"},
                       acl=[{"name": "r", "direction": "in", "rule": "tcp dport foo accept"}])
    for objects, where in (([clash], "ipv4.network"), ([bad_rule], "acl")):
        status, body = await api.post("/apply", {"objects": objects})
        assert status == 422 and where in body["error"]["details"]["objects"]["0"]["spec"]
    assert stored(store) == ["web"]


async def test_the_watch_stream_carries_networks(api: Api) -> None:
    assert (await api.post("/network", WEB))[0] == 201
    resp = await api.raw("GET", "/watch", params={"kind": "Network", "timeout": "10"})

    async def next_event() -> dict[str, Any]:
        line = await asyncio.wait_for(resp.content.readline(), 10)
        assert line, "the stream ended"
        return dict(json.loads(line))

    first = await next_event()
    assert (first["type"], first["kind"], first["name"]) == ("ADDED", "Network", "web")
    assert (await api.post("/network/web", {"description": "x"}))[0] == 200
    changed = await next_event()
    assert changed["type"] == "MODIFIED" and changed["object"]["spec"]["description"] == "x"
    assert (await api.call("DELETE", "/network/web"))[0] == 200
    assert (await next_event())["type"] == "DELETED"
    resp.close()


async def test_every_mac_is_registered_with_its_vm_and_two_defines_cannot_share_one(
        api: Api, store: Store) -> None:
    assert (await api.post("/network", WEB))[0] == 201
    mac, other = "52:54:00:77:00:01", "52:54:00:77:00:02"
    answers = await asyncio.gather(*(api.post("/vm", {"xml": nic_vm(n, mac=mac)})
                                     for n in ("m1", "m2", "m3")))
    statuses = sorted(status for status, _ in answers)
    assert statuses == [201, 422, 422], answers
    refusals = [body["error"] for status, body in answers if status == 422]
    assert {e["code"] for e in refusals} == {"duplicate_mac"}
    assert any("another VM" in e["message"] for e in refusals)  # the registry's, not the cache's
    [winner] = [body["metadata"]["name"] for status, body in answers if status == 201]
    assert store.get(store.paths.mac(mac)).doc == {"vm": winner}
    status, body = await api.post(f"/vm/{winner}", {"xml": nic_vm(winner, mac=other)})
    assert status == 200, body
    assert store.exists(store.paths.mac(mac)) is None  # freed with the XML that had it
    assert store.get(store.paths.mac(other)).doc == {"vm": winner}
    assert (await api.post(f"/vm/{winner}/rename", {"new_name": "m9"}))[0] == 200
    assert store.get(store.paths.mac(other)).doc == {"vm": "m9"}
    assert (await api.call("DELETE", "/vm/m9"))[0] == 200
    assert store.children(store.paths.macs) == []
