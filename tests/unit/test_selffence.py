"""Self-fencing's pure parts: the watchdog's deadlines and request lines, and how long the
primary waits before it treats a `fence: self` node as fenced."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.cluster.selffence import SELF_FENCE_MARGIN, fence_wait
from reconciler.watchdog.deadlines import Deadlines
from reconciler.watchdog.mux import Firing, WatchdogMux
from vocabulary import FenceMode


def test_a_watch_expires_once_at_its_deadline() -> None:
    d = Deadlines()
    d.pet("hv1", 10.0, now=100.0, pid=7)
    assert d.expired(109.9) == []
    assert d.next_deadline() == 110.0
    [gone] = d.expired(110.0)
    assert (gone.name, gone.pid) == ("hv1", 7)
    assert d.expired(200.0) == [] and d.next_deadline() is None


def test_a_pet_moves_the_deadline_and_a_new_daemon_takes_the_watch_over() -> None:
    d = Deadlines()
    d.pet("hv1", 10.0, now=100.0, pid=7)
    d.pet("hv1", 5.0, now=108.0, pid=8)  # the restarted daemon, a shorter timeout
    assert d.expired(112.9) == []
    [gone] = d.expired(113.0)
    assert gone.pid == 8


def test_disarm_ends_a_watch_and_others_keep_theirs() -> None:
    d = Deadlines()
    d.pet("hv1", 10.0, now=0.0, pid=1)
    d.pet("hv2", 20.0, now=0.0, pid=2)
    assert d.disarm("hv1") and not d.disarm("hv1")
    assert [w.name for w in d.expired(30.0)] == ["hv2"]


def _mux(tmp_path: Path) -> WatchdogMux:
    return WatchdogMux(tmp_path / "wd.sock", Firing(power_off=lambda: []), clock=lambda: 50.0)


@pytest.mark.parametrize(("line", "reply"), [
    ("pet hv1 6", "ok 6"),
    ("pet hv1 0.5", "error timeout must be 1..3600 seconds"),
    ("pet hv1 soon", "error timeout must be 1..3600 seconds"),
    ("pet hv1", "error say: pet NAME TIMEOUT | disarm NAME | status"),
    ("disarm hv1", "ok 0"),
    ("reset", "error say: pet NAME TIMEOUT | disarm NAME | status"),
])
def test_request_lines(tmp_path: Path, line: str, reply: str) -> None:
    assert _mux(tmp_path).answer(line.split(), pid=None) == reply


def test_status_names_the_watches_left(tmp_path: Path) -> None:
    mux = _mux(tmp_path)
    mux.answer(["pet", "hv1", "6"], pid=3)
    assert mux.status() == {"watches": {"hv1": 6.0}, "fired": [], "resetHost": False}


def test_nodes_fenced_by_an_agent_wait_the_fence_timeout() -> None:
    for mode in (FenceMode.AUTO, FenceMode.NONE):
        assert fence_wait(mode, {"timeout": 60, "fresh": 7}, fence_timeout=8.0) == 8.0


def test_a_self_fencing_node_waits_its_watchdog_and_the_pets_freshness() -> None:
    wait = fence_wait(FenceMode.SELF, {"timeout": 60, "fresh": 7}, fence_timeout=8.0)
    assert wait == 60 + 7 + SELF_FENCE_MARGIN
    assert fence_wait(FenceMode.SELF, {"timeout": 1, "fresh": 0}, fence_timeout=30.0) == 30.0


@pytest.mark.parametrize("watchdog", [None, {}, {"timeout": None}, {"timeout": "x"}])
def test_a_self_fencing_node_without_an_armed_watchdog_is_never_fenced(
        watchdog: dict[str, object] | None) -> None:
    assert fence_wait(FenceMode.SELF, watchdog, fence_timeout=8.0) is None
