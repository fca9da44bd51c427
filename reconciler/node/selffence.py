"""herd-node's side of self-fencing: petting the host's herd-watchdog (`reconciler.watchdog`).

The daemon pets only while it could act for its node: its ZooKeeper session is writable
and its last heartbeat went through less than `fresh` seconds ago (the status interval
plus a little). So the last pet is never more than `fresh` after the last heartbeat the
primary saw, and the primary, once the node's session expired, waits `timeout + fresh`
and a margin after that heartbeat (`reconciler.cluster.selffence`) — by then the
watchdog has killed this daemon and powered the guests off. Each pet names the cluster's
`selfFenceTimeout` as it is now; the node's status says what it pets with
(`watchdog: {timeout, fresh}`, None while no watchdog answers: the primary then recovers
nothing of this node). A clean stop disarms. Started by `reconciler.daemon`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from store.codec import Doc

log = logging.getLogger(__name__)

PETS_PER_TIMEOUT = 5  # pets within one timeout: a lost one or two change nothing
MAX_GAP = 2.0  # seconds between pets at most
REPLY_TIMEOUT = 2.0


class WatchdogLink:
    def __init__(self, socket_path: str, name: str, *, timeout: Callable[[], float],
                 writable: Callable[[], bool], last_heartbeat: Callable[[], float],
                 fresh: float, changed: Callable[[], None]) -> None:
        self.socket_path, self.name, self.fresh = socket_path, name, fresh
        self.timeout, self.writable, self.last_heartbeat = timeout, writable, last_heartbeat
        self.changed = changed  # the status should say so soon
        self.armed: float | None = None  # the timeout of the last pet the watchdog took
        self._stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    def report(self) -> Doc | None:
        """The node status's `watchdog`."""
        return None if self.armed is None else {"timeout": self.armed, "fresh": self.fresh}

    def may_pet(self, *, now: float) -> bool:
        return self.writable() and now - self.last_heartbeat() <= self.fresh

    async def run(self) -> None:
        while True:
            timeout = float(self.timeout())
            if self.may_pet(now=time.time()):
                await self._pet(timeout)
            await asyncio.sleep(min(MAX_GAP, timeout / PETS_PER_TIMEOUT))

    async def _pet(self, timeout: float) -> None:
        try:
            reply = await self._ask(f"pet {self.name} {timeout:g}")
            if not reply.startswith("ok"):
                raise ConnectionError(f"the watchdog refused: {reply}")
            self._set_armed(timeout)
        except (OSError, TimeoutError, ConnectionError) as e:
            if self.armed is not None or self._stream is None:
                log.error("cannot pet the watchdog at %s: %s (this node is not recovered "
                          "elsewhere if it fails)", self.socket_path, e)
            self._set_armed(None)
            await self._close()

    def _set_armed(self, timeout: float | None) -> None:
        if timeout != self.armed:
            self.armed = timeout
            self.changed()

    async def _ask(self, line: str) -> str:
        if self._stream is None:
            self._stream = await asyncio.wait_for(
                asyncio.open_unix_connection(self.socket_path), REPLY_TIMEOUT)
        reader, writer = self._stream
        writer.write(line.encode() + b"\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.readline(), REPLY_TIMEOUT)
        if not answer:
            raise ConnectionError("the watchdog closed the connection")
        return answer.decode("ascii", "replace").strip()

    async def disarm(self) -> None:
        """A clean stop: the watchdog lets this node go (never raises)."""
        try:
            await self._ask(f"disarm {self.name}")
            log.info("watchdog disarmed")
        except (OSError, TimeoutError, ConnectionError) as e:
            log.warning("could not disarm the watchdog: %s", e)
        await self._close()

    async def _close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream[1].close()
            with contextlib.suppress(OSError, ConnectionError):
                await stream[1].wait_closed()
