"""`GET /watch` against a real ZooKeeper: the starting state, change events in order,
filters, resuming after a resourceVersion, and 410 once the ring has moved on.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio
from aiohttp import ClientResponse

from store import election
from store.client import Store
from tests.integration.test_api import Api, api_server, play_node, write_status


@pytest_asyncio.fixture
async def api(zk_hosts: str, zk_root: str, tmp_path: Path) -> AsyncIterator[Api]:
    async with api_server(zk_hosts, zk_root, tmp_path, watch_history=8) as a:
        yield a


async def next_event(resp: ClientResponse) -> dict[str, Any]:
    line = await asyncio.wait_for(resp.content.readline(), 10)
    assert line, "the stream ended"
    return dict(json.loads(line))


async def test_stream_starts_with_what_exists_then_follows(api: Api, store: Store) -> None:
    await play_node(api, store, "hv1")
    await api.define("web1")
    resp = await api.raw("GET", "/watch")
    assert resp.status == 200 and resp.content_type == "application/x-ndjson"
    first = [await next_event(resp), await next_event(resp)]
    assert [(e["type"], e["kind"], e["name"]) for e in first] == [("ADDED", "VM", "web1"),
                                                                  ("ADDED", "Node", "hv1")]
    assert first[0]["object"]["spec"]["xml"].startswith("<domain")
    await api.define("web2")
    added = await next_event(resp)
    assert (added["type"], added["name"]) == ("ADDED", "web2")
    assert int(added["resourceVersion"]) >= int(first[0]["resourceVersion"])
    await write_status(api, store, "web2", state="failed")
    modified = await next_event(resp)
    assert modified["type"] == "MODIFIED" and modified["object"]["status"]["state"] == "failed"
    await api.call("DELETE", "/vm/web2")
    deleted = await next_event(resp)
    assert (deleted["type"], deleted["name"]) == ("DELETED", "web2")
    assert deleted["object"]["metadata"]["name"] == "web2"
    assert int(deleted["resourceVersion"]) > int(modified["resourceVersion"])
    resp.close()


async def test_filters_and_timeout(api: Api, store: Store) -> None:
    await api.define("web1")
    resp = await api.raw("GET", "/watch", params={"kind": "VM", "name": "web2",
                                                  "timeout": "5"})
    await api.define("web1b")
    await play_node(api, store, "hv1")
    await api.define("web2")
    event = await next_event(resp)
    assert (event["type"], event["name"]) == ("ADDED", "web2")
    resp.close()
    resp = await api.raw("GET", "/watch", params={"kind": "Node", "timeout": "0.2"})
    assert (await next_event(resp))["name"] == "hv1"
    assert await asyncio.wait_for(resp.content.readline(), 5) == b""  # ended by the timeout


async def test_resume_after_a_resource_version(api: Api, store: Store) -> None:
    resp = await api.raw("GET", "/watch", params={"kind": "VM"})
    await api.define("web1")
    seen = await next_event(resp)
    resp.close()
    await api.define("web2")
    await api.post("/vm/web1/meta", {"selector": "vms"})
    resp = await api.raw("GET", "/watch", params={"resourceVersion": seen["resourceVersion"]})
    replay = [await next_event(resp) for _ in range(3)]
    assert [(e["type"], e["name"]) for e in replay] == [("ADDED", "web1"), ("ADDED", "web2"),
                                                        ("MODIFIED", "web1")]
    assert replay[2]["object"]["spec"]["meta"]["selector"] == "vms"
    resp.close()


async def test_resume_from_too_far_back_is_410(api: Api, store: Store) -> None:
    _, listing = await api.get("/vm")
    start = listing["resourceVersion"]
    status, err = await api.get("/watch", params={"resourceVersion": "1"})
    assert status == 410 and err["error"]["code"] == "gone"
    resp = await api.raw("GET", "/watch", params={"resourceVersion": start, "timeout": "0.1"})
    assert resp.status == 200  # from a list's resourceVersion: fine
    resp.close()
    for i in range(10):  # the ring keeps 8 events
        await api.define(f"vm{i}")
    status, err = await api.get("/watch", params={"resourceVersion": start})
    assert status == 410
    status, err = await api.get("/watch", params={"resourceVersion": "x1"})
    assert status == 422


async def test_a_change_of_primary_is_an_event_of_both_nodes(api: Api, store: Store,
                                                             zk_hosts: str, zk_root: str) -> None:
    """Coordinators contend as the node daemons' kazoo lock recipe does (an ephemeral
    sequential znode each, holding `store.election.identifier`); the lowest leads. The API
    follows the election in its cache."""
    for name in ("hv1", "hv2"):
        await play_node(api, store, name, coordinator=True)
    status, listed = await api.get("/node")
    assert [n["primary"] for n in listed["items"]] == [False, False]
    resp = await api.raw("GET", "/watch", params={"kind": "Node"})
    for _ in range(2):
        await next_event(resp)  # the starting state
    sessions = {}
    for name in ("hv1", "hv2"):
        contender = sessions[name] = Store(zk_hosts, zk_root)
        contender.start()
        contender.create(f"{store.paths.election}/{uuid.uuid4().hex}__lock__",
                         json.loads(election.identifier(name)), ephemeral=True, sequence=True)
    event = await next_event(resp)
    assert (event["type"], event["name"], event["object"]["primary"]) == (
        "MODIFIED", "hv1", True)
    status, listed = await api.get("/node")
    assert status == 200
    assert [(n["metadata"]["name"], n["primary"]) for n in listed["items"]] == [
        ("hv1", True), ("hv2", False)]
    sessions["hv1"].stop()  # hv1's session ends: hv2's contender is first now
    got = {(e["name"], e["object"]["primary"]) for e in [await next_event(resp),
                                                       await next_event(resp)]}
    assert got == {("hv1", False), ("hv2", True)}
    status, summary = await api.get("/status")
    assert status == 200 and summary["primary"] == "hv2"
    resp.close()
    sessions["hv2"].stop()
