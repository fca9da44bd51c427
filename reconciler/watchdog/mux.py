"""The watchdog server: a Unix socket herd-node pets, and what happens when it stops.

Protocol, one line each way (ASCII):
- `pet <name> <timeout>` → `ok <seconds left>`: (re)arms the watch of node `name`;
- `disarm <name>` → `ok 0`: a clean stop of the daemon ends its watch;
- `status` → a JSON line: the watches (seconds left) and what fired so far.
Anything else → `error <why>`. When a watch expires the mux kills the process that petted
last (SIGKILL: it must not start a guest again), powers every guest of the host off
(`reconciler.libvirt.poweroff`), and, with a device configured, stops feeding it so the
host resets. A device is fed every `device_interval` seconds until then; a clean exit of
the mux with no watch armed writes the magic close ('V'). Started by `main`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from reconciler.watchdog.deadlines import Deadlines, Watch

log = logging.getLogger(__name__)

MAX_LINE = 256
MIN_TIMEOUT, MAX_TIMEOUT = 1.0, 3600.0


@dataclass(frozen=True)
class Fired:
    name: str
    at: float  # wall clock
    killed: int | None
    guests: list[str]
    error: str = ""


@dataclass
class Firing:
    """What an expiry does; tests give their own `power_off` (a libvirt test driver)."""

    power_off: Callable[[], list[str]]
    kill: Callable[[int, int], None] = os.kill
    fired: list[Fired] = field(default_factory=list)


class WatchdogMux:
    def __init__(self, socket_path: Path, firing: Firing, *, device: Path | None = None,
                 device_interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.socket_path, self.firing, self.clock = socket_path, firing, clock
        self.device, self.device_interval = device, device_interval
        self.deadlines = Deadlines()
        self.reset_host = False  # a watch expired: the device is no longer fed
        self._changed = asyncio.Event()
        self._stop = asyncio.Event()
        self.serving = asyncio.Event()  # the socket answers
        self._clients: set[asyncio.Task[None]] = set()
        self.has_fired = asyncio.Event()  # a watch expired (see `firing.fired`)

    # --- running ------------------------------------------------------------------------------

    async def serve(self) -> None:
        """Serve until `stop`; the socket is made private to root (0600)."""
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        server = await asyncio.start_unix_server(self._client, path=str(self.socket_path))
        os.chmod(self.socket_path, 0o600)
        self.serving.set()
        log.info("watching on %s%s", self.socket_path,
                 f", feeding {self.device}" if self.device else "")
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._expire())
                if self.device is not None:
                    tasks.create_task(self._feed(self.device))
                await self._stop.wait()
                raise _Done
        except* _Done:
            pass
        finally:
            server.close()
            for task in self._clients:  # they end here, not at the loop's close
                task.cancel()
            await asyncio.gather(*self._clients, return_exceptions=True)
            await server.wait_closed()
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()

    def stop(self) -> None:
        if self.deadlines.watches:
            log.warning("stopping with %s armed: nothing fences them any more",
                        ", ".join(sorted(self.deadlines.watches)))
        self._stop.set()

    async def _expire(self) -> None:
        while True:
            nearest = self.deadlines.next_deadline()
            self._changed.clear()
            wait = None if nearest is None else max(0.0, nearest - self.clock())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._changed.wait()
            for watch in self.deadlines.expired(self.clock()):
                await self._fire(watch)

    async def _fire(self, watch: Watch) -> None:
        log.critical("%s stopped petting for %.1f s: killing it and powering the guests off",
                     watch.name, watch.timeout)
        self.reset_host = True
        killed = None
        if watch.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                self.firing.kill(watch.pid, signal.SIGKILL)
                killed = watch.pid
        try:
            guests, error = await asyncio.to_thread(self.firing.power_off), ""
        except Exception as e:  # libvirt unreachable: the device (if any) still resets
            guests, error = [], str(e)
            log.critical("powering the guests off failed: %s", e)
        log.critical("powered off: %s", ", ".join(guests) or "no guest was running")
        self.firing.fired.append(Fired(watch.name, time.time(), killed, guests, error))
        self.has_fired.set()

    async def _feed(self, device: Path) -> None:
        handle: BinaryIO = await asyncio.to_thread(open, device, "wb", 0)
        try:
            while not self.reset_host:
                await asyncio.to_thread(handle.write, b"\0")
                await asyncio.sleep(self.device_interval)
            log.critical("no longer feeding %s: the host resets", device)
            await asyncio.Event().wait()  # the device stays open, unfed
        finally:
            if not self.reset_host and not self.deadlines.watches:
                await asyncio.to_thread(handle.write, b"V")  # magic close: disarmed
            handle.close()

    # --- clients ------------------------------------------------------------------------------

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pid = _peer_pid(writer)
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        try:
            while line := await reader.readline():
                answer = self.answer(line[:MAX_LINE].decode("ascii", "replace").split(),
                                     pid=pid)
                writer.write(answer.encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client went, or the mux stops: the watch (if any) stays as it is
        finally:
            self._clients.discard(task)
            writer.close()

    def answer(self, words: list[str], *, pid: int | None) -> str:
        """The reply to one request line (split into words)."""
        match words:
            case ["pet", name, timeout]:
                seconds = _timeout(timeout)
                if seconds is None:
                    return f"error timeout must be {MIN_TIMEOUT:g}..{MAX_TIMEOUT:g} seconds"
                watch = self.deadlines.pet(name, seconds, now=self.clock(), pid=pid)
                self._changed.set()
                return f"ok {watch.timeout:g}"
            case ["disarm", name]:
                self.deadlines.disarm(name)
                self._changed.set()
                return "ok 0"
            case ["status"]:
                return json.dumps(self.status())
            case _:
                return "error say: pet NAME TIMEOUT | disarm NAME | status"

    def status(self) -> dict[str, Any]:
        now = self.clock()
        return {"watches": {n: round(w.deadline - now, 3)
                            for n, w in self.deadlines.watches.items()},
                "fired": [f.__dict__ for f in self.firing.fired], "resetHost": self.reset_host}


class _Done(Exception):
    pass


def _timeout(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if MIN_TIMEOUT <= value <= MAX_TIMEOUT else None


def _peer_pid(writer: asyncio.StreamWriter) -> int | None:
    sock = writer.get_extra_info("socket")
    if sock is None:
        return None
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, _uid, _gid = struct.unpack("3i", raw)
    return int(pid) or None
