"""Affinity rules where herd-api places a VM itself (issue #17): an explicit node at define,
PUT or apply, and migrate, move and unmigrate. A node that would break a strict rule is
refused with 409 naming the rule; where the API picks the node (migrate without one), the
rules choose as the primary's scheduler does (`store.placement.select`).

The rules come from the API's cache (`Rule` objects, `server.docobjects`), the placements
from its VMs: the node of every VM placed to run. Called by `server.vm_handlers`,
`server.vm_verbs` and `server.apply`.
"""

from __future__ import annotations

from server.access import Ctx
from server.errors import conflict
from store import clusterview
from store.affinity import Rule, rules_of, strict_refusal
from store.rules import read_rules


def cluster_rules(c: Ctx) -> list[Rule]:
    docs = c.cache.docs
    return read_rules(docs.names("Rule"),
                      lambda name: found.doc if (found := docs.get("Rule", name)) else None)


def placed(c: Ctx) -> dict[str, str]:
    """The node of every VM placed to run."""
    return clusterview.where(c.cache.all_vms())


def check_rules(c: Ctx, vm: str, node: str | None, *, verb: str = "place") -> None:
    """409 when `vm` on `node` would break a strict rule (the message names it)."""
    if not node:
        return
    mine = rules_of(vm, cluster_rules(c))
    if not mine:
        return
    why = strict_refusal(vm, node, mine, placed(c))
    if why is not None:
        raise conflict(f"cannot {verb} {vm} on {node}: {why}", rule=[why])
