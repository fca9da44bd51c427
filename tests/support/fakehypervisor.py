"""An in-memory `Hypervisor` for unit tests: domains in a dict, no libvirt, no threads.

It answers as libvirt's test driver does where `tests/support/hvcontract.py` checks both
(define, start, shutdown, destroy, undefine, run states, errors, lifecycle events), and
says what it cannot do instead of pretending: no live migration. A guest ignores ACPI
shutdown when its XML says `<on_poweroff>restart</on_poweroff>` (as on the test driver) or
its name is in `stubborn`. Events go to the callback through `loop.call_soon`, after the
verb, as libvirt's arrive. `domain_xml` gives the XML as defined (libvirt's is normalized).
Used by unit tests of code that holds a `Hypervisor`.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from dataclasses import dataclass

import libvirt
from marshmallow import ValidationError

from reconciler.libvirt import (
    DisconnectCallback,
    DomainInfo,
    DomainStats,
    EventCallback,
    EventKind,
    HypervisorError,
    MigrationProgress,
    MigrationStats,
    NodeInfo,
    RunState,
    Usage,
)
from schemas.domainxml import domain_resources, parse_domain_xml

UP = (RunState.RUNNING, RunState.PAUSED)


@dataclass(frozen=True)
class Definition:
    """What a domain XML defines, as far as the fake cares."""

    xml: str
    memory_mib: int
    vcpus: int
    ignores_acpi: bool


@dataclass
class FakeDomain:
    name: str
    uuid: str
    config: Definition  # the persistent definition (applies at the next start)
    live: Definition | None = None  # what it runs with, while up
    state: RunState = RunState.DEFINED
    domain_id: int | None = None
    persistent: bool = True

    def info(self) -> DomainInfo:
        run = self.live or self.config
        return DomainInfo(name=self.name, uuid=self.uuid, state=self.state,
                          domain_id=self.domain_id, memory_mib=run.memory_mib, vcpus=run.vcpus,
                          persistent=self.persistent)


class FakeHypervisor:
    """One fake node: `domains` by name, `stubborn` guests, the node's memory and CPUs."""

    def __init__(self, uri: str = "fake:///node", *, mem_total_mib: int = 16384,
                 cpus: int = 8) -> None:
        self.uri = uri
        self.mem_total_mib = mem_total_mib
        self.cpus = cpus
        self.domains: dict[str, FakeDomain] = {}
        self.stubborn: set[str] = set()  # guests that ignore ACPI shutdown
        self.stats_calls = 0  # all_domain_stats calls made
        self._ids = itertools.count(1)
        self._open = False
        self._events: tuple[EventCallback, asyncio.AbstractEventLoop] | None = None

    @property
    def connected(self) -> bool:
        return self._open

    @property
    def live_migration_supported(self) -> bool:
        return False

    async def open(self) -> None:
        self._open = True

    async def close(self) -> None:
        self._open = False

    async def reconnect(self) -> None:
        self._open = True  # the state stays, as libvirtd keeps it

    # -- domains --

    async def list_domains(self) -> dict[str, DomainInfo]:
        self._check()
        return {name: dom.info() for name, dom in self.domains.items()}

    async def domain(self, name: str) -> DomainInfo | None:
        self._check()
        dom = self.domains.get(name)
        return None if dom is None else dom.info()

    async def define(self, xml: str) -> DomainInfo:
        self._check()
        name, definition, given_uuid = _parse(xml)
        dom = self.domains.get(name)
        if dom is None:
            dom = self.domains[name] = FakeDomain(
                name=name, uuid=given_uuid or str(uuid.uuid4()), config=definition)
            self._emit(name, EventKind.DEFINED, libvirt.VIR_DOMAIN_EVENT_DEFINED_ADDED)
        else:
            dom.config, dom.persistent = definition, True
            self._emit(name, EventKind.DEFINED, libvirt.VIR_DOMAIN_EVENT_DEFINED_UPDATED)
        return dom.info()

    async def start(self, name: str) -> None:
        dom = self._get(name, "start")
        if dom.state in UP:
            return
        dom.state, dom.domain_id, dom.live = RunState.RUNNING, next(self._ids), dom.config
        self._emit(name, EventKind.STARTED, libvirt.VIR_DOMAIN_EVENT_STARTED_BOOTED)

    async def shutdown(self, name: str) -> None:
        self._check()
        dom = self.domains.get(name)
        if dom is None or dom.state not in UP:
            return
        assert dom.live is not None
        if name in self.stubborn or dom.live.ignores_acpi:
            return  # the guest ignores the request: no change, no event
        self._power_off(dom, libvirt.VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN)

    async def destroy(self, name: str) -> None:
        self._check()
        dom = self.domains.get(name)
        if dom is not None and dom.state in UP:
            self._power_off(dom, libvirt.VIR_DOMAIN_EVENT_STOPPED_DESTROYED)

    async def undefine(self, name: str) -> None:
        self._check()
        dom = self.domains.get(name)
        if dom is None:
            return
        if dom.state in UP:
            dom.persistent = False  # runs on as a transient domain
        else:
            del self.domains[name]
        self._emit(name, EventKind.UNDEFINED, libvirt.VIR_DOMAIN_EVENT_UNDEFINED_REMOVED)

    async def domain_xml(self, name: str, *, inactive: bool = False) -> str:
        dom = self._get(name, "read the XML of")
        return (dom.config if inactive or dom.live is None else dom.live).xml

    # -- node --

    async def node_info(self) -> NodeInfo:
        return (await self.usage()).node

    async def usage(self) -> Usage:
        self._check()
        up = [dom.info() for dom in self.domains.values() if dom.state in UP]
        memory = sum(info.memory_mib for info in up)
        node = NodeInfo(mem_total_mib=self.mem_total_mib, cpus=self.cpus, load=0.0,
                        mem_free_mib=max(self.mem_total_mib - memory, 0))
        return Usage(node=node, running=len(up), memory_mib=memory,
                     vcpus=sum(info.vcpus for info in up))

    async def all_domain_stats(self) -> list[DomainStats]:
        """Each domain's state and balloon (its memory); no CPU, disk or network figures."""
        self._check()
        self.stats_calls += 1
        return [DomainStats(name=dom.name, state=dom.state,
                            balloon_current_bytes=dom.info().memory_mib << 20,
                            balloon_maximum_bytes=dom.info().memory_mib << 20)
                for dom in self.domains.values()]

    # -- migration: none --

    async def migrate_live(self, name: str, dest_uri: str, *, migrate_uri: str | None = None,
                           max_downtime_ms: int | None = None, timeout_s: float | None = None,
                           copy_disks: tuple[str, ...] = (),
                           shared_storage: bool = False) -> None:
        self._check()
        raise HypervisorError(f"live migration is not supported by the fake driver "
                              f"(domain {name!r})", code=libvirt.VIR_ERR_NO_SUPPORT)

    async def migration_progress(self, name: str) -> MigrationProgress | None:
        self._check()
        return None

    async def migrating_out(self, name: str) -> bool:
        self._check()
        return False

    async def completed_migration(self, name: str) -> MigrationStats | None:
        self._check()
        return None

    # -- events --

    async def start_events(self, callback: EventCallback, *,
                           on_disconnect: DisconnectCallback | None = None) -> None:
        if self._events is not None:
            raise HypervisorError(f"events of {self.uri} are already started "
                                  "(stop_events() ends them)")
        self._check()
        self._events = (callback, asyncio.get_running_loop())

    async def stop_events(self) -> None:
        self._events = None

    # -- helpers --

    def _check(self) -> None:
        if not self._open:
            raise HypervisorError(f"not connected to {self.uri}",
                                  code=libvirt.VIR_ERR_NO_CONNECT)

    def _get(self, name: str, verb: str) -> FakeDomain:
        self._check()
        dom = self.domains.get(name)
        if dom is None:
            raise HypervisorError(f"cannot {verb} {name!r}: no such domain on {self.uri}",
                                  code=libvirt.VIR_ERR_NO_DOMAIN)
        return dom

    def _power_off(self, dom: FakeDomain, detail: int) -> None:
        dom.state, dom.domain_id, dom.live = RunState.DEFINED, None, None
        if not dom.persistent:
            del self.domains[dom.name]
        self._emit(dom.name, EventKind.STOPPED, detail)

    def _emit(self, name: str, kind: EventKind, detail: int) -> None:
        if self._events is not None:
            callback, loop = self._events
            loop.call_soon(callback, name, kind, detail)


def _parse(xml: str) -> tuple[str, Definition, str | None]:
    """The name, definition and <uuid> (if any) of a domain XML; HypervisorError as
    libvirt's define raises it for XML it cannot read."""
    try:
        root = parse_domain_xml(xml)
        resources = domain_resources(xml)
    except ValidationError as err:
        raise HypervisorError(f"cannot define domain '?': {err.messages}",
                              code=libvirt.VIR_ERR_XML_ERROR) from err
    name = (root.findtext("name") or "").strip()
    if not name:
        raise HypervisorError("cannot define domain '?': missing domain name",
                              code=libvirt.VIR_ERR_NO_NAME)
    definition = Definition(xml=xml, memory_mib=resources.memory_kib // 1024,
                            vcpus=resources.vcpus,
                            ignores_acpi=(root.findtext("on_poweroff") or "").strip() == "restart")
    return name, definition, (root.findtext("uuid") or "").strip() or None

