"""An independent history of where each VM ran, from the nodes' own libvirt event logs
(`herd-node --event-log`), and the check that no VM ever ran on two nodes at once.

It trusts nothing Herd writes to ZooKeeper: a VM runs on a node from a started/resumed
event until a stopped/crashed event there, or until that node's process died (a killed
test-driver node loses its guests without an event). Each closed run says what ended it
(`cause`: the DOWN event's name, or `died`). Used by the e2e fault tests and the fault
suite's recorder (tests/support/chaos/recorder.py).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

UP = frozenset({"started", "resumed"})
DOWN = frozenset({"stopped", "crashed"})


@dataclass(frozen=True)
class Run:
    vm: str
    node: str
    start: float
    end: float  # math.inf while still running
    cause: str = field(default="", compare=False)  # "stopped", "crashed", "died"; "" if open


def load(paths: Iterable[Path]) -> list[dict[str, object]]:
    events = [json.loads(line) for p in paths for line in p.read_text().splitlines() if line]
    return sorted(events, key=lambda e: float(e["t"]))


def runs(events: list[dict[str, object]], deaths: dict[str, list[float]]) -> list[Run]:
    """Every interval during which a VM ran on a node."""
    open_runs: dict[tuple[str, str], float] = {}
    out: list[Run] = []
    timeline = [(float(e["t"]), str(e["node"]), str(e["vm"]), str(e["event"]))  # type: ignore[arg-type]
                for e in events]
    timeline += [(t, node, "", "died") for node, ts in deaths.items() for t in ts]
    for t, node, vm, what in sorted(timeline):
        if what == "died":
            for key in [k for k in open_runs if k[1] == node]:
                out.append(Run(key[0], node, open_runs.pop(key), t, "died"))
        elif what in UP:
            open_runs.setdefault((vm, node), t)
        elif what in DOWN and (vm, node) in open_runs:
            out.append(Run(vm, node, open_runs.pop((vm, node)), t, what))
    out += [Run(vm, node, start, math.inf) for (vm, node), start in open_runs.items()]
    return out


def double_runs(all_runs: list[Run]) -> list[tuple[Run, Run]]:
    """Pairs of runs of one VM on two nodes that overlap in time."""
    by_vm: dict[str, list[Run]] = {}
    for r in all_runs:
        by_vm.setdefault(r.vm, []).append(r)
    return [(a, b) for rs in by_vm.values() for i, a in enumerate(rs) for b in rs[i + 1:]
            if a.node != b.node and a.start < b.end and b.start < a.end]
