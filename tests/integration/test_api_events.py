"""GET /event: the cluster's event log through the API, filtered by VM and kind, with
bad queries refused field by field."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from server.audit import TRIM_EVERY
from store import events
from store.client import Store
from tests.integration.test_api import Api, api_server


@pytest_asyncio.fixture
async def api(zk_hosts: str, zk_root: str, tmp_path: Path) -> AsyncIterator[Api]:
    async with api_server(zk_hosts, zk_root, tmp_path) as a:
        yield a


async def test_events_by_vm_and_kind_newest_last(api: Api, store: Store) -> None:
    events.record(store, "migrated", "web1: hv1 -> hv2", vm="web1", source="hv1",
                  target="hv2", duration=1.9, downtimeMs=16)
    events.record(store, "fenced", "hv3 powered off", node="hv3")
    events.record(store, "migrated", "web1: hv2 -> hv1", vm="web1", source="hv2",
                  target="hv1", duration=2.0, downtimeMs=15)
    events.record(store, "migrated", "db1: hv1 -> hv3", vm="db1", source="hv1", target="hv3")
    status, body = await api.get("/event?vm=web1&kind=migrated")
    assert status == 200 and body["count"] == 2
    assert [(e["source"], e["target"], e["downtimeMs"]) for e in body["items"]] == [
        ("hv1", "hv2", 16), ("hv2", "hv1", 15)]
    status, body = await api.get("/event?limit=2")
    assert [e["message"] for e in body["items"]] == ["web1: hv2 -> hv1", "db1: hv1 -> hv3"]
    status, body = await api.get("/event?kind=fenced")
    assert [e["node"] for e in body["items"]] == ["hv3"]


async def test_bad_event_queries_name_the_field(api: Api) -> None:
    status, body = await api.get("/event?limit=0&kind=Fenced&vm=-x")
    assert status == 422
    assert set(body["error"]["details"]) == {"limit", "kind", "vm"}
    status, body = await api.get("/event?colour=blue")
    assert status == 422 and "colour" in body["error"]["details"]


async def test_a_burst_of_audited_writes_keeps_the_primarys_events(api: Api,
                                                                   store: Store) -> None:
    events.record(store, "fenced", "hv3 powered off", node="hv3")
    writes = events.KEEP + 2 * TRIM_EVERY  # more than either log keeps
    for _ in range(writes):
        status, _body = await api.post("/config", {"maintenance": False})
        assert status == 200
    status, body = await api.get("/event?kind=fenced")
    assert [e["node"] for e in body["items"]] == ["hv3"]  # not pushed out by the API
    status, body = await api.get(f"/event?kind=audit&limit={events.KEEP}")
    assert body["count"] == events.KEEP
    assert {e["route"] for e in body["items"]} == {"/api/v1/config"}
    assert len(store.children(store.paths.audit)) <= events.KEEP + TRIM_EVERY  # trimmed
    status, body = await api.get("/event?limit=2")  # both logs, merged by time
    assert [e["kind"] for e in body["items"]] == ["audit", "audit"]
