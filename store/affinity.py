"""Affinity rules in placement (issue #17): `together` (on one node) and `apart` (on
different nodes), each strict (placement refuses, or waits, naming the rule) or soft
(preferred; broken only when nothing else fits, and reported).

`Rule` is the typed rule (read from `/rules/<name>` by `store.rules`). The checks are pure
and take `where`, the node of every other VM that counts — placed and desired running
(`store.placement.Planner` keeps it up to date as a batch places VMs):
- `strict_refusal(vm, node, rules, where)`: the first strict rule that `vm` on `node`
  would break, as a reason naming the rule (None: none);
- `soft_breaks(vm, node, rules, where)`: the soft rules it would break.
A `together` rule is broken when a member is placed on another node; an `apart` rule when
a member is placed on the same node. Members with no node yet do not count.
Used by `store.placement`, the primary's controllers and the API's explicit moves.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

APART, TOGETHER = "apart", "together"


@dataclass(frozen=True)
class Rule:
    name: str
    kind: str  # APART | TOGETHER
    strict: bool
    vms: tuple[str, ...]

    def breaks(self, vm: str, node: str, where: Mapping[str, str]) -> str | None:
        """The member of this rule that `vm` on `node` would part from (together) or join
        (apart), None if it keeps the rule (or is no member)."""
        if vm not in self.vms:
            return None
        for other in self.vms:
            placed = where.get(other)
            if other == vm or placed is None:
                continue
            if (self.kind == TOGETHER) == (placed != node):
                return other
        return None

    def describe(self, vm: str, node: str, where: Mapping[str, str]) -> str:
        other = self.breaks(vm, node, where)
        how = "apart from" if self.kind == APART else "together with"
        rule = f"{'strict' if self.strict else 'soft'} rule {self.name!r}"
        return f"{rule} keeps {vm} {how} {other} (on {where.get(str(other))})"


def strict_refusal(vm: str, node: str, rules: Iterable[Rule],
                   where: Mapping[str, str]) -> str | None:
    for rule in rules:
        if rule.strict and rule.breaks(vm, node, where) is not None:
            return rule.describe(vm, node, where)
    return None


def soft_breaks(vm: str, node: str, rules: Iterable[Rule],
                where: Mapping[str, str]) -> list[Rule]:
    return [r for r in rules if not r.strict and r.breaks(vm, node, where) is not None]


def going_together(vms: Iterable[str], node: str, rules: Sequence[Rule],
                   where: Mapping[str, str]) -> set[str]:
    """Those of `vms` that may all move to `node` at once without breaking a strict rule:
    a `together` group goes as one; of an `apart` pair the first by name goes. While the
    move breaks a rule, the last VM (by name) that breaks one stays, and it is judged
    again."""
    going = set(vms)
    while going:
        trial = {**where, **dict.fromkeys(going, node)}
        refused = sorted(vm for vm in going
                         if strict_refusal(vm, node, rules_of(vm, rules), trial) is not None)
        if not refused:
            break
        going.discard(refused[-1])
    return going


def rules_of(vm: str, rules: Iterable[Rule]) -> list[Rule]:
    """The rules that name `vm` (the only ones its placement must look at)."""
    return [r for r in rules if vm in r.vms]


def by_vm(rules: Iterable[Rule]) -> dict[str, list[Rule]]:
    """Each VM's rules, for many placements in a row (each looks at its own rules only)."""
    out: dict[str, list[Rule]] = {}
    for rule in rules:
        for vm in rule.vms:
            out.setdefault(vm, []).append(rule)
    return out


def broken(rules: Iterable[Rule], where: Mapping[str, str]) -> list[tuple[Rule, str]]:
    """Every rule broken by the placements in `where`, with one member that breaks it
    (for status and tests: a placement must never leave a strict one broken)."""
    found = []
    for rule in rules:
        for vm in rule.vms:
            node = where.get(vm)
            if node is not None and rule.breaks(vm, node, where) is not None:
                found.append((rule, vm))
                break
    return found
