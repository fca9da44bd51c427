"""A VM whose domain XML libvirt refuses as such (issue #13): herd-node tries once, marks it
`failed` for that spec generation with a short reason, lets the owner znode go, and then
leaves it alone: however often it is reconciled again (the periodic resync), libvirt is
not asked again, status is not rewritten, and the log does not grow with the XML. A new
spec generation (the XML fixed) is tried at once.

A real ZooKeeper and libvirt's test driver (which refuses an unknown video model with
VIR_ERR_CONFIG_UNSUPPORTED, as qemu's driver does).
"""

from __future__ import annotations

import logging

import pytest

from store.client import Store
from tests.integration.test_node_daemon import NODE, define, node, node_config, set_spec, status
from tests.support.daemons import RunningDaemon as Daemon
from tests.support.libvirt_nodes import simple_domain_xml

__all__ = ["node", "node_config"]  # fixtures used by name below

# What a resync does to a held VM, and how often: every 30 s for 10 minutes is 20 times.
RECONCILES = 50
LOG_BUDGET = 10 * 1024  # bytes the node may log meanwhile (issue #13)


def refused_xml(name: str) -> str:
    """A domain libvirt refuses, padded so that logging the XML would show at once."""
    padding = "".join(f"<!-- {i:04d} {'x' * 60} -->" for i in range(100))
    return simple_domain_xml(name).replace(
        "</domain>", f"<devices><video><model type='bogus'/></video></devices>{padding}"
                     "</domain>")


async def test_a_refused_vm_fails_once_and_is_held_until_its_spec_changes(
        node: Daemon, store: Store, caplog: pytest.LogCaptureFixture) -> None:
    define(store, "bad1", state="stopped")  # never started with the good XML
    set_spec(store, "bad1", xml=refused_xml("bad1"), state="running")  # generation 2
    doc = await status(store, "bad1", lambda d: bool(d and d.get("state") == "failed"),
                       timeout=30)
    assert doc["failedGeneration"] == 2 and doc["node"] == NODE
    assert doc["reason"].startswith("start failed: ") and "bogus" in doc["reason"]
    assert len(doc["reason"]) <= 256
    assert not store.exists(store.paths.vm_owner("bad1"))  # nothing runs: not held here
    assert await node.hypervisor.domain("bad1") is None
    before = store.get(store.paths.vm_status("bad1"))
    assert node.daemon is not None
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        for _ in range(RECONCILES):  # what the periodic resync would do, 2.5 times over
            await node.daemon.reconciler.reconcile("bad1")
    logged = sum(len(r.getMessage()) + 100 for r in caplog.records)
    assert logged < LOG_BUDGET
    after = store.get(store.paths.vm_status("bad1"))
    assert after.mzxid == before.mzxid  # not rewritten
    assert await node.hypervisor.domain("bad1") is None  # libvirt not asked to define it
    set_spec(store, "bad1", xml=simple_domain_xml("bad1"))  # fixed: generation 3
    doc = await status(store, "bad1", lambda d: bool(d and d.get("state") == "running"),
                       timeout=30)
    assert "failedGeneration" not in doc and doc["observedGeneration"] == 3
