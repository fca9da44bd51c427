"""`GET /vm/{vm}/console` and `GET /vm/{vm}/vnc` (issue #16): WebSockets through herd-api
to the node that runs the VM (operator tokens).

The API opens the node's WebSocket first (`server.consoles.nodelink`, a signed ticket), so
that a refusal (no such VM, not running, console in use: `force=true` takes it over, node
unreachable) is an ordinary HTTP error; then it upgrades the client's request and relays
binary messages both ways. The console follows the VM: when the node says the guest left
(`CONSOLE_GUEST_LEFT`, a live migration's end), the API waits on its cache for the VM to
run elsewhere, writes a note into the stream and attaches to the new node; a VM that
stopped instead ends the session with `CONSOLE_ENDED` and the reason. VNC (an RFB session
cannot resume on another server) ends with the node's code and reason.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from aiohttp import WSMsgType, web
from marshmallow import Schema, fields

from server.access import Ctx, reading
from server.auth import WS_PROTOCOL
from server.consoles.nodelink import (
    NODE_SESSION,
    link,
    running_node,
    unreachable,
    vm_of,
)
from server.deadline import lift_deadline
from server.errors import ApiError, conflict
from server.http import load_query, path_name
from vocabulary import CONSOLE_ENDED, CONSOLE_GUEST_LEFT

log = logging.getLogger(__name__)
FOLLOW_TIMEOUT = 120.0  # seconds for a migrated VM to show up running on its new node
Upstream = aiohttp.ClientWebSocketResponse


class ConsoleQuery(Schema):
    class Meta:
        unknown = "raise"

    force = fields.Boolean(load_default=False)


def _websocket(request: web.Request) -> web.WebSocketResponse:
    # `herd.v1`: what a browser offers beside its token (`server.auth`), chosen back.
    ws = web.WebSocketResponse(heartbeat=30.0, protocols=(WS_PROTOCOL,))
    if not ws.can_prepare(request).ok:
        raise ApiError(400, "websocket_required", "this endpoint speaks WebSocket: send "
                       "Connection: Upgrade and Upgrade: websocket")
    return ws


async def _attach(c: Ctx, request: web.Request, node: str, name: str, kind: str, *,
                  force: bool) -> Upstream:
    target = link(c, node)
    url, headers = target.request("GET", f"/vm/{name}/{kind}",
                                  **({"force": "1"} if force else {}))
    try:
        return await request.app[NODE_SESSION].ws_connect(url, headers=headers,
                                                          heartbeat=30.0)
    except aiohttp.WSServerHandshakeError as e:
        why = (e.headers.get("X-Herd-Error") if e.headers else None) or f"HTTP {e.status}"
        if e.status in (404, 409):  # the domain is not there (yet), has none, or is busy
            raise conflict(f"node {node}: {why}") from None
        raise ApiError(502, "bad_gateway", f"node {node} refused: {why}") from None
    except (aiohttp.ClientError, OSError, TimeoutError) as e:
        raise unreachable(node, e) from None


async def console(request: web.Request) -> web.WebSocketResponse:
    c = reading(request)
    name = path_name(request, "vm")
    query = load_query(request, ConsoleQuery())
    ws = _websocket(request)
    node = running_node(vm_of(c, name))
    upstream: Upstream | None = await _attach(c, request, node, name, "console",
                                              force=query["force"])
    lift_deadline(request)
    await ws.prepare(request)
    try:
        while upstream is not None:
            code, reason = await _relay(ws, upstream)
            await upstream.close()
            upstream = None
            if code is None:  # the client left
                break
            if code != CONSOLE_GUEST_LEFT:
                await ws.close(code=code, message=reason)
                break
            upstream, node = await _follow(c, request, ws, name, left=node)
    finally:
        if upstream is not None:
            await upstream.close()
    return ws


async def _follow(c: Ctx, request: web.Request, ws: web.WebSocketResponse, name: str, *,
                  left: str) -> tuple[Upstream | None, str]:
    """After the guest left `left`: attach where the VM runs now (its node), or end the
    session (None)."""
    def moved() -> str | None:
        vm = c.cache.vm(name)
        if vm is None or not vm.up:
            return "-"
        node = vm.running_on
        return node if node not in (None, left) and vm.state == "running" else None

    found = await c.cache.wait_for(("VM", name), moved, timeout=FOLLOW_TIMEOUT)
    if found is None or found == "-":
        why = "it stopped" if found == "-" else f"it did not run elsewhere within " \
              f"{FOLLOW_TIMEOUT:.0f} s"
        await ws.close(code=CONSOLE_ENDED, message=f"vm {name} left {left}: {why}".encode())
        return None, left
    try:
        upstream = await _attach(c, request, found, name, "console", force=False)
    except ApiError as e:
        await ws.close(code=CONSOLE_ENDED, message=e.message.encode()[:120])
        return None, left
    await ws.send_bytes(f"\r\n[herd: {name} moved from {left} to {found}; console "
                        f"attached there]\r\n".encode())
    return upstream, found


async def vnc(request: web.Request) -> web.WebSocketResponse:
    c = reading(request)
    name = path_name(request, "vm")
    load_query(request, _NoQuery())
    ws = _websocket(request)
    node = running_node(vm_of(c, name))
    upstream = await _attach(c, request, node, name, "vnc", force=False)
    lift_deadline(request)
    try:
        await ws.prepare(request)
        code, reason = await _relay(ws, upstream)
        if code is not None:
            await ws.close(code=CONSOLE_ENDED if code == CONSOLE_GUEST_LEFT else code,
                           message=reason)
    finally:
        await upstream.close()
    return ws


class _NoQuery(Schema):
    class Meta:
        unknown = "raise"


async def _relay(ws: web.WebSocketResponse, upstream: Upstream) -> tuple[int | None, bytes]:
    """Messages both ways until one side ends: the node's close code and reason, or
    (None, b"") when the client left first."""
    async def down() -> tuple[int | None, bytes]:
        while True:
            msg = await upstream.receive()
            if msg.type == WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
            elif msg.type == WSMsgType.CLOSE:
                return int(msg.data), str(msg.extra or "").encode()[:120]
            elif msg.type in (WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                return CONSOLE_ENDED, b"the node's endpoint went away"

    async def up() -> tuple[int | None, bytes]:
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                await upstream.send_bytes(msg.data)
            elif msg.type == WSMsgType.TEXT:
                await upstream.send_bytes(msg.data.encode())
        return None, b""

    tasks = [asyncio.create_task(down()), asyncio.create_task(up())]
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    try:
        return next(iter(done)).result()
    except (ConnectionError, aiohttp.ClientError) as e:
        log.info("console relay: %s", e)
        return None, b""

