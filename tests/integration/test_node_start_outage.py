"""Regression (found by the issue #20 flake hunt, fault suite seed 8): a herd-node restarted
a second before a ZooKeeper outage met "connection is suspended; not writing" in a
start-up write and exited with code 1. Its start-up writes (layout, registration, first
status) now wait for ZooKeeper to come back. The outage is made where the daemon writes:
its first registration attempt meets the store's own Unavailable, as in an outage."""

from __future__ import annotations

import pytest

from reconciler.config import NodeConfig
from reconciler.node.registration import NodeRegistration
from store.client import Store
from store.errors import Unavailable
from tests.integration.test_node_daemon import NODE, node_config
from tests.support.daemons import RunningDaemon as Daemon

__all__ = ["node_config"]  # the fixture, used by name


async def test_a_daemon_whose_registration_meets_an_outage_waits_and_registers(
        node_config: NodeConfig, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    register, attempts = NodeRegistration.register, []

    def outage_first(self: NodeRegistration, *, timeout: float = 120.0) -> None:
        attempts.append(self.name)
        if len(attempts) == 1:
            raise Unavailable("ZooKeeper connection is suspended; not writing")
        register(self, timeout=timeout)

    monkeypatch.setattr(NodeRegistration, "register", outage_first)
    running = Daemon(node_config)
    try:
        await running.start()  # ready: it waited, it did not exit
        assert attempts == [NODE, NODE]
        assert store.exists(store.paths.node_alive(NODE))
        assert store.get(store.paths.node_status(NODE)).doc["daemonState"] == "run"
    finally:
        await running.stop()
        await running.close()
