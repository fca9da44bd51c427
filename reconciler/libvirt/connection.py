"""One libvirt connection of herd-node: open, close, liveness, and its lifecycle events.

Blocking: `reconciler.libvirt.adapter.LibvirtHypervisor` calls it from worker threads (a
libvirt connection is thread-safe, so one `Connection` serves them all), and the blocking
verbs of `reconciler.libvirt.domains` and `reconciler.libvirt.migration` look domains up
through it. Every libvirt failure comes out as `HypervisorError` (`libvirt_call`).

A dead libvirtd is noticed by the close callback and keepalive; lifecycle events, once
wanted (`events`), are registered on every connection `open()` makes, and reach the loop
that wanted them through `reconciler.libvirt.events`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from urllib.parse import urlsplit

import libvirt

from reconciler.libvirt.events import bound_loop, call_on_loop
from reconciler.libvirt.interface import (
    DisconnectCallback,
    EventCallback,
    EventKind,
    HypervisorError,
)

log = logging.getLogger(__name__)

KEEPALIVE_INTERVAL_S = 5
KEEPALIVE_COUNT = 3

_EVENT_KINDS = {
    libvirt.VIR_DOMAIN_EVENT_DEFINED: EventKind.DEFINED,
    libvirt.VIR_DOMAIN_EVENT_UNDEFINED: EventKind.UNDEFINED,
    libvirt.VIR_DOMAIN_EVENT_STARTED: EventKind.STARTED,
    libvirt.VIR_DOMAIN_EVENT_SUSPENDED: EventKind.SUSPENDED,
    libvirt.VIR_DOMAIN_EVENT_RESUMED: EventKind.RESUMED,
    libvirt.VIR_DOMAIN_EVENT_STOPPED: EventKind.STOPPED,
    libvirt.VIR_DOMAIN_EVENT_SHUTDOWN: EventKind.SHUTDOWN,
    libvirt.VIR_DOMAIN_EVENT_PMSUSPENDED: EventKind.PMSUSPENDED,
    libvirt.VIR_DOMAIN_EVENT_CRASHED: EventKind.CRASHED,
}

_quiet_lock = threading.Lock()
_quiet = False


def quiet_libvirt_errors() -> None:
    """Stop libvirt's default error handler, which prints every error to stderr (ours are
    exceptions). Once per process; called before the first connection opens."""
    global _quiet
    with _quiet_lock:
        if not _quiet:
            libvirt.registerErrorHandler(_ignore_libvirt_error, None)
            _quiet = True


def _ignore_libvirt_error(_ctx: object, _err: object) -> None:
    """libvirt's default handler prints every error to stderr; ours are exceptions."""


class ErrorCount:
    """libvirt errors met in this process (herd_libvirt_errors_total, reconciler.metrics)."""

    count = 0


ERRORS = ErrorCount()


@contextmanager
def libvirt_call(what: str) -> Iterator[None]:
    """Turn a libvirtError raised inside into HypervisorError("<what>: <libvirt's message>")."""
    try:
        yield
    except libvirt.libvirtError as err:
        ERRORS.count += 1
        message = err.get_error_message() or str(err)
        raise HypervisorError(f"{what}: {message}", code=err.get_error_code()) from err


@dataclass
class Subscription:
    """Lifecycle events wanted from `start_events()` to `stop_events()`, and the loop they
    go to; `callback_id` is libvirt's while they are registered on a connection."""

    callback: EventCallback
    on_disconnect: DisconnectCallback | None
    loop: asyncio.AbstractEventLoop
    callback_id: int | None = None


class Connection:
    """One libvirt connection (see the module docstring); reopened by `reconnect()`."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._conn: libvirt.virConnect | None = None
        self._conn_lock = threading.Lock()
        self._lost = False
        self.opened_with_loop: asyncio.AbstractEventLoop | None = None
        self.live_migration: bool | None = None  # learnt from the capabilities, per open
        self.events: Subscription | None = None  # wanted from start_events() to stop_events()

    @property
    def connected(self) -> bool:
        """Open, and libvirt has not reported the connection closed (EOF, keepalive)."""
        conn = self._conn
        return conn is not None and not self._lost and bool(conn.isAlive())

    @property
    def raw(self) -> libvirt.virConnect | None:
        """libvirt's connection object while open, else None."""
        return self._conn

    def open(self) -> None:
        """Connect (no-op when open); with events wanted, register them on the new
        connection. Bind the event loop before, if events are wanted."""
        quiet_libvirt_errors()
        with self._conn_lock:
            if self._conn is not None:
                return
            with libvirt_call(f"cannot connect to {self.uri}"):
                conn = libvirt.open(self.uri)
            self._conn, self._lost, self.live_migration = conn, False, None
            self.opened_with_loop = bound_loop()
            self._watch_connection(conn)
        if self.events is not None:
            self.register_events(self.events)

    def close(self) -> None:
        """Close the connection (no-op when closed). Wanted events stay wanted: `open()`
        registers them again."""
        with self._conn_lock:
            conn, self._conn = self._conn, None
            if conn is None:
                return
            if self.events is not None:
                self.deregister_events(conn, self.events)
            with suppress(libvirt.libvirtError):
                conn.unregisterCloseCallback()
            with suppress(libvirt.libvirtError):
                conn.close()

    def reconnect(self) -> None:
        """Close and open again (events too, if wanted); retry it while it raises."""
        self.close()
        self.open()

    def get(self) -> libvirt.virConnect:
        """The open connection; HypervisorError (VIR_ERR_NO_CONNECT) when closed."""
        conn = self._conn
        if conn is None:
            raise HypervisorError(f"not connected to {self.uri}",
                                  code=libvirt.VIR_ERR_NO_CONNECT)
        return conn

    def find(self, name: str) -> libvirt.virDomain | None:
        """The named domain, or None when libvirt has no such domain."""
        try:
            return self.get().lookupByName(name)
        except libvirt.libvirtError as err:
            if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise HypervisorError(f"cannot look up {name!r}: {err.get_error_message()}",
                                  code=err.get_error_code()) from err

    def lookup(self, name: str, verb: str) -> libvirt.virDomain:
        """The named domain; HypervisorError("cannot <verb> <name>: no such domain")."""
        dom = self.find(name)
        if dom is None:
            raise HypervisorError(f"cannot {verb} {name!r}: no such domain on {self.uri}",
                                  code=libvirt.VIR_ERR_NO_DOMAIN)
        return dom

    # -- liveness --

    def _watch_connection(self, conn: libvirt.virConnect) -> None:
        """Close callback and keepalive, so that a dead libvirtd is noticed. The test driver
        accepts the close callback (it never fires) and has no keepalive."""
        with suppress(libvirt.libvirtError):
            conn.registerCloseCallback(self._on_close, None)
        if self.opened_with_loop is not None:
            with suppress(libvirt.libvirtError):
                conn.setKeepAlive(KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT)

    def _on_close(self, _conn: libvirt.virConnect, reason: int, _opaque: object) -> None:
        if reason == libvirt.VIR_CONNECT_CLOSE_REASON_CLIENT:
            return
        log.warning("connection to %s lost (reason %d)", self.uri, reason)
        self._lost = True
        events = self.events
        if events is not None and events.on_disconnect is not None:
            call_on_loop(events.loop, events.on_disconnect, reason)

    # -- lifecycle events --

    def check_event_capable(self, loop: asyncio.AbstractEventLoop) -> None:
        """Raise unless this connection can deliver events on loop: it must be open, and
        (but for the test driver, which needs timers only) opened after the loop was bound."""
        self.get()
        if self.opened_with_loop is loop or urlsplit(self.uri).scheme == "test":
            return  # the test driver needs timers only, added at registration
        raise HypervisorError(f"the connection to {self.uri} was opened before "
                              "bind_event_loop() on this loop: it cannot deliver events")

    def register_events(self, events: Subscription) -> None:
        with libvirt_call(f"cannot register for events on {self.uri}"):
            events.callback_id = self.get().domainEventRegisterAny(
                None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._on_lifecycle, events)

    @staticmethod
    def deregister_events(conn: libvirt.virConnect, events: Subscription) -> None:
        """Deregister events from conn, if registered there; libvirt's refusal is ignored."""
        if events.callback_id is not None:
            with suppress(libvirt.libvirtError):
                conn.domainEventDeregisterAny(events.callback_id)
            events.callback_id = None

    @staticmethod
    def _on_lifecycle(_conn: libvirt.virConnect, dom: libvirt.virDomain, event: int,
                      detail: int, events: Subscription) -> None:
        kind = _EVENT_KINDS.get(event)
        if kind is None:
            log.debug("ignoring unknown lifecycle event %d of %s", event, dom.name())
            return
        call_on_loop(events.loop, events.callback, str(dom.name()), kind, detail)
