"""The one builder of a node's status (`store.nodestatus`): the daemon and the primary
each set their own fields and keep the other's (no I/O)."""

from __future__ import annotations

import pytest

from store.nodestatus import reported, with_domain_state


def test_the_daemon_keeps_the_primarys_domain_state_and_seeds_it_only_when_absent() -> None:
    old = {"domainState": "flushing", "daemonState": "run", "heartbeat": 1.0}
    new = reported(old, {"daemonState": "run", "resources": {"memFree": 1}},
                   seed_domain_state="ready", now=2.0)
    assert new == {"domainState": "flushing", "daemonState": "run",
                   "resources": {"memFree": 1}, "heartbeat": 2.0}
    assert reported({}, {}, seed_domain_state="flushed", now=3.0) == {
        "domainState": "flushed", "heartbeat": 3.0}


def test_the_primary_keeps_the_daemons_report() -> None:
    old = {"domainState": "ready", "daemonState": "run", "resources": {"memFree": 1}}
    assert with_domain_state(old, "flushed", daemonState="fenced") == {
        "domainState": "flushed", "daemonState": "fenced", "resources": {"memFree": 1}}


def test_neither_writer_sets_the_others_fields() -> None:
    with pytest.raises(ValueError, match="domainState"):
        reported({}, {"domainState": "ready"}, seed_domain_state="ready", now=1.0)
    with pytest.raises(ValueError, match="heartbeat"):
        with_domain_state({}, "ready", heartbeat=1.0)
