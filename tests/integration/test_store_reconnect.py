"""Regression (found by the fault suite, issue #8, seed 1): kazoo's default reconnect policy
doubles the pause between attempts up to an hour, so after ZooKeeper had been down for ten
seconds a client tried again only every ~6 s — longer than its session timeout. ZooKeeper
came back, gave every restored session a fresh timeout, and expired those whose clients
knocked too late: their `alive`, `owner` and election znodes vanished and healthy nodes
were fenced. A `Store` now retries at least every quarter of its session timeout.

The outage is a TCP forwarder in front of the session's ZooKeeper that the test takes down
(each new connection closed at once, each attempt timed: tests/support/tcpforward.py)
and brings back.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace

import pytest

from store.client import Store
from store.target import ZKTarget
from tests.support.tcpforward import Forwarder

SESSION_TIMEOUT = 3.0
OUTAGE = 8.0  # seconds: long enough for kazoo's default backoff to pass 3 s


@pytest.fixture
def forwarder(zk_hosts: str) -> Iterator[Forwarder]:
    f = Forwarder(("127.0.0.1", int(ZKTarget.parse(zk_hosts).hosts.split(",")[0]
                                    .rsplit(":", 1)[1])))
    yield f
    f.close()


def test_a_client_keeps_knocking_often_enough_to_come_back_within_its_session_timeout(
        forwarder: Forwarder, zk_hosts: str, zk_root: str) -> None:
    # The same identity and TLS, through the forwarder's port.
    target = replace(ZKTarget.parse(zk_hosts), hosts=f"127.0.0.1:{forwarder.port}")
    store = Store(target, zk_root, timeout=SESSION_TIMEOUT)
    store.start()
    try:
        forwarder.cut()
        down = time.monotonic()
        time.sleep(OUTAGE)  # the fault's duration: nothing to wait for
        forwarder.restore()
        back = time.monotonic()
        assert store.wait_writable(SESSION_TIMEOUT * 2), "not connected again"
        reconnected_in = time.monotonic() - back
        tried = [t for t in forwarder.attempts if t >= down]
        gaps = [b - a for a, b in zip([down, *tried], tried, strict=False)]
        assert max(gaps) <= SESSION_TIMEOUT / 2, f"attempts {max(gaps):.1f} s apart"
        assert reconnected_in < SESSION_TIMEOUT / 2
    finally:
        store.stop()
