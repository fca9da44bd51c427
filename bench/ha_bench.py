"""Benchmark: the HA policies' pure planners at the scale of issue #19 (100 nodes, 10,000
VMs), each beside the naive form it replaced or would be written as.

- Placement of a batch of 10,000 VMs with 1,000 affinity rules (strict `apart` pairs and
  soft `together` pairs), most constrained first, against the same batch without rules:
  what the rules cost per placement. Naive: each VM's rules found by scanning every rule.
- Exact accounting of 10,000 placements over 100 nodes (`store.placement.account`, once
  per scheduling pass).
- A rebalance plan (`store.rebalance.plan`, 50 moves at most) on 100 nodes, one of them
  holding 300 VMs, the rest 98 each, 100 strict `apart` rules. Naive: every candidate
  move judged on a copy of the whole cluster.
Run: `.venv/bin/python -m bench.ha_bench [--quick]`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bench.common import save
from store import rebalance
from store.affinity import APART, TOGETHER, Rule, rules_of, strict_refusal
from store.placement import NodeView, Placed, Planner, VMNeeds, account, refusal, select

NODES, VMS, RULES = 100, 10_000, 1_000


def nodes(count: int, *, vms: int = 0) -> list[NodeView]:
    return [NodeView(f"hv{i:03d}", True, "run", "ready", mem_total=1 << 20,
                     mem_free=(1 << 20) - vms * 512, mem_prov=vms * 512, vcpu_alloc=vms,
                     vms=vms) for i in range(count)]


def batch(count: int) -> list[VMNeeds]:
    return [VMNeeds(f"vm{i:05d}", 512, 1, selector="vms") for i in range(count)]


def rules(count: int, vms: int) -> list[Rule]:
    """Pairs of VMs: even rules strict apart, odd ones soft together."""
    return [Rule(f"r{i}", APART if i % 2 == 0 else TOGETHER, i % 2 == 0,
                 (f"vm{2 * i % vms:05d}", f"vm{(2 * i + 1) % vms:05d}")) for i in range(count)]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


class NaivePlanner(Planner):
    """Finds each VM's rules by scanning every rule (as `select` alone does)."""

    def place(self, vm: VMNeeds, *, exclude: Sequence[str] = (),
              carrying: bool = False) -> str | None:
        target = select(vm, self.nodes.values(), default=self.default, rules=self.rules,
                        where=self.where)
        if target is not None:
            self.nodes[target] = self.nodes[target].with_vm(vm.memory_mib, vm.vcpus)
            self.where[vm.name] = target
        return target


def place_all(vms: list[VMNeeds], with_rules: list[Rule], *,
              planner: type[Planner] = Planner) -> list[str | None]:
    made = planner(nodes(NODES), default="vms", rules=with_rules)
    return [made.place(vm) for vm in made.most_constrained_first(vms)]


def naive_plan(nodes_: Sequence[NodeView], running: Mapping[str, tuple[VMNeeds, str]], *,
               selector: str, rules: Sequence[Rule], limit: int) -> list[rebalance.Move]:
    """The first rebalance planner: every candidate move judged on a copy of the cluster
    (and of every placement), then the imbalance of the copy computed whole."""
    state, placed = {n.name: n for n in nodes_}, {v: on for v, (_n, on) in running.items()}
    moves: list[rebalance.Move] = []
    while len(moves) < limit:
        usable = [n for n in state.values() if n.usable]
        busiest = max(usable, key=lambda n: (rebalance.measure(n, selector), n.name)).name
        found = []
        for name, (needs, node) in sorted(running.items()):
            if node != busiest:
                continue
            for target in usable:
                if target.name == busiest or refusal(needs, state[target.name],
                                                     selector="mem") is not None:
                    continue
                if strict_refusal(name, target.name, rules_of(name, rules),
                                  {**placed, name: busiest}) is not None:
                    continue
                after = {**state, busiest: rebalance._moved(state[busiest], needs, -1),
                         target.name: rebalance._moved(state[target.name], needs, +1)}
                found.append((rebalance.imbalance(after.values(), selector), name,
                              target.name, after))
        spread, vm, chosen, after = min(found, key=lambda f: (f[0], f[1], f[2]))
        if spread >= rebalance.imbalance(state.values(), selector) - 0.5:
            break
        moves.append(rebalance.Move(vm, busiest, chosen))
        state, placed[vm] = after, chosen
        running = {**running, vm: (running[vm][0], chosen)}
    return moves


def accounting(vms: int) -> list[NodeView]:
    placed = [Placed(f"hv{i % NODES:03d}", 512, 1, to_run=True, counted=i % 10 != 0)
              for i in range(vms)]
    return account(nodes(NODES), placed)


def lopsided() -> tuple[list[NodeView], dict[str, tuple[VMNeeds, str]], list[Rule]]:
    """One node with 300 VMs, 99 with 98: a node back after a flush, say."""
    cluster = nodes(NODES, vms=98)
    cluster[0] = nodes(1, vms=300)[0]
    running: dict[str, tuple[VMNeeds, str]] = {}
    for i in range(300 + 98 * (NODES - 1)):
        node = "hv000" if i < 300 else f"hv{1 + (i - 300) // 98:03d}"
        running[f"vm{i:05d}"] = (VMNeeds(f"vm{i:05d}", 512, 1), node)
    apart = [Rule(f"a{i}", APART, True, (f"vm{i:05d}", f"vm{300 + i:05d}")) for i in range(100)]
    return cluster, running, apart


def main(quick: bool = False) -> None:
    vms = batch(VMS // 10 if quick else VMS)
    many = rules(RULES // 10 if quick else RULES, len(vms))
    bare_s, bare = timed(lambda: place_all(vms, []))
    ruled_s, ruled = timed(lambda: place_all(vms, many))
    naive_s, naive = timed(lambda: place_all(vms, many, planner=NaivePlanner))
    assert None not in bare and ruled == naive
    acc_s, _ = timed(lambda: accounting(len(vms)))
    cluster, running, apart = lopsided()
    where = {vm: on for vm, (_needs, on) in running.items()}
    plan_s, found = timed(lambda: rebalance.plan(cluster, running, selector="vms", rules=apart,
                                                 where=where, threshold=0.5))
    few = 2 if quick else 5
    slow_s, slow = timed(lambda: naive_plan(cluster, running, selector="vms", rules=apart,
                                            limit=few))
    assert list(found.moves[:few]) == slow  # the same choices, move by move
    per = 1e6 / len(vms)
    figures = {"vms": len(vms), "nodes": NODES, "rules": len(many), "place_bare_s": bare_s,
               "place_rules_s": ruled_s, "place_naive_s": naive_s, "account_s": acc_s,
               "rebalance_s": plan_s, "rebalance_moves": len(found.moves),
               "rebalance_before": found.before, "rebalance_after": found.after,
               "naive_rebalance_s": slow_s, "naive_rebalance_moves": len(slow)}
    save("ha", figures, [
        (f"place {len(vms):,} VMs on {NODES} nodes, {len(many):,} rules: per VM",
         f"{ruled_s * per:,.0f} µs ({ruled_s:.2f} s; without rules {bare_s * per:,.0f} µs)",
         f"{naive_s * per:,.0f} µs (every rule scanned per VM)", "—"),
        (f"exact accounting, {len(vms):,} placements", f"{acc_s * 1e3:.1f} ms", "—", "—"),
        (f"rebalance plan, {NODES} nodes, {len(running):,} VMs (one node 300), 100 rules: "
         "per move",
         f"{plan_s / max(1, len(found.moves)) * 1e3:,.0f} ms ({len(found.moves)} moves, "
         f"spread {found.before:g} -> {found.after:g})",
         f"{slow_s / max(1, len(slow)) * 1e3:,.0f} ms (each candidate on a copy of the "
         f"cluster; {len(slow)} moves)", "—"),
    ])


if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
