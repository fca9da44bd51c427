"""Herd's metrics as a real Prometheus sees them (issue #16), on the 3-host QEMU cluster
of the storage modules (`storage_cluster`): Debian's `prometheus`
(`tests.support.prometheus`) scrapes herd-api (`/api/v1/metrics`, the dev cluster's
token) and every herd-node (the `metrics_address` of its config) every second, and the
tests ask it in PromQL through its HTTP API, with a guest running on hv1:

- every target is up (4: herd-api and the 3 nodes);
- the guest's CPU seconds, from hv1's exporter, are above 0 and grow;
- the reconcile histogram of hv1's `vm` controller has counted reconciles, with buckets;
- herd-api publishes the guest as running on hv1, every node alive, and request latencies.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import STORAGE_NODES
from tests.support.prometheus import Job, Prometheus, Result
from tests.support.qemucluster import Cluster

pytestmark = pytest.mark.qemu

GUEST, HOST = "prom1", "hv1"


@pytest.fixture(scope="module")
def guest(storage_cluster: Cluster) -> Iterator[str]:
    """A disk-less guest running on hv1 (in SeaBIOS), deleted after the module."""
    storage_cluster.define(GUEST, HOST)
    try:
        storage_cluster.state(GUEST, "start")
        storage_cluster.until(GUEST, lambda v: (v["status"] or {}).get("state") == "running")
        yield GUEST
    finally:
        storage_cluster.delete(GUEST)


@pytest.fixture(scope="module")
def prometheus(storage_cluster: Cluster, guest: str,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """Prometheus scraping herd-api and the 3 nodes; stopped after the module."""
    client = storage_cluster.client
    jobs = [Job("herd-api", [urllib.parse.urlsplit(client.url).netloc],
                metrics_path="/api/v1/metrics", token=client.token),
            Job("herd-node", [_metrics_address(storage_cluster.dir, n) for n in STORAGE_NODES])]
    server = Prometheus(tmp_path_factory.mktemp("prometheus"), jobs)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def test_every_target_is_up(prometheus: Prometheus) -> None:
    up = prometheus.wait_for("up == 1", lambda r: len(r) == 4)
    assert sorted(s["metric"]["job"] for s in up) == ["herd-api"] + ["herd-node"] * 3


def test_the_cpu_seconds_of_a_running_guest(prometheus: Prometheus, guest: str) -> None:
    cpu = prometheus.wait_for(f'herd_vm_cpu_seconds_total{{vm="{guest}"}} > 0')
    assert [(s["metric"]["node"], s["metric"]["job"]) for s in cpu] == [(HOST, "herd-node")]
    assert _value(cpu) > 0
    # two scrapes at least, and the counter grew between them
    rate = prometheus.wait_for(f'rate(herd_vm_cpu_seconds_total{{vm="{guest}"}}[5s]) > 0')
    assert [s["metric"]["node"] for s in rate] == [HOST]


def test_the_reconcile_histogram(prometheus: Prometheus, guest: str) -> None:
    by = prometheus.wait_for('sum by (controller, node) '
                             '(herd_reconcile_duration_seconds_count{job="herd-node"}) > 0',
                             lambda r: any(_labels(s) == ("vm", HOST) for s in r))
    assert {s["metric"]["node"] for s in by} <= set(STORAGE_NODES)
    series = f'controller="vm",node="{HOST}"'
    count = prometheus.query(f"herd_reconcile_duration_seconds_count{{{series}}}")
    assert _value(count) > 0
    # every reconcile counted falls in a bucket: +Inf's count is the total (one evaluation)
    gap = prometheus.query(f'herd_reconcile_duration_seconds_bucket{{{series},le="+Inf"}} '
                           f"- ignoring(le) herd_reconcile_duration_seconds_count{{{series}}}")
    assert _value(gap) == 0


def test_herd_api_publishes_the_guest_and_the_nodes(prometheus: Prometheus, guest: str) -> None:
    prometheus.wait_for(f'herd_vm_status{{job="herd-api",vm="{guest}",state="running",'
                        f'node="{HOST}"}} == 1')
    alive = prometheus.wait_for('herd_node_alive{job="herd-api"} == 1', lambda r: len(r) == 3)
    assert sorted(s["metric"]["node"] for s in alive) == list(STORAGE_NODES)
    latency = prometheus.wait_for('sum(herd_api_request_duration_seconds_count'
                                  '{job="herd-api"}) > 0')
    assert _value(latency) > 0


def _metrics_address(directory: Path, node: str) -> str:
    """The node's `metrics_address`, from the herd-node config the dev cluster wrote."""
    doc = yaml.safe_load((directory / "nodes" / f"{node}.yaml").read_text())
    return str(doc["metrics_address"])


def _labels(sample: dict[str, object]) -> tuple[object, object]:
    metric = sample["metric"]
    assert isinstance(metric, dict)
    return metric.get("controller"), metric.get("node")


def _value(result: Result) -> float:
    """The value of a one-sample vector."""
    assert len(result) == 1, result
    return float(result[0]["value"][1])
