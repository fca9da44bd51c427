"""A domain's serial console and graphics console as asyncio byte pipes (issue #16).

`ConsoleStream.open` opens libvirt's console stream of a running domain
(`virDomainOpenConsole`) as a NON-BLOCKING stream whose readable events arrive on the
daemon's loop (libvirt's event implementation is bound there, `reconciler.libvirt.events`):
bytes are read as they come, never by a thread parked in a blocking read. libvirt allows
one console session per domain: a second `open` fails (`ConsoleBusy`) unless `force` takes
the console over, ending the other session's stream.

`open_graphics` asks libvirt for a socket already connected to the domain's VNC server
(`virDomainOpenGraphicsFD`, the descriptor passed over libvirtd's UNIX socket), so the
hypervisor's VNC port need not be reachable from anywhere. Called by
`reconciler.endpoint.consoles`.
"""

from __future__ import annotations

import asyncio
import socket
from contextlib import suppress

import libvirt

from reconciler.libvirt.connection import Connection
from reconciler.libvirt.interface import HypervisorError

CHUNK = 65536
_EVENTS = (libvirt.VIR_STREAM_EVENT_READABLE | libvirt.VIR_STREAM_EVENT_ERROR
           | libvirt.VIR_STREAM_EVENT_HANGUP)


class ConsoleBusy(HypervisorError):
    """Another session holds the domain's console."""


class ConsoleStream:
    """One open console session: `read()` (None at its end), `write()`, `close()`."""

    def __init__(self, stream: libvirt.virStream, loop: asyncio.AbstractEventLoop) -> None:
        self.stream = stream
        self.loop = loop
        self.incoming: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.writable = asyncio.Event()
        self.closed = False

    @classmethod
    async def open(cls, connection: Connection, name: str, *, force: bool) -> ConsoleStream:
        loop = asyncio.get_running_loop()
        stream = await asyncio.to_thread(_open_console, connection, name, force)
        console = cls(stream, loop)
        await asyncio.to_thread(stream.eventAddCallback, _EVENTS, console._on_event, None)
        return console

    def _on_event(self, stream: libvirt.virStream, events: int, _opaque: object) -> None:
        """libvirt's event, on the loop: drain what is readable; the end on error/hangup."""
        if events & libvirt.VIR_STREAM_EVENT_WRITABLE:
            self.writable.set()
            with suppress(libvirt.libvirtError):
                stream.eventUpdateCallback(_EVENTS)
        if events & libvirt.VIR_STREAM_EVENT_READABLE and not self.closed:
            self._drain(stream)
        if events & (libvirt.VIR_STREAM_EVENT_ERROR | libvirt.VIR_STREAM_EVENT_HANGUP):
            self._end()

    def _drain(self, stream: libvirt.virStream) -> None:
        while True:
            try:
                data = stream.recv(CHUNK)
            except libvirt.libvirtError:
                self._end()
                return
            if isinstance(data, int):  # -2: nothing more for now
                return
            if not data:
                self._end()
                return
            self.incoming.put_nowait(bytes(data))

    def _end(self) -> None:
        if not self.closed:
            self.closed = True
            self.incoming.put_nowait(None)

    async def read(self) -> bytes | None:
        return await self.incoming.get()

    async def write(self, data: bytes) -> None:
        """Send all of `data`; waits for libvirt's writable event when it would block."""
        view = memoryview(data)
        while view and not self.closed:
            try:
                sent = self.stream.send(bytes(view))
            except libvirt.libvirtError as e:
                self._end()
                raise HypervisorError(f"console: {e.get_error_message()}") from e
            if sent == -2:
                self.writable.clear()
                self.stream.eventUpdateCallback(_EVENTS | libvirt.VIR_STREAM_EVENT_WRITABLE)
                await self.writable.wait()
                continue
            view = view[sent:]

    async def close(self) -> None:
        self._end()
        with suppress(libvirt.libvirtError):
            self.stream.eventRemoveCallback()
        with suppress(libvirt.libvirtError):
            await asyncio.to_thread(self.stream.abort)


def _open_console(connection: Connection, name: str, force: bool) -> libvirt.virStream:
    dom = connection.lookup(name, "open the console of")
    stream = connection.get().newStream(libvirt.VIR_STREAM_NONBLOCK)
    flags = libvirt.VIR_DOMAIN_CONSOLE_FORCE if force else libvirt.VIR_DOMAIN_CONSOLE_SAFE
    try:
        dom.openConsole(None, stream, flags)
    except libvirt.libvirtError as e:
        with suppress(libvirt.libvirtError):
            stream.abort()
        message = e.get_error_message()
        if "Active console session" in message:
            raise ConsoleBusy(f"the console of {name!r} is in use by another session "
                              f"(force takes it over)", code=e.get_error_code()) from e
        raise HypervisorError(f"cannot open the console of {name!r}: {message}",
                              code=e.get_error_code()) from e
    return stream


async def open_graphics(connection: Connection, name: str) -> socket.socket:
    """A socket connected to the domain's first graphics (VNC) server, auth skipped."""
    return await asyncio.to_thread(_open_graphics, connection, name)


def _open_graphics(connection: Connection, name: str) -> socket.socket:
    dom = connection.lookup(name, "open the graphics of")
    try:
        fd = dom.openGraphicsFD(0, libvirt.VIR_DOMAIN_OPEN_GRAPHICS_SKIPAUTH)
    except libvirt.libvirtError as e:
        raise HypervisorError(f"cannot open the graphics of {name!r}: "
                              f"{e.get_error_message()}", code=e.get_error_code()) from e
    sock = socket.socket(fileno=fd)
    sock.setblocking(False)
    return sock


def domain_active(connection: Connection, name: str) -> bool:
    """Whether the domain runs (or is paused) here now."""
    dom = connection.find(name)
    try:
        return dom is not None and bool(dom.isActive())
    except libvirt.libvirtError:
        return False
