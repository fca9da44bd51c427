"""herd-api's `/metrics` (prometheus-client, `server.metrics`) scraped from the real app on a
real ZooKeeper: one `herd_vm_status` per VM (desired, observed state, node), nodes alive
or not, no `_created` series, text that `promtool check metrics` accepts; and every metric
the Grafana dashboard and the alert rules name (`monitoring/`) is one that herd-api
publishes (scraped here) or herd-node does (`reconciler.metrics.METRIC_NAMES`).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from reconciler.metrics import METRIC_NAMES
from store.client import Store
from tests.integration.test_api import Api, api_server, play_node, write_status
from tests.unit.test_monitoring import (
    dashboard_expressions,
    metric_names,
    promtool,
    rule_expressions,
)


@pytest_asyncio.fixture
async def api(zk_hosts: str, zk_root: str, tmp_path: Path) -> AsyncIterator[Api]:
    async with api_server(zk_hosts, zk_root, tmp_path) as a:
        yield a


async def scrape(api: Api) -> str:
    resp = await api.raw("GET", "/metrics")
    assert resp.status == 200 and resp.content_type == "text/plain"
    return await resp.text()


def samples(text: str, family: str) -> dict[tuple[tuple[str, str], ...], float]:
    found: dict[str, Metric] = {f.name: f for f in text_string_to_metric_families(text)}
    return {tuple(sorted(s.labels.items())): s.value for s in found[family].samples}


def published(text: str) -> set[str]:
    """The metric names of the exposition (its `# TYPE` lines)."""
    return set(re.findall(r"^# TYPE (\S+) ", text, flags=re.MULTILINE))


async def test_vm_status_and_node_alive(api: Api, store: Store) -> None:
    await play_node(api, store, "hv1")
    await play_node(api, store, "hv2", alive=False)
    await api.define("web1", state="running")
    await write_status(api, store, "web1", state="running", node="hv1")
    await api.define("web2", state="running")
    await write_status(api, store, "web2", state="failed", node="hv2")
    await api.define("web3")
    text = await scrape(api)
    assert samples(text, "herd_vm_status") == {
        (("desired", "running"), ("node", "hv1"), ("state", "running"), ("vm", "web1")): 1,
        (("desired", "running"), ("node", "hv2"), ("state", "failed"), ("vm", "web2")): 1,
        (("desired", "stopped"), ("node", ""), ("state", "stopped"), ("vm", "web3")): 1}
    assert samples(text, "herd_node_alive") == {(("node", "hv1"),): 1, (("node", "hv2"),): 0}
    assert samples(text, "herd_vms") == {(("state", "failed"),): 1, (("state", "running"),): 1,
                                         (("state", "stopped"),): 1}
    assert samples(text, "herd_api_cache_synced") == {(): 1}
    assert "_created" not in text
    assert samples(text, "herd_api_requests")[
        (("method", "POST"), ("route", "/api/v1/vm"), ("status", "201"))] == 3


async def test_exposition_passes_promtool(api: Api, store: Store) -> None:
    await play_node(api, store, "hv1")
    await api.define("web1")
    text = await scrape(api)
    result = await asyncio.to_thread(promtool, "check", "metrics", stdin=text)
    assert result.returncode == 0, result.stdout + result.stderr


async def test_dashboard_and_alerts_name_only_published_metrics(api: Api) -> None:
    api_names = published(await scrape(api))
    assert {"herd_api_requests_total", "herd_api_request_duration_seconds", "herd_vms",
            "herd_vm_status", "herd_nodes", "herd_node_alive", "herd_api_watchers",
            "herd_api_cache_synced", "herd_api_resource_version",
            "herd_api_define_transactions_total", "herd_api_define_requests_total",
            "herd_api_define_fallbacks_total", "herd_api_audit_written_total",
            "herd_api_audit_lost_total"} <= api_names
    known = api_names | METRIC_NAMES
    used = metric_names(dashboard_expressions() + rule_expressions())
    assert "herd_vm_cpu_seconds_total" in used and "herd_fences_total" in used
    assert used - known == set()
