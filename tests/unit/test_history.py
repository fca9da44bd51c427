"""The independent history checker (no I/O): runs from events and deaths, overlaps."""

from __future__ import annotations

import math

from tests.support.history import Run, double_runs, runs


def ev(t: float, node: str, vm: str, event: str) -> dict[str, object]:
    return {"t": t, "node": node, "vm": vm, "event": event, "detail": 0}


def test_a_handover_is_not_a_double_run() -> None:
    events = [ev(1, "hv1", "a", "started"), ev(5, "hv1", "a", "stopped"),
              ev(6, "hv2", "a", "started")]
    found = runs(events, {})
    assert found == [Run("a", "hv1", 1, 5), Run("a", "hv2", 6, math.inf)]
    assert double_runs(found) == []


def test_overlap_on_two_nodes_is_caught() -> None:
    events = [ev(1, "hv1", "a", "started"), ev(3, "hv2", "a", "started"),
              ev(5, "hv1", "a", "stopped")]
    pairs = double_runs(runs(events, {}))
    assert len(pairs) == 1 and {pairs[0][0].node, pairs[0][1].node} == {"hv1", "hv2"}


def test_a_node_death_ends_its_runs() -> None:
    events = [ev(1, "hv1", "a", "started"), ev(9, "hv2", "a", "started")]
    assert double_runs(runs(events, {"hv1": [8.0]})) == []
    assert double_runs(runs(events, {"hv1": [10.0]})) != []  # died too late: it overlapped
