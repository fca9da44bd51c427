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

from collections import ChainMap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from store.affinity import Rule, by_vm, strict_refusal
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
               placed: dict[str, str], *, selector: str, rules: Sequence[Rule]
               ) -> tuple[Move, dict[str, NodeView]] | None:
    """The single move off the busiest node that lowers the spread most (ties: by VM, then
    target name). A candidate is judged by the two measures it changes, against the
    extremes of the untouched nodes, never on a copy of the cluster; of the VMs without
    rules that need the same, only the first by name can win, so only it is tried."""
    usable = sorted((n for n in state.values() if n.usable), key=lambda n: n.name)
    if len(usable) < 2:
        return None
    ranked = sorted((measure(n, selector), n.name) for n in usable)
    source = max(usable, key=lambda n: (measure(n, selector), n.name))
    mine = by_vm(rules)
    best: tuple[float, str, str] | None = None
    for name, needs in _contenders(running, source.name, mine):
        left = _after(source, needs, -1, selector)
        for target in usable:
            if not _allowed(needs, source.name, target, mine.get(name, ()), placed):
                continue
            spread = _spread(ranked, {source.name: left,
                                      target.name: _after(target, needs, +1, selector)})
            if best is None or (spread, name, target.name) < best:
                best = (spread, name, target.name)
    if best is None:
        return None
    _spread_after, vm, chosen = best
    needs = running[vm][0]
    return Move(vm, source.name, chosen), {**state, source.name: _moved(source, needs, -1),
                                           chosen: _moved(state[chosen], needs, +1)}


def _contenders(running: Mapping[str, tuple[VMNeeds, str]], source: str,
                rules: Mapping[str, Sequence[Rule]]) -> list[tuple[str, VMNeeds]]:
    """The VMs on `source` that may move, by name; of those without rules and with the
    same needs, the first only."""
    seen: set[VMNeeds] = set()
    out = []
    for name, needs in sorted((n, v) for n, (v, on) in running.items()
                              if on == source and not v.pins):
        if name not in rules:
            alike = replace(needs, name="")
            if alike in seen:
                continue
            seen.add(alike)
        out.append((name, needs))
    return out


def _after(node: NodeView, vm: VMNeeds, sign: int, selector: str) -> float:
    """`measure` of `node` once `vm` left it (-1) or arrived (+1), without building it."""
    if selector == "mem":
        return (node.mem_total - node.mem_free + sign * vm.memory_mib) / max(node.mem_total, 1)
    if selector == "memprov":
        return (node.mem_prov + sign * vm.memory_mib) / max(node.mem_total, 1)
    if selector == "vms":
        return float(node.vms + sign)
    return float(node.vcpu_alloc + sign * vm.vcpus)


def _allowed(needs: VMNeeds, source: str, target: NodeView, rules: Sequence[Rule],
             placed: dict[str, str]) -> bool:
    if target.name == source or refusal(needs, target, selector="mem") is not None:
        return False
    return not rules or strict_refusal(needs.name, target.name, rules,
                                       ChainMap({needs.name: source}, placed)) is None


def _spread(ranked: Sequence[tuple[float, str]], changed: Mapping[str, float]) -> float:
    """The imbalance once the nodes in `changed` have their new measures (`ranked`: every
    usable node's measure now, ascending): the untouched nodes count by their extremes."""
    values = list(changed.values())
    if len(ranked) > len(changed):
        values.append(next(v for v, n in ranked if n not in changed))
        values.append(next(v for v, n in reversed(ranked) if n not in changed))
    return round(max(values) - min(values), 6)
