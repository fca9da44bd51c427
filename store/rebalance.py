"""Rebalancing (issue #17): live migrations that even out the nodes' load by the
cluster's selector, within limits and affinity rules. Pure: the API plans it (`POST
/rebalance`, `herdctl cluster rebalance`) and the primary after a node returns to ready
when `config.rebalance.auto` is on.

The measure of a node is what its selector ranks it by (`mem`: memory in use, `memprov`:
memory provisioned, `vcpus` and `load`: vCPUs allocated — a node's load does not follow
a plan, its vCPUs do —, `vms`: VMs); the imbalance is the spread between the busiest and
the idlest usable node, as a fraction of the busiest node's capacity for memory. `plan`
moves, one at a time, a VM from the busiest node to the node where it lowers the spread
most, as long as the spread falls by more than `threshold` and at most `limit` moves:
the imbalance never grows. Only VMs running where they are placed, desired running and
not tied to a node by local volumes move (a rebalance is no storage copy), one at a time:
a member of a strict `together` rule stays (it could only move with its group).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from store.affinity import Rule, rules_of, strict_refusal
from store.placement import NodeView, VMNeeds, refusal


@dataclass(frozen=True)
class Move:
    vm: str
    source: str
    target: str


@dataclass(frozen=True)
class Plan:
    moves: tuple[Move, ...]
    before: float  # the imbalance now
    after: float  # once the moves are done


def measure(node: NodeView, selector: str) -> float:
    if selector == "mem":
        return (node.mem_total - node.mem_free) / max(node.mem_total, 1)
    if selector == "memprov":
        return node.mem_prov / max(node.mem_total, 1)
    if selector == "vms":
        return float(node.vms)
    return float(node.vcpu_alloc)  # vcpus, and load (see the module doc)


def imbalance(nodes: Iterable[NodeView], selector: str) -> float:
    values = [measure(n, selector) for n in nodes if n.usable]
    return round(max(values) - min(values), 6) if len(values) > 1 else 0.0


def _moved(node: NodeView, vm: VMNeeds, sign: int) -> NodeView:
    return replace(node, mem_free=node.mem_free - sign * vm.memory_mib,
                   mem_prov=node.mem_prov + sign * vm.memory_mib,
                   vcpu_alloc=node.vcpu_alloc + sign * vm.vcpus, vms=node.vms + sign)


def plan(nodes: Sequence[NodeView], running: Mapping[str, tuple[VMNeeds, str]], *,
         selector: str, rules: Sequence[Rule] = (), where: Mapping[str, str] | None = None,
         threshold: float = 0.0, limit: int = 50) -> Plan:
    """The moves (see the module doc); `running`: VM name -> (needs, node it runs on)."""
    state = {n.name: n for n in nodes}
    placed = dict(where or {})
    before = imbalance(state.values(), selector)
    moves: list[Move] = []
    while len(moves) < limit:
        best = _best_move(state, running, placed, selector=selector, rules=rules)
        if best is None or imbalance(best[1].values(), selector) >= \
                imbalance(state.values(), selector) - threshold - 1e-9:
            break
        move, state = best
        moves.append(move)
        placed[move.vm] = move.target
        running = {**running, move.vm: (running[move.vm][0], move.target)}
    return Plan(tuple(moves), before, imbalance(state.values(), selector))


def _best_move(state: dict[str, NodeView], running: Mapping[str, tuple[VMNeeds, str]],
               placed: Mapping[str, str], *, selector: str, rules: Sequence[Rule]
               ) -> tuple[Move, dict[str, NodeView]] | None:
    """The single move off the busiest node that lowers the spread most."""
    usable = [n for n in state.values() if n.usable]
    if len(usable) < 2:
        return None
    busiest = max(usable, key=lambda n: (measure(n, selector), n.name)).name
    found: list[tuple[float, str, str, dict[str, NodeView]]] = []
    for name, (needs, node) in sorted(running.items()):
        if node != busiest or needs.pins:
            continue
        for target in usable:
            after = _try(state, needs, busiest, target.name, selector, rules, placed)
            if after is not None:
                found.append((imbalance(after.values(), selector), name, target.name, after))
    if not found:
        return None
    _spread, vm, chosen, after = min(found, key=lambda f: (f[0], f[1], f[2]))
    return Move(vm, busiest, chosen), after


def _try(state: dict[str, NodeView], needs: VMNeeds, source: str, target: str,
         selector: str, rules: Sequence[Rule], placed: Mapping[str, str]
         ) -> dict[str, NodeView] | None:
    """The nodes after moving `needs` from `source` to `target`, None if not allowed."""
    if target == source or refusal(needs, state[target], selector="mem") is not None:
        return None
    if strict_refusal(needs.name, target, rules_of(needs.name, rules),
                      {**placed, needs.name: source}) is not None:
        return None
    return {**state, source: _moved(state[source], needs, -1),
            target: _moved(state[target], needs, +1)}
