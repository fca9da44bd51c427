"""herdctl's WebSocket side (issue #16): a VM's serial console in the terminal, and a
local TCP port relayed to its VNC stream, both through herd-api (`GET /vm/{vm}/console`,
`GET /vm/{vm}/vnc`; aiohttp's client, the token as a bearer header, TLS trusting the
system's or $SSL_CERT_FILE's CAs as the HTTP client does).

`terminal_console` puts a TTY in raw mode (every key goes to the guest, Ctrl-C too) and
restores it on any exit, including a signal; Ctrl-] (0x1d) leaves. A handshake the API
refuses is asked again as a plain GET, whose answer carries the API's reason (the
WebSocket handshake error keeps only the status). Used by `ctl.cmd_console`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import termios
import tty
from collections.abc import Callable, Iterator
from typing import IO

import aiohttp

from ctl.client import PREFIX, ApiError, Client, Unreachable

ESCAPE = b"\x1d"  # Ctrl-]


def _url(client: Client, path: str, query: dict[str, str]) -> str:
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    return client.url + PREFIX + path + (f"?{qs}" if qs else "")


def _headers(client: Client) -> dict[str, str]:
    return {"Authorization": f"Bearer {client.token}"} if client.token else {}


async def connect(session: aiohttp.ClientSession, client: Client, path: str,
                  **query: str) -> aiohttp.ClientWebSocketResponse:
    """The WebSocket of `path`; the API's refusal as `ApiError`, no API as `Unreachable`."""
    try:
        return await session.ws_connect(_url(client, path, query), headers=_headers(client),
                                        heartbeat=30.0)
    except aiohttp.WSServerHandshakeError as e:
        raise _explained(client, path, query, e.status) from None
    except (aiohttp.ClientError, OSError) as e:
        raise Unreachable(f"cannot reach the API at {client.url}: {e}") from None


def _explained(client: Client, path: str, query: dict[str, str], status: int) -> ApiError:
    try:
        client.get(path, **query)
    except ApiError as e:
        if e.code != "websocket_required":
            return e
    if status == 409:
        return ApiError(409, "conflict", message="the console is in use by another "
                        "session (--force takes it over)")
    return ApiError(status, "bad_gateway", message=f"the API could not open it (HTTP {status})")


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    """`fd` in raw mode while inside; restored on any exit (SIGTERM/SIGHUP included)."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}

    def leave(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    for s in previous:
        signal.signal(s, leave)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        for s, handler in previous.items():
            signal.signal(s, handler)


async def terminal_console(client: Client, name: str, *, force: bool, stdin: int,
                           stdout: IO[bytes]) -> str:
    """The console of `name` on this terminal until Ctrl-] or the session ends; why it
    ended."""
    async with aiohttp.ClientSession() as session:
        ws = await connect(session, client, f"/vm/{name}/console",
                           **({"force": "true"} if force else {}))
        with raw_terminal(stdin):
            return await _interact(ws, stdin, stdout)


async def _interact(ws: aiohttp.ClientWebSocketResponse, stdin: int, stdout: IO[bytes]) -> str:
    loop = asyncio.get_running_loop()
    keys: asyncio.Queue[bytes] = asyncio.Queue()

    def readable() -> None:
        data = os.read(stdin, 4096)
        keys.put_nowait(data)
        if not data:  # end of input: no more reads
            loop.remove_reader(stdin)

    loop.add_reader(stdin, readable)
    escaped = asyncio.Event()
    sender = asyncio.create_task(_send_keys(ws, keys, escaped))
    try:
        while True:
            msg = await ws.receive()
            if msg.type == aiohttp.WSMsgType.BINARY:
                stdout.write(msg.data)
                stdout.flush()
            elif msg.type == aiohttp.WSMsgType.CLOSE:
                return f"console closed: {msg.extra or msg.data}"
            elif msg.type in (aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED,
                              aiohttp.WSMsgType.ERROR):
                return "console left (Ctrl-])" if escaped.is_set() else "console closed"
    finally:
        loop.remove_reader(stdin)
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        await ws.close()


async def _send_keys(ws: aiohttp.ClientWebSocketResponse, keys: asyncio.Queue[bytes],
                     escaped: asyncio.Event) -> None:
    """Keys to the console until Ctrl-] (`escaped` set) or the end of input."""
    while True:
        data = await keys.get()
        before, escape, _after = data.partition(ESCAPE)
        if before:
            await ws.send_bytes(before)
        if escape or not data:
            if escape:
                escaped.set()
            await ws.close()
            return


async def vnc_relay(client: Client, name: str, *, host: str, port: int, once: bool,
                    ready: Callable[[str], None]) -> None:
    """Listen on host:port; each connection gets its own WebSocket to the VM's VNC. With
    `once`, the first connection's end ends it all."""
    done = asyncio.Event()
    async with aiohttp.ClientSession() as session:
        await connect_check(session, client, name)

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                ws = await connect(session, client, f"/vm/{name}/vnc")
                await _splice(ws, reader, writer)
            except (ApiError, Unreachable) as e:
                print(f"vnc: {e}", file=sys.stderr)
            finally:
                writer.close()
                if once:
                    done.set()

        server = await asyncio.start_server(serve, host, port)
        async with server:
            bound = server.sockets[0].getsockname()
            ready(f"{bound[0]}:{bound[1]}")
            await (done.wait() if once else server.serve_forever())


async def connect_check(session: aiohttp.ClientSession, client: Client, name: str) -> None:
    """Fail before listening when the VNC cannot be had (no VM, not running, no token)."""
    ws = await connect(session, client, f"/vm/{name}/vnc")
    await ws.close()


async def _splice(ws: aiohttp.ClientWebSocketResponse, reader: asyncio.StreamReader,
                  writer: asyncio.StreamWriter) -> None:
    async def up() -> None:
        while data := await reader.read(65536):
            await ws.send_bytes(data)

    async def down() -> None:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.BINARY:
                writer.write(msg.data)
                await writer.drain()

    tasks = [asyncio.create_task(up()), asyncio.create_task(down())]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await ws.close()


def stdout_bytes() -> IO[bytes]:
    return sys.stdout.buffer
