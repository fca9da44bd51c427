"""The node endpoint's WebSockets: a VM's serial console and its VNC stream (issue #16).

`GET /vm/{vm}/console[?force=1]` opens libvirt's console of the domain here
(`reconciler.libvirt.console.ConsoleStream`) and carries its bytes both ways as binary
WebSocket messages. It ends with a close code that tells herd-api what happened:
`GUEST_LEFT` (the domain no longer runs here: stopped, or migrated away, which the API
follows to the VM's new node) or `TAKEN_OVER` (another session forced the console).
`GET /vm/{vm}/vnc` carries the RFB stream of the domain's graphics console
(`open_graphics`). A refusal comes before the WebSocket upgrade, as an HTTP error with
`{"error": ...}` (`reconciler.endpoint.errors`): 404 no such domain here, 409 console in
use. Called through `reconciler.endpoint.server.NodeEndpoint`, on tickets signed by
herd-api.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress

from aiohttp import WSMsgType, web

from reconciler.endpoint.errors import refusal
from reconciler.libvirt.connection import Connection
from reconciler.libvirt.console import ConsoleBusy, ConsoleStream, domain_active, open_graphics
from reconciler.libvirt.interface import HypervisorError
from vocabulary import CONSOLE_GUEST_LEFT, CONSOLE_TAKEN_OVER

log = logging.getLogger(__name__)

class Consoles:
    """The console and VNC handlers of one node's libvirt connection."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    async def console(self, request: web.Request) -> web.WebSocketResponse:
        vm = request.match_info["vm"]
        try:
            stream = await ConsoleStream.open(self.connection, vm,
                                              force=request.query.get("force") == "1")
        except ConsoleBusy as e:
            raise refusal(409, str(e)) from None
        except HypervisorError as e:
            raise refusal(_status(e), str(e)) from None
        ws = web.WebSocketResponse(heartbeat=30.0)
        try:
            await ws.prepare(request)
            await _pump(ws, stream.read, stream.write)
            if not ws.closed:
                await self._close_ended(ws, vm)
        finally:
            await stream.close()
        return ws

    async def _close_ended(self, ws: web.WebSocketResponse, vm: str) -> None:
        """The stream ended: the guest left, or another session took the console."""
        if await asyncio.to_thread(domain_active, self.connection, vm):
            await ws.close(code=CONSOLE_TAKEN_OVER,
                           message=b"the console was taken over by another session")
        else:
            await ws.close(code=CONSOLE_GUEST_LEFT, message=b"the guest no longer runs here")

    async def vnc(self, request: web.Request) -> web.WebSocketResponse:
        vm = request.match_info["vm"]
        try:
            sock = await open_graphics(self.connection, vm)
        except HypervisorError as e:
            raise refusal(_status(e), str(e)) from None
        ws = web.WebSocketResponse(heartbeat=30.0)
        reader, writer = await asyncio.open_connection(sock=sock)
        try:
            await ws.prepare(request)

            async def send(data: bytes) -> None:
                writer.write(data)
                await writer.drain()

            await _pump(ws, lambda: _read_some(reader), send)
            if not ws.closed:
                await ws.close(code=CONSOLE_GUEST_LEFT, message=b"the graphics console closed")
        finally:
            writer.close()
            with suppress(OSError):
                await writer.wait_closed()
        return ws


def _status(e: HypervisorError) -> int:
    """404: no such domain here (VIR_ERR_NO_DOMAIN); 409: it has none, or it is busy."""
    return 404 if e.code == 42 else 409


async def _read_some(reader: asyncio.StreamReader) -> bytes | None:
    data = await reader.read(65536)
    return data or None


async def _pump(ws: web.WebSocketResponse, read: Callable[[], Awaitable[bytes | None]],
                write: Callable[[bytes], Awaitable[None]]) -> None:
    """Bytes both ways until either side ends."""
    async def outward() -> None:
        while (data := await read()) is not None:
            await ws.send_bytes(data)

    async def inward() -> None:
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                await write(msg.data)
            elif msg.type == WSMsgType.TEXT:
                await write(msg.data.encode())

    tasks = [asyncio.create_task(outward()), asyncio.create_task(inward())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, (ConnectionError, HypervisorError)):
            log.info("console: %s", result)
        elif isinstance(result, BaseException) and not isinstance(result,
                                                                  asyncio.CancelledError):
            raise result

