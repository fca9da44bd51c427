"""The checks of `tests.support.hostwatch` on hand-made histories: each must catch what it
is there to catch (a checker that cannot fail proves nothing), and must not cry wolf over
a clean live migration as libvirt reports it."""

from __future__ import annotations

from typing import Any

from tests.support import hostwatch


def ev(t: float, node: str, event: str, detail: str, vm: str = "g") -> dict[str, Any]:
    return {"t": t, "kind": "event", "node": node, "vm": vm, "event": event, "detail": detail}


def sample(t: float, node: str, **domains: str) -> dict[str, Any]:
    return {"t": t, "kind": "sample", "node": node,
            "domains": {vm: [state, 1] for vm, state in domains.items()}}


def rnd(t: float) -> dict[str, Any]:
    return {"t": t, "kind": "round", "began": t - 0.01, "order": ["hv1", "hv2", "hv3"]}


# A live migration hv1 -> hv2 in libvirt's order (DESIGN.md section 6).
MIGRATION = [
    ev(1.0, "hv1", "started", "booted"), ev(1.0, "hv1", "resumed", "unpaused"),
    sample(1.1, "hv1", g="running"), sample(1.1, "hv2"), rnd(1.1),
    ev(5.0, "hv2", "started", "migrated"), sample(5.1, "hv2", g="paused"), rnd(5.1),
    ev(5.3, "hv1", "suspended", "migrated"), ev(5.32, "hv2", "resumed", "migrated"),
    sample(5.4, "hv1", g="paused"), sample(5.4, "hv2", g="running"), rnd(5.4),
    ev(6.9, "hv1", "stopped", "migrated"), sample(7.0, "hv1"), rnd(7.0),
]


def test_a_clean_live_migration_passes_every_check() -> None:
    assert hostwatch.double_runs(hostwatch.running_from_events(MIGRATION, end=10)) == []
    assert hostwatch.double_runs(hostwatch.running_from_samples(MIGRATION)) == []
    assert hostwatch.restarts(MIGRATION, "g") == []
    assert hostwatch.absences(MIGRATION, "g", since=0, until=10) == []
    assert hostwatch.where(MIGRATION, "g") == ["hv2"]


def test_a_guest_resumed_on_two_hosts_is_a_double_run() -> None:
    bad = [*MIGRATION[:5], ev(5.0, "hv2", "started", "booted"),
           ev(5.0, "hv2", "resumed", "unpaused")]
    pairs = hostwatch.double_runs(hostwatch.running_from_events(bad, end=10))
    assert [(a.node, b.node) for a, b in pairs] == [("hv1", "hv2")]


def test_two_hosts_sampled_running_at_once_is_a_double_run() -> None:
    bad = [sample(1.0, "hv1", g="running"), sample(1.0, "hv2", g="running"), rnd(1.0),
           sample(2.0, "hv1", g="running"), sample(2.0, "hv2", g="running"), rnd(2.0)]
    assert len(hostwatch.double_runs(hostwatch.running_from_samples(bad))) == 1


def test_samples_never_invent_an_overlap_during_the_handover() -> None:
    # hv1 last seen running at 5.0, hv2 first seen running at 5.05: no overlap claimed.
    handover = [sample(5.0, "hv1", g="running"), sample(5.05, "hv2", g="running"),
                sample(5.1, "hv1", g="paused")]
    assert hostwatch.double_runs(hostwatch.running_from_samples(handover)) == []


def test_a_reboot_or_a_plain_stop_is_a_restart() -> None:
    rebooted = [*MIGRATION, ev(8.0, "hv2", "stopped", "destroyed"),
                ev(8.5, "hv2", "started", "booted")]
    assert [(e["event"], e["detail"]) for e in hostwatch.restarts(rebooted, "g")] == [
        ("started", "booted"), ("stopped", "destroyed")]


def test_a_round_with_the_guest_nowhere_is_an_absence() -> None:
    gone = [*MIGRATION, sample(8.0, "hv2"), rnd(8.0)]
    assert hostwatch.absences(gone, "g", since=0, until=10) == [8.0]
    assert hostwatch.absences(gone, "g", since=0, until=7.5) == []


def test_a_migration_between_two_questions_of_one_round_is_no_absence() -> None:
    # hv2 -> hv1 between asking hv1 (not there yet) and hv2 (gone): never nowhere.
    quick = [sample(1.0, "hv2", g="running"), rnd(1.0),
             sample(2.0, "hv2"), rnd(2.0), sample(2.1, "hv1", g="running"), rnd(2.1)]
    assert hostwatch.absences(quick, "g", since=0, until=10) == []
    # hv1 -> hv2: hv1 asked first (gone), hv2 later (not there yet): truly nowhere.
    gap = [sample(1.0, "hv1", g="running"), rnd(1.0),
           sample(2.0, "hv1"), rnd(2.0), sample(2.1, "hv2", g="running"), rnd(2.1)]
    assert hostwatch.absences(gap, "g", since=0, until=10) == [2.0]
    # Still nowhere in the round after: a gap whatever the order.
    long = [*quick[:4], rnd(2.05), *quick[4:]]
    assert hostwatch.absences(long, "g", since=0, until=10) == [2.0, 2.05]


def test_an_unreachable_host_ends_its_runs() -> None:
    fenced = [ev(1.0, "hv1", "resumed", "unpaused"),
              {"t": 3.0, "kind": "unreachable", "node": "hv1", "error": "gone"},
              ev(4.0, "hv2", "resumed", "unpaused")]
    runs = hostwatch.running_from_events(fenced, end=10)
    assert [(r.node, r.start, r.end) for r in runs] == [("hv1", 1.0, 3.0), ("hv2", 4.0, 10)]
    assert hostwatch.double_runs(runs) == []
