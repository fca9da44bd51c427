"""The daemon's end of dnsmasq's lease script: a Unix-socket server in the network's run dir.

`reconciler.network.gateway.Gateway` starts one `LeaseChannel` per managed network before its
dnsmasq. The lease script (`reconciler.network.leasescript`, run by dnsmasq) connects, writes
one JSON line and reads one JSON line back:

- `{"action": "init"}` -> `{"ok": true, "leasefile": "<expiry mac ip hostname clientid>\\n..."}`
  from the injected `leases()` provider (the new primary starts from the leases in
  ZooKeeper), expired leases left out;
- `{"action": "add"|"old"|"del", "mac", "ip", "hostname", "env": {DNSMASQ_*...}}` ->
  `{"ok": true}` once the injected `on_lease(LeaseEvent)` returned (the daemon writes
  /herd/networks/<net>/leases/<mac>), `{"ok": false, "error"}` if it raised.

Callbacks run one at a time, in the order the events arrive (dnsmasq runs its script serially).
IPv6 (DHCPv6) events are acknowledged and not passed on: only DHCPv4 leases are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from reconciler.network.dnsmasq import GatewayConfigError, Lease, leasefile_text

log = logging.getLogger(__name__)

READ_TIMEOUT = 5.0  # seconds a client may take to send its line
MAX_LINE = 64 * 1024


class LeaseAction(StrEnum):
    """What dnsmasq says happened to a lease (the script's first argument)."""

    ADD = "add"  # a new lease
    OLD = "old"  # an existing lease: renewed, renamed, or seen again at start or SIGHUP
    DEL = "del"  # released or expired


@dataclass(frozen=True)
class LeaseEvent:
    """One lease change of one managed network, as dnsmasq reported it."""

    network: str
    action: LeaseAction
    lease: Lease
    interface: str | None = None
    old_hostname: str | None = None


LeaseCallback = Callable[[LeaseEvent], Awaitable[None]]
LeasesProvider = Callable[[], Awaitable[Sequence[Lease]]]


def _expiry(env: Mapping[str, str], now: float) -> int:
    if env.get("DNSMASQ_LEASE_EXPIRES", "").isdigit():
        return int(env["DNSMASQ_LEASE_EXPIRES"])
    for key in ("DNSMASQ_LEASE_LENGTH", "DNSMASQ_TIME_REMAINING"):
        if env.get(key, "").isdigit():
            return int(now) + int(env[key])
    return 0


def event_from_message(network: str, message: Mapping[str, Any], *,
                       now: float) -> LeaseEvent | None:
    """The `LeaseEvent` of one script message; None for a DHCPv6 lease. ValueError if bad."""
    action = LeaseAction(str(message.get("action")))
    env = message.get("env") or {}
    if not isinstance(env, dict):
        raise ValueError("env must be an object")
    ip = ipaddress.ip_address(str(message.get("ip", "")))
    if ip.version != 4:
        return None
    lease = Lease(mac=str(message.get("mac", "")), ip=str(ip),
                  hostname=message.get("hostname") or None, expiry=_expiry(env, now),
                  client_id=env.get("DNSMASQ_CLIENT_ID") or None)
    return LeaseEvent(network=network, action=action, lease=lease,
                      interface=env.get("DNSMASQ_INTERFACE") or None,
                      old_hostname=env.get("DNSMASQ_OLD_HOSTNAME") or None)


class LeaseChannel:
    """The Unix-socket server the lease script of one network's dnsmasq talks to."""

    def __init__(self, path: str, *, network: str, on_lease: LeaseCallback,
                 leases: LeasesProvider, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.network = network
        self._on_lease = on_lease
        self._leases = leases
        self._clock = clock
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self._serial = asyncio.Lock()

    async def start(self) -> None:
        """Listen on `path` (a stale socket file is replaced), owner-only."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self._server = await asyncio.start_unix_server(self._serve, path=self.path,
                                                       limit=MAX_LINE)
        os.chmod(self.path, 0o600)

    async def stop(self, *, grace: float = 2.0) -> None:
        """Stop listening; let the conversations under way finish (`grace` seconds, then
        cancel them: an event cut short is a lost event); remove the socket."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        if self._handlers:
            await asyncio.wait(set(self._handlers), timeout=grace)
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            await self._converse(reader, writer)
        finally:
            if task is not None:
                self._handlers.discard(task)

    async def _converse(self, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), READ_TIMEOUT)
            reply = await self._answer(line)
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (TimeoutError, ConnectionError, ValueError) as e:  # LimitOverrunError too
            log.warning("network %s: lease script conversation failed: %s", self.network, e)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, line: bytes) -> dict[str, Any]:
        try:
            message = json.loads(line)
            if not isinstance(message, dict):
                raise ValueError("not a JSON object")
            if message.get("action") == "init":
                return await self._init()
            event = event_from_message(self.network, message, now=self._clock())
        except (ValueError, GatewayConfigError) as e:
            log.warning("network %s: bad lease script message %r: %s", self.network, line, e)
            return {"ok": False, "error": f"bad message: {e}"}
        if event is None:
            return {"ok": True}
        async with self._serial:
            try:
                await self._on_lease(event)
            except Exception as e:  # the callback's failure goes back to the script's log
                log.exception("network %s: on_lease(%s %s) failed", self.network,
                              event.action, event.lease.mac)
                return {"ok": False, "error": str(e) or type(e).__name__}
        return {"ok": True}

    async def _init(self) -> dict[str, Any]:
        try:
            leases = await self._leases()
        except Exception as e:  # dnsmasq must not start without its lease database
            log.exception("network %s: the lease provider failed", self.network)
            return {"ok": False, "error": str(e) or type(e).__name__}
        text = leasefile_text(leases, now=self._clock())
        log.info("network %s: dnsmasq starts with %d lease(s)", self.network,
                 text.count("\n"))
        return {"ok": True, "leasefile": text}
