"""herd-node measures its controllers (`reconciler.runtime.controller`): a VM started by the VM
controller shows in the process's prometheus-client registry as reconciles done, with
their durations, and the queue depth is published (read through the registry as a
scraper would see it)."""

from __future__ import annotations

from prometheus_client import REGISTRY

from store.client import Store
from tests.integration.test_node_daemon import NODE, define, node, node_config, status
from tests.support.daemons import RunningDaemon as Daemon

__all__ = ["node", "node_config"]  # fixtures used by name below


def sample(name: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, {"controller": "vm", "node": NODE, **labels})
    return 0.0 if value is None else value


async def test_the_vm_controller_counts_and_times_its_reconciles(node: Daemon,
                                                                 store: Store) -> None:
    done = sample("herd_reconcile_total", result="done")
    timed = sample("herd_reconcile_duration_seconds_count")
    define(store, "web1")
    await status(store, "web1", lambda doc: doc is not None and doc.get("state") == "running")
    assert node.daemon is not None
    await node.daemon.queue.wait_idle()
    assert sample("herd_reconcile_total", result="done") > done
    assert sample("herd_reconcile_duration_seconds_count") > timed
    assert REGISTRY.get_sample_value("herd_workqueue_depth",
                                     {"controller": "vm", "node": NODE}) == 0
