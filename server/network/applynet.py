"""Networks in `POST /apply` (issue #14): `kind: Network` objects applied in the same
transaction as the VMs and Nodes of the list, under the same rules as `POST /network`.

`prepare` reads every network (with the parent's version), checks each applied network
against the others as they will be after the apply (unique VNI/VLAN/bridge, no
overlapping subnets), and answers the parent's version check that the transaction must
carry (`bump`), so that a concurrent network write fails the whole apply. `check_rules`
runs nft on the firewall rules the list gives (before planning, off the loop). VMs of the
same list may name networks the list creates (`names`). Called by `server.apply`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from marshmallow import ValidationError

from schemas.network import network_conflicts
from server.network.nftcheck import rule_errors
from store import networks, txn
from store.client import Store
from store.codec import Doc


@dataclass(frozen=True)
class NetApply:
    seen: networks.NetworkSet | None  # None: the list has no Network
    names: frozenset[str]  # networks that exist after the apply

    def bump(self, store: Store) -> list[txn.Op]:
        if self.seen is None:
            return []
        return [txn.Set(store.paths.networks, {"writes": self.seen.writes + 1},
                        version=self.seen.version)]


def _indexed(objects: list[Doc]) -> list[tuple[int, Doc]]:
    return [(i, o) for i, o in enumerate(objects) if o["kind"] == "Network"]


def prepare(store: Store, objects: list[Doc]) -> NetApply:
    """Read and check the networks of an apply (blocking)."""
    applied = _indexed(objects)
    if not applied:
        names = frozenset(store.children(store.paths.networks))
        return NetApply(None, names)
    seen = networks.read_all(store)
    after = {**seen.specs(), **{o["metadata"]["name"]: o["spec"] for _i, o in applied}}
    for index, obj in applied:
        clashes = network_conflicts(obj["metadata"]["name"], obj["spec"], after)
        if clashes:
            raise ValidationError({"objects": {index: {"spec": clashes}}})
    return NetApply(seen, frozenset(after))


async def check_rules(objects: list[Doc]) -> None:
    """nft's verdict on every firewall rule of the list's networks (422 naming the rule)."""
    places = [(i, j, rule["rule"]) for i, o in _indexed(objects)
              for j, rule in enumerate(o["spec"].get("acl", []))]
    found = await rule_errors([rule for _i, _j, rule in places])
    if not found:
        return
    errors: dict[Any, Any] = {}
    for k, messages in found.items():
        i, j, _rule = places[k]
        errors.setdefault(i, {"spec": {"acl": {}}})["spec"]["acl"][j] = {"rule": messages}
    raise ValidationError({"objects": errors})

