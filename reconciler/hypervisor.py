"""The libvirt adapter of `herd-node`: one connection to the local hypervisor, blocking calls.

The node daemon calls `Hypervisor` from worker threads (`asyncio.to_thread`); a libvirt
connection is thread-safe, so one `Hypervisor` serves them all. Every libvirt failure comes
out as `HypervisorError` (the libvirt error code in `.code`, the domain in the message).
Verbs are idempotent where the reconciler needs it: starting a running domain, shutting down
or destroying a domain that is off or absent, undefining an absent one are no-ops.

Lifecycle events come through libvirt-python's `libvirtaio` on the daemon's asyncio loop:
`await hv.start_events(callback)` delivers (domain name, `EventKind`, libvirt detail) on the
loop thread; the callback must only enqueue. Two facts of `libvirtaio` (checked with
libvirt-python 12.8 on libvirt 9.0) shape the glue below:

- It is not thread-safe. libvirt calls the event implementation from whichever thread makes
  a libvirt call (the test driver updates its dispatch timer inside `create()`, the remote
  driver toggles its socket watch around every RPC), and libvirtaio then creates tasks and
  readers on the loop from that thread: asyncio's debug mode raises "Non-thread-safe
  operation invoked on an event loop other than the current one" inside `create()` and the
  event is lost; without debug mode the loop is not even woken up for it.
- libvirt-python accepts one event implementation per process ("Event loop is already
  registered" on a second `virEventRegisterImpl`), so `virEventRegisterAsyncIOImpl()` binds
  the process to one asyncio loop for good; tests get a new loop per test.

So `_EventBridge` is registered with libvirt once per process; it hands out its own watch and
timer ids at once (under a lock, from any thread) and applies every operation, in call order,
on the loop thread to a `libvirtaio.virEventAsyncIOImpl`. It can be rebound to a new loop
when libvirt holds none of its handles or timers (tests: after `stop_events()`). Call
`bind_event_loop()` before `Hypervisor.open()`: the remote driver adds its socket watch (for
events, keepalive and the close callback) only when the connection is opened; the test
driver only needs timers, which it adds when events are registered. After closing a remote
connection, `await settle_events()` before the loop ends (libvirt removes its watch then).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import libvirt
import libvirtaio
from defusedxml import ElementTree

from vocabulary import RunState

log = logging.getLogger(__name__)

KEEPALIVE_INTERVAL_S = 5
KEEPALIVE_COUNT = 3


DomainState = RunState  # what libvirt says about a domain (defined once, in vocabulary)


class EventKind(StrEnum):
    """libvirt's lifecycle event types (`VIR_DOMAIN_EVENT_*`)."""

    DEFINED = "defined"
    UNDEFINED = "undefined"
    STARTED = "started"
    SUSPENDED = "suspended"
    RESUMED = "resumed"
    STOPPED = "stopped"
    SHUTDOWN = "shutdown"
    PMSUSPENDED = "pmsuspended"
    CRASHED = "crashed"


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

_STATES = {
    libvirt.VIR_DOMAIN_RUNNING: DomainState.RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: DomainState.RUNNING,
    libvirt.VIR_DOMAIN_SHUTDOWN: DomainState.RUNNING,  # running, shutting down
    libvirt.VIR_DOMAIN_PAUSED: DomainState.PAUSED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: DomainState.PAUSED,
    libvirt.VIR_DOMAIN_SHUTOFF: DomainState.DEFINED,
    libvirt.VIR_DOMAIN_CRASHED: DomainState.CRASHED,
}

_INCOMING_PAUSE = (libvirt.VIR_DOMAIN_PAUSED_MIGRATION, libvirt.VIR_DOMAIN_PAUSED_STARTING_UP)

_ROOT_TAG = re.compile(r"<domain\b[^>]*>")

_UNDEFINE_FLAGS = (
    libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
    | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM,
    libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA,
)

EventCallback = Callable[[str, EventKind, int], None]
DisconnectCallback = Callable[[int], None]


@dataclass(frozen=True)
class DomainInfo:
    """One domain as libvirt has it now. `domain_id` is None unless it runs."""

    name: str
    uuid: str
    state: DomainState
    domain_id: int | None
    memory_mib: int  # maximum memory (what the domain is provisioned with)
    vcpus: int
    persistent: bool
    migrating_in: bool = False  # paused because a migration into this host is under way


@dataclass(frozen=True)
class NodeInfo:
    """The hypervisor's resources. `load` is the 1-minute load average of this host for a
    local URI (`qemu:///system`), 0.0 for the test driver and for a remote host (libvirt
    reports no load average)."""

    mem_total_mib: int
    mem_free_mib: int
    cpus: int
    load: float


@dataclass(frozen=True)
class Usage:
    """The node, and the count, memory and vCPUs of its running domains."""

    node: NodeInfo
    running: int
    memory_mib: int
    vcpus: int


def _info_or_none(dom: libvirt.virDomain) -> list[int] | None:
    """dom.info(), or None when the domain vanished meanwhile."""
    try:
        return list(dom.info())
    except libvirt.libvirtError as err:
        if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return None
        raise


@dataclass(frozen=True)
class MigrationStats:
    """What libvirt measured of a completed migration."""

    elapsed_ms: int  # from the start of the job to its end
    downtime_ms: int  # the guest's final pause
    transferred_bytes: int


class HypervisorError(Exception):
    """A libvirt call failed; `code` is libvirt's error code (`VIR_ERR_*`) when there is one."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


@contextmanager
def _libvirt_call(what: str) -> Iterator[None]:
    """Turn a libvirtError raised inside into HypervisorError("<what>: <libvirt's message>")."""
    try:
        yield
    except libvirt.libvirtError as err:
        message = err.get_error_message() or str(err)
        raise HypervisorError(f"{what}: {message}", code=err.get_error_code()) from err


def _ignore_libvirt_error(_ctx: object, _err: object) -> None:
    """libvirt's default handler prints every error to stderr; ours are exceptions."""


libvirt.registerErrorHandler(_ignore_libvirt_error, None)


# --- the event loop bridge ------------------------------------------------------------------


class _AsyncIOImpl(libvirtaio.virEventAsyncIOImpl):  # type: ignore[misc]
    """libvirtaio's implementation on one loop, driven by `_EventBridge` on the loop thread.

    It maps bridge ids to libvirtaio's ids, owns the duplicated descriptors it watches, and
    keeps the tasks libvirtaio leaves behind (cancelled timer tasks, the tasks that call
    libvirt's free callbacks) so that `settle()` can wait for them.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop=loop)
        self.ids: dict[int, int] = {}
        self.fds: dict[int, int] = {}
        self.settling: set[asyncio.Future[Any]] = set()

    def _track(self, task: asyncio.Future[Any] | None) -> None:
        if task is not None and not task.done():
            self.settling.add(task)
            task.add_done_callback(self.settling.discard)

    def schedule_ff_callback(self, iden: int, opaque: object) -> None:
        self._track(asyncio.ensure_future(self._ff_callback(iden, opaque), loop=self.loop))

    def _timer_op(self, timer: int, op: Callable[[], object]) -> None:
        """Run op on a timer, keeping the task libvirtaio drops when it stops the timer."""
        callback = self.callbacks.get(timer)
        task = getattr(callback, "_task", None)  # libvirtaio's TimeoutCallback._task
        op()
        if task is not None and getattr(callback, "_task", None) is not task:
            self._track(task)

    def add_handle(self, bid: int, fd: int, event: int, cb: Any, opaque: Any) -> None:
        self.fds[bid] = fd
        self.ids[bid] = self._add_handle(fd, event, cb, opaque)

    def add_timeout(self, bid: int, timeout: int, cb: Any, opaque: Any) -> None:
        self.ids[bid] = self._add_timeout(timeout, cb, opaque)

    def update_handle(self, bid: int, event: int) -> None:
        if bid in self.ids:
            self._update_handle(self.ids[bid], event)

    def update_timeout(self, bid: int, timeout: int) -> None:
        iden = self.ids.get(bid)
        if iden is not None:
            self._timer_op(iden, lambda: self._update_timeout(iden, timeout))

    def remove_handle(self, bid: int) -> None:
        iden, fd = self.ids.pop(bid, None), self.fds.pop(bid, None)
        try:
            if iden is not None:
                self._remove_handle(iden)
        finally:
            if fd is not None:
                os.close(fd)

    def remove_timeout(self, bid: int) -> None:
        iden = self.ids.pop(bid, None)
        if iden is not None:
            self._timer_op(iden, lambda: self._remove_timeout(iden))

    async def settle(self) -> None:
        """Wait until every operation issued so far ran and its leftover tasks finished."""
        barrier = self.loop.create_future()
        self.loop.call_soon_threadsafe(barrier.set_result, None)
        await barrier
        while self.settling:
            await asyncio.gather(*list(self.settling), return_exceptions=True)


class _EventBridge:
    """libvirt's event implementation for this process (registered once), thread-safe.

    libvirt calls the six functions from any thread. Ids are handed out at once; the work is
    queued with `call_soon_threadsafe` (FIFO, so in call order) onto the bound loop. A handle
    or timer that libvirt removed is never dispatched again, even while its removal is still
    queued. The loop watches a duplicate of each descriptor, closed only once the removal has
    run: libvirt may close its descriptor right after removing the handle, and the number
    must not be reused under the loop's feet in the meantime.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._live: dict[int, _AsyncIOImpl] = {}
        self._impl: _AsyncIOImpl | None = None
        self._registered = False

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            if self._impl is not None and self._impl.loop is loop:
                return
            if self._live:
                raise HypervisorError(
                    f"libvirt events are bound to another asyncio loop and libvirt still holds "
                    f"{len(self._live)} of its handles/timers: stop events and close those "
                    "connections first")
            self._impl = _AsyncIOImpl(loop)
            if not self._registered:
                libvirt.virEventRegisterImpl(
                    self._add_handle, self._update_handle, self._remove_handle,
                    self._add_timeout, self._update_timeout, self._remove_timeout)
                self._registered = True

    def bound_loop(self) -> asyncio.AbstractEventLoop | None:
        impl = self._impl
        return None if impl is None or impl.loop.is_closed() else impl.loop

    async def settle(self) -> None:
        impl = self._impl
        if impl is not None and impl.loop is asyncio.get_running_loop():
            await impl.settle()

    def _add(self, schedule: Callable[[_AsyncIOImpl, int], None]) -> int:
        with self._lock:
            impl = self._impl
            if impl is None or impl.loop.is_closed():
                return -1  # no loop: libvirt goes on without events
            bid = next(self._ids)
            self._live[bid] = impl
            try:
                schedule(impl, bid)
            except RuntimeError:  # the loop closed just now
                del self._live[bid]
                return -1
            return bid

    def _queue(self, bid: int, op: Callable[[_AsyncIOImpl], Callable[..., None]],
               *args: Any, remove: bool = False) -> int:
        """Queue op(impl)(bid, *args) on the loop of the live id bid; -1 if it is not live."""
        with self._lock:
            impl = self._live.pop(bid, None) if remove else self._live.get(bid)
            if impl is None:
                return -1
            with suppress(RuntimeError):  # its loop is closed: nothing left to undo
                impl.loop.call_soon_threadsafe(op(impl), bid, *args)
            return 0

    def _fire_handle(self, bid: int, fd: int, cb: Any) -> Callable[[int, int, int, Any], None]:
        def fire(_iden: int, _watched: int, events: int, opaque: Any) -> None:
            if bid in self._live:
                cb(bid, fd, events, opaque)
        return fire

    def _fire_timeout(self, bid: int, cb: Any) -> Callable[[int, Any], None]:
        def fire(_iden: int, opaque: Any) -> None:
            if bid in self._live:
                cb(bid, opaque)
        return fire

    def _add_handle(self, fd: int, event: int, cb: Any, opaque: Any) -> int:
        watched = os.dup(fd)

        def schedule(impl: _AsyncIOImpl, bid: int) -> None:
            fire = self._fire_handle(bid, fd, cb)
            impl.loop.call_soon_threadsafe(impl.add_handle, bid, watched, event, fire, opaque)

        bid = self._add(schedule)
        if bid < 0:
            os.close(watched)
        return bid

    def _add_timeout(self, timeout: int, cb: Any, opaque: Any) -> int:
        def schedule(impl: _AsyncIOImpl, bid: int) -> None:
            fire = self._fire_timeout(bid, cb)
            impl.loop.call_soon_threadsafe(impl.add_timeout, bid, timeout, fire, opaque)

        return self._add(schedule)

    def _update_handle(self, watch: int, event: int) -> None:
        self._queue(watch, lambda impl: impl.update_handle, event)

    def _update_timeout(self, timer: int, timeout: int) -> None:
        self._queue(timer, lambda impl: impl.update_timeout, timeout)

    def _remove_handle(self, watch: int) -> int:
        return self._queue(watch, lambda impl: impl.remove_handle, remove=True)

    def _remove_timeout(self, timer: int) -> int:
        return self._queue(timer, lambda impl: impl.remove_timeout, remove=True)


_BRIDGE = _EventBridge()


def bind_event_loop(loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Run libvirt's events on `loop` (default: the running loop). Call it on the loop before
    opening the connections that deliver events; again with a new loop only once libvirt
    holds nothing of the old one (events stopped, remote connections closed)."""
    _BRIDGE.bind(loop or asyncio.get_running_loop())


async def settle_events() -> None:
    """Wait until libvirt's event operations so far are applied and their tasks have ended."""
    await _BRIDGE.settle()


def _on_loop(loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: Any) -> None:
    """Call fn on the loop's thread: now if this is it, else queued. Its errors are logged
    (they must not unwind into libvirt's dispatch)."""
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        _guarded(fn, *args)
    else:
        with suppress(RuntimeError):  # loop closed: nobody left to tell
            loop.call_soon_threadsafe(_guarded, fn, *args)


def _guarded(fn: Callable[..., None], *args: Any) -> None:
    try:
        fn(*args)
    except Exception:
        log.exception("libvirt event handler %r failed", fn)


# --- the adapter ----------------------------------------------------------------------------


@dataclass
class _Events:
    callback: EventCallback
    on_disconnect: DisconnectCallback | None
    loop: asyncio.AbstractEventLoop
    callback_id: int | None = None


class Hypervisor:
    """One libvirt connection and the verbs the reconciler needs (see the module docstring)."""

    def __init__(self, uri: str) -> None:
        self._uri = uri
        self._conn: libvirt.virConnect | None = None
        self._conn_lock = threading.Lock()
        self._lost = False
        self._opened_with_loop: asyncio.AbstractEventLoop | None = None
        self._live_migration: bool | None = None
        self._events: _Events | None = None  # wanted from start_events() to stop_events()

    @property
    def uri(self) -> str:
        return self._uri

    @property
    def connected(self) -> bool:
        """Open, and libvirt has not reported the connection closed (EOF, keepalive)."""
        conn = self._conn
        return conn is not None and not self._lost and bool(conn.isAlive())

    # -- connection --

    def open(self) -> None:
        """Connect (no-op when open); with events started, register them on the new
        connection. Bind the event loop before, if events are wanted."""
        with self._conn_lock:
            if self._conn is not None:
                return
            with _libvirt_call(f"cannot connect to {self._uri}"):
                conn = libvirt.open(self._uri)
            self._conn, self._lost, self._live_migration = conn, False, None
            self._opened_with_loop = _BRIDGE.bound_loop()
            self._watch_connection(conn)
        if self._events is not None:
            self._register_events(self._events)

    def close(self) -> None:
        """Close the connection (no-op when closed). Started events stay wanted: `open()`
        registers them again; `stop_events()` ends them."""
        with self._conn_lock:
            conn, self._conn = self._conn, None
            if conn is None:
                return
            self._deregister_events(conn)
            with suppress(libvirt.libvirtError):
                conn.unregisterCloseCallback()
            with suppress(libvirt.libvirtError):
                conn.close()

    def reconnect(self) -> None:
        """Close and open again (events too, if started). Blocking: call it from a thread,
        e.g. after `on_disconnect`; retry it while it raises."""
        self.close()
        self.open()

    def _watch_connection(self, conn: libvirt.virConnect) -> None:
        """Close callback and keepalive, so that a dead libvirtd is noticed. The test driver
        accepts the close callback (it never fires) and has no keepalive."""
        with suppress(libvirt.libvirtError):
            conn.registerCloseCallback(self._on_close, None)
        if self._opened_with_loop is not None:
            with suppress(libvirt.libvirtError):
                conn.setKeepAlive(KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT)

    def _on_close(self, _conn: libvirt.virConnect, reason: int, _opaque: object) -> None:
        if reason == libvirt.VIR_CONNECT_CLOSE_REASON_CLIENT:
            return
        log.warning("connection to %s lost (reason %d)", self._uri, reason)
        self._lost = True
        events = self._events
        if events is not None and events.on_disconnect is not None:
            _on_loop(events.loop, events.on_disconnect, reason)

    def _connection(self) -> libvirt.virConnect:
        conn = self._conn
        if conn is None:
            raise HypervisorError(f"not connected to {self._uri}",
                                  code=libvirt.VIR_ERR_NO_CONNECT)
        return conn

    # -- domains --

    def list_domains(self) -> dict[str, DomainInfo]:
        """Every domain, running or only defined, by name."""
        with _libvirt_call(f"cannot list domains on {self._uri}"):
            doms = self._connection().listAllDomains()
        infos = (self._describe(dom) for dom in doms)
        return {info.name: info for info in infos if info is not None}

    def domain(self, name: str) -> DomainInfo | None:
        """The named domain, or None when libvirt has no such domain."""
        dom = self._find(name)
        return None if dom is None else self._describe(dom)

    def define(self, xml: str) -> DomainInfo:
        """Create or update the persistent definition (a running domain gets it on next boot).
        libvirt refuses a definition without <uuid> for an existing name ("already exists with
        uuid ..."), so an update without one gets the existing domain's UUID."""
        name = _name_in(xml)
        existing = None if name is None else self._find(name)
        if existing is not None:
            xml = _with_uuid(xml, str(existing.UUIDString()))
        with _libvirt_call(f"cannot define domain {name or '?'!r}"):
            dom = self._connection().defineXML(xml)
        info = self._describe(dom)
        if info is None:
            raise HypervisorError(f"domain {dom.name()!r} vanished right after define",
                                  code=libvirt.VIR_ERR_NO_DOMAIN)
        return info

    def start(self, name: str) -> None:
        """Boot a defined domain; a running (or paused) one is left as it is."""
        dom = self._get(name, "start")
        self._unless_active(dom, want_active=True, op=dom.create, what=f"cannot start {name!r}")

    def shutdown(self, name: str) -> None:
        """Ask the guest to power off (ACPI); it may ignore it. Off or absent: no-op."""
        dom = self._find(name)
        if dom is not None:
            self._unless_active(dom, want_active=False, op=dom.shutdown,
                                what=f"cannot shut down {name!r}")

    def destroy(self, name: str) -> None:
        """Power off now. Off or absent: no-op."""
        dom = self._find(name)
        if dom is not None:
            self._unless_active(dom, want_active=False, op=dom.destroy,
                                what=f"cannot destroy {name!r}")

    def undefine(self, name: str) -> None:
        """Remove the persistent definition with its managed save, snapshot and checkpoint
        metadata and NVRAM. A running domain goes on as a transient one. Absent: no-op."""
        dom = self._find(name)
        if dom is None:
            return
        try:
            self._undefine(dom)
        except libvirt.libvirtError as err:
            if err.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                raise HypervisorError(f"cannot undefine {name!r}: {err.get_error_message()}",
                                      code=err.get_error_code()) from err

    def domain_xml(self, name: str, *, inactive: bool = False) -> str:
        """The live XML of a running domain, else (or with inactive) the persistent one."""
        dom = self._get(name, "read the XML of")
        flags = libvirt.VIR_DOMAIN_XML_INACTIVE if inactive else 0
        with _libvirt_call(f"cannot read the XML of {name!r}"):
            return str(dom.XMLDesc(flags))

    # -- node --

    def node_info(self) -> NodeInfo:
        """Total and free memory, CPUs and load. Free memory is the host's free + buffers +
        cache; the test driver reports none, so there it is total minus running domains."""
        return self.usage().node

    def usage(self) -> Usage:
        """The node and what its running domains take, from ONE listing of the active
        domains (the node status is published often; listing every domain with all its
        details took more libvirt time than the reconciles themselves)."""
        conn = self._connection()
        with _libvirt_call(f"cannot read the usage of {self._uri}"):
            _model, mem_total_mib, cpus, *_rest = conn.getInfo()
            infos = [info for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)
                     if (info := _info_or_none(dom)) is not None]
        used_kib = sum(int(i[2]) for i in infos)
        free = self._host_free_mib(conn)
        node = NodeInfo(mem_total_mib=int(mem_total_mib), cpus=int(cpus), load=self._load(),
                        mem_free_mib=max(int(mem_total_mib) - used_kib // 1024, 0)
                        if free is None else free)
        return Usage(node=node, running=len(infos), vcpus=sum(int(i[3]) for i in infos),
                     memory_mib=sum(int(i[1]) for i in infos) // 1024)

    def _host_free_mib(self, conn: libvirt.virConnect) -> int | None:
        """Free + buffers + cache of the host; None where the driver has no such figure."""
        try:
            stats = conn.getMemoryStats(libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS)
        except libvirt.libvirtError as err:
            if err.get_error_code() != libvirt.VIR_ERR_NO_SUPPORT:
                raise
            return None
        return sum(int(stats.get(key, 0)) for key in ("free", "buffers", "cached")) // 1024

    def _load(self) -> float:
        parts = urlsplit(self._uri)
        if parts.scheme == "test" or parts.hostname not in (None, "", "localhost"):
            return 0.0
        return os.getloadavg()[0]

    # -- migration --

    @property
    def live_migration_supported(self) -> bool:
        """True when the driver advertises live migration (QEMU); the test driver has none."""
        if self._live_migration is None:
            with _libvirt_call(f"cannot read capabilities of {self._uri}"):
                caps = ElementTree.fromstring(self._connection().getCapabilities())
            self._live_migration = caps.find("host/migration_features/live") is not None
        return self._live_migration

    def migrate_live(self, name: str, dest_uri: str, *, migrate_uri: str | None = None,
                     max_downtime_ms: int | None = None, timeout_s: float | None = None) -> None:
        """Live-migrate to the libvirtd at dest_uri (peer to peer; the definition moves with
        it). `migrate_uri` picks the data channel, `max_downtime_ms` the final pause allowed,
        `timeout_s` aborts a migration that has not finished by then."""
        if not self.live_migration_supported:
            driver = str(self._connection().getType()).lower()
            raise HypervisorError(f"live migration is not supported by the {driver} driver "
                                  f"(domain {name!r})", code=libvirt.VIR_ERR_NO_SUPPORT)
        dom = self._get(name, "migrate")
        what = f"cannot migrate {name!r} to {dest_uri}"
        if max_downtime_ms is not None:
            with _libvirt_call(what):
                dom.migrateSetMaxDowntime(max_downtime_ms)
        params = {} if migrate_uri is None else {libvirt.VIR_MIGRATE_PARAM_URI: migrate_uri}
        self._migrate(dom, dest_uri, params, timeout_s=timeout_s, what=what)

    def migrating_out(self, name: str) -> bool:
        """True while an outgoing migration job of the domain runs here (one this daemon
        started before a restart, or someone else's)."""
        dom = self._find(name)
        if dom is None:
            return False
        try:
            stats = dom.jobStats()
        except libvirt.libvirtError as err:
            if err.get_error_code() in (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_NO_SUPPORT,
                                        libvirt.VIR_ERR_OPERATION_INVALID):
                return False
            raise HypervisorError(f"cannot read the job of {name!r}: "
                                  f"{err.get_error_message()}", code=err.get_error_code()) from err
        return bool(stats.get("type", libvirt.VIR_DOMAIN_JOB_NONE) != libvirt.VIR_DOMAIN_JOB_NONE
                    and stats.get("operation") == libvirt.VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT)

    def completed_migration(self, name: str) -> MigrationStats | None:
        """The statistics of the last migration that brought the domain here (libvirt keeps
        the completed job's on the destination too), or None when there are none."""
        dom = self._find(name)
        if dom is None:
            return None
        try:
            stats = dom.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
        except libvirt.libvirtError:
            return None
        if stats.get("operation") not in (libvirt.VIR_DOMAIN_JOB_OPERATION_MIGRATION_IN,
                                          libvirt.VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT):
            return None
        return MigrationStats(elapsed_ms=int(stats.get("time_elapsed", 0)),
                              downtime_ms=int(stats.get("downtime", 0)),
                              transferred_bytes=int(stats.get("data_processed", 0)))

    def _migrate(self, dom: libvirt.virDomain, dest_uri: str, params: dict[str, str], *,
                 timeout_s: float | None, what: str) -> None:
        flags = (libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER
                 | libvirt.VIR_MIGRATE_PERSIST_DEST | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE)
        expired = threading.Event()

        def abort() -> None:
            expired.set()
            with suppress(libvirt.libvirtError):
                dom.abortJob()

        timer = None if timeout_s is None else threading.Timer(timeout_s, abort)
        if timer is not None:
            timer.start()
        try:
            with _libvirt_call(what):
                dom.migrateToURI3(dest_uri, params, flags)
        except HypervisorError as err:
            if expired.is_set():
                raise HypervisorError(f"{what}: aborted after {timeout_s} s",
                                      code=libvirt.VIR_ERR_OPERATION_ABORTED) from err
            raise
        finally:
            if timer is not None:
                timer.cancel()

    # -- helpers --

    def _find(self, name: str) -> libvirt.virDomain | None:
        try:
            return self._connection().lookupByName(name)
        except libvirt.libvirtError as err:
            if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise HypervisorError(f"cannot look up {name!r}: {err.get_error_message()}",
                                  code=err.get_error_code()) from err

    def _get(self, name: str, verb: str) -> libvirt.virDomain:
        dom = self._find(name)
        if dom is None:
            raise HypervisorError(f"cannot {verb} {name!r}: no such domain on {self._uri}",
                                  code=libvirt.VIR_ERR_NO_DOMAIN)
        return dom

    @staticmethod
    def _unless_active(dom: libvirt.virDomain, *, want_active: bool, op: Callable[[], object],
                       what: str) -> None:
        """Run op unless the domain is already active (want_active) or inactive (not
        want_active); a failure that left it that way anyway (a race) is no error."""
        with _libvirt_call(what):
            if bool(dom.isActive()) == want_active:
                return
            try:
                op()
            except libvirt.libvirtError:
                if bool(dom.isActive()) != want_active:
                    raise

    @staticmethod
    def _undefine(dom: libvirt.virDomain) -> None:
        """undefineFlags with every cleanup flag, then fewer for drivers that reject some (the
        test driver knows no NVRAM or checkpoints: "unsupported flags")."""
        for flags in _UNDEFINE_FLAGS:
            try:
                dom.undefineFlags(flags)
                return
            except libvirt.libvirtError as err:
                if err.get_error_code() not in (libvirt.VIR_ERR_INVALID_ARG,
                                                libvirt.VIR_ERR_NO_SUPPORT):
                    raise
        dom.undefine()

    def _describe(self, dom: libvirt.virDomain) -> DomainInfo | None:
        """The domain's DomainInfo, or None if it vanished meanwhile."""
        name = str(dom.name())
        try:
            state, max_kib, _mem_kib, vcpus, _cpu_time = dom.info()
            persistent = bool(dom.isPersistent())
            domain_id = int(dom.ID()) if state != libvirt.VIR_DOMAIN_SHUTOFF else -1
            # Paused for a migration: incoming on the destination, which holds it paused
            # "starting up", then "migration", until the source hands over (the source's
            # paused domain is placed elsewhere; its reconciler sees the job instead).
            incoming = (state == libvirt.VIR_DOMAIN_PAUSED
                        and dom.state()[1] in _INCOMING_PAUSE)
        except libvirt.libvirtError as err:
            if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise HypervisorError(f"cannot read the state of {name!r}: "
                                  f"{err.get_error_message()}", code=err.get_error_code()) from err
        return DomainInfo(name=name, uuid=str(dom.UUIDString()), state=_state(state, domain_id),
                          domain_id=domain_id if domain_id >= 0 else None,
                          memory_mib=max_kib // 1024, vcpus=vcpus, persistent=persistent,
                          migrating_in=incoming)

    # -- events --

    async def start_events(self, callback: EventCallback, *,
                           on_disconnect: DisconnectCallback | None = None) -> None:
        """Deliver lifecycle events to callback(name, kind, detail) on the running loop, and
        connection loss to on_disconnect(reason). Both must only enqueue."""
        loop = asyncio.get_running_loop()
        if self._events is not None:
            raise HypervisorError(f"events of {self._uri} are already started "
                                  "(stop_events() ends them)")
        bind_event_loop(loop)
        self._check_event_capable(loop)
        events = self._events = _Events(callback=callback, on_disconnect=on_disconnect,
                                        loop=loop)
        try:
            await asyncio.to_thread(self._register_events, events)
        except BaseException:
            await self.stop_events()
            raise

    async def stop_events(self) -> None:
        """Deregister the callback and wait until libvirtaio's leftover tasks have ended."""
        events, self._events = self._events, None
        conn = self._conn
        if events is not None and conn is not None and events.callback_id is not None:
            with suppress(libvirt.libvirtError):
                await asyncio.to_thread(conn.domainEventDeregisterAny, events.callback_id)
        await settle_events()

    def _check_event_capable(self, loop: asyncio.AbstractEventLoop) -> None:
        self._connection()
        if self._opened_with_loop is loop or urlsplit(self._uri).scheme == "test":
            return  # the test driver needs timers only, added at registration
        raise HypervisorError(f"the connection to {self._uri} was opened before "
                              "bind_event_loop() on this loop: it cannot deliver events")

    def _register_events(self, events: _Events) -> None:
        with _libvirt_call(f"cannot register for events on {self._uri}"):
            events.callback_id = self._connection().domainEventRegisterAny(
                None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._on_lifecycle, events)

    def _deregister_events(self, conn: libvirt.virConnect) -> None:
        events = self._events
        if events is not None and events.callback_id is not None:
            with suppress(libvirt.libvirtError):
                conn.domainEventDeregisterAny(events.callback_id)
            events.callback_id = None

    @staticmethod
    def _on_lifecycle(_conn: libvirt.virConnect, dom: libvirt.virDomain, event: int,
                      detail: int, events: _Events) -> None:
        kind = _EVENT_KINDS.get(event)
        if kind is None:
            log.debug("ignoring unknown lifecycle event %d of %s", event, dom.name())
            return
        _on_loop(events.loop, events.callback, str(dom.name()), kind, detail)


def _state(state: int, domain_id: int) -> DomainState:
    if state == libvirt.VIR_DOMAIN_NOSTATE:
        return DomainState.RUNNING if domain_id >= 0 else DomainState.DEFINED
    return _STATES.get(state, DomainState.RUNNING)


def _with_uuid(xml: str, uuid: str) -> str:
    """The domain XML with <uuid> added right after the root tag, unless it has one."""
    try:
        if ElementTree.fromstring(xml).find("uuid") is not None:
            return xml
    except Exception:  # malformed: libvirt will say why
        return xml
    root = _ROOT_TAG.search(xml)
    if root is None:
        return xml
    return f"{xml[:root.end()]}<uuid>{uuid}</uuid>{xml[root.end():]}"


def _name_in(xml: str) -> str | None:
    """The <name> of a domain XML; None when there is none to read."""
    try:
        name = ElementTree.fromstring(xml).findtext("name")
    except Exception:  # malformed XML: libvirt's own message says why
        return None
    return name.strip() if name and name.strip() else None
