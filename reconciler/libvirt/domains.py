"""The blocking domain verbs of the libvirt adapter, and what the domains take of the node.

Each function takes the `Connection` and runs in a worker thread of
`reconciler.libvirt.adapter.LibvirtHypervisor` (which documents the verbs). Idempotent where
the reconciler needs it: starting a running domain, shutting down or destroying a domain
that is off or absent, undefining an absent one are no-ops; a race that leaves the domain
as wanted anyway is no error.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from urllib.parse import urlsplit

import libvirt
from defusedxml import ElementTree

from reconciler.libvirt.connection import Connection, libvirt_call
from reconciler.libvirt.interface import DomainInfo, HypervisorError, NodeInfo, Usage
from vocabulary import RunState

_STATES = {
    libvirt.VIR_DOMAIN_RUNNING: RunState.RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: RunState.RUNNING,
    libvirt.VIR_DOMAIN_SHUTDOWN: RunState.RUNNING,  # running, shutting down
    libvirt.VIR_DOMAIN_PAUSED: RunState.PAUSED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: RunState.PAUSED,
    libvirt.VIR_DOMAIN_SHUTOFF: RunState.DEFINED,
    libvirt.VIR_DOMAIN_CRASHED: RunState.CRASHED,
}

_INCOMING_PAUSE = (libvirt.VIR_DOMAIN_PAUSED_MIGRATION, libvirt.VIR_DOMAIN_PAUSED_STARTING_UP)

_ROOT_TAG = re.compile(r"<domain\b[^>]*>")

_UNDEFINE_FLAGS = (
    libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
    | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM,
    libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA,
)


# --- domains --------------------------------------------------------------------------------

def list_domains(c: Connection) -> dict[str, DomainInfo]:
    with libvirt_call(f"cannot list domains on {c.uri}"):
        doms = c.get().listAllDomains()
    infos = (_describe(dom) for dom in doms)
    return {info.name: info for info in infos if info is not None}


def domain(c: Connection, name: str) -> DomainInfo | None:
    dom = c.find(name)
    return None if dom is None else _describe(dom)


def define(c: Connection, xml: str) -> DomainInfo:
    """libvirt refuses a definition without <uuid> for an existing name ("already exists
    with uuid ..."), so an update without one gets the existing domain's UUID."""
    name = _name_in(xml)
    existing = None if name is None else c.find(name)
    if existing is not None:
        xml = _with_uuid(xml, str(existing.UUIDString()))
    with libvirt_call(f"cannot define domain {name or '?'!r}"):
        dom = c.get().defineXML(xml)
    info = _describe(dom)
    if info is None:
        raise HypervisorError(f"domain {dom.name()!r} vanished right after define",
                              code=libvirt.VIR_ERR_NO_DOMAIN)
    return info


def start(c: Connection, name: str) -> None:
    dom = c.lookup(name, "start")
    _unless_active(dom, want_active=True, op=dom.create, what=f"cannot start {name!r}")


def shutdown(c: Connection, name: str) -> None:
    dom = c.find(name)
    if dom is not None:
        _unless_active(dom, want_active=False, op=dom.shutdown,
                       what=f"cannot shut down {name!r}")


def destroy(c: Connection, name: str) -> None:
    dom = c.find(name)
    if dom is not None:
        _unless_active(dom, want_active=False, op=dom.destroy, what=f"cannot destroy {name!r}")


def undefine(c: Connection, name: str) -> None:
    """With its managed save, snapshot and checkpoint metadata and NVRAM."""
    dom = c.find(name)
    if dom is None:
        return
    try:
        _undefine(dom)
    except libvirt.libvirtError as err:
        if err.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
            raise HypervisorError(f"cannot undefine {name!r}: {err.get_error_message()}",
                                  code=err.get_error_code()) from err


def domain_xml(c: Connection, name: str, *, inactive: bool = False) -> str:
    dom = c.lookup(name, "read the XML of")
    flags = libvirt.VIR_DOMAIN_XML_INACTIVE if inactive else 0
    with libvirt_call(f"cannot read the XML of {name!r}"):
        return str(dom.XMLDesc(flags))


def _describe(dom: libvirt.virDomain) -> DomainInfo | None:
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


def _unless_active(dom: libvirt.virDomain, *, want_active: bool, op: Callable[[], object],
                   what: str) -> None:
    """Run op unless the domain is already active (want_active) or inactive (not
    want_active); a failure that left it that way anyway (a race) is no error."""
    with libvirt_call(what):
        if bool(dom.isActive()) == want_active:
            return
        try:
            op()
        except libvirt.libvirtError:
            if bool(dom.isActive()) != want_active:
                raise


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


def _state(state: int, domain_id: int) -> RunState:
    if state == libvirt.VIR_DOMAIN_NOSTATE:
        return RunState.RUNNING if domain_id >= 0 else RunState.DEFINED
    return _STATES.get(state, RunState.RUNNING)


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


# --- the node -------------------------------------------------------------------------------

def usage(c: Connection) -> Usage:
    """The node and what its running domains take, from ONE listing of the active domains
    (the node status is published often; listing every domain with all its details took
    more libvirt time than the reconciles themselves). Free memory is the host's free +
    buffers + cache; the test driver reports none, so there it is total minus running
    domains."""
    conn = c.get()
    with libvirt_call(f"cannot read the usage of {c.uri}"):
        _model, mem_total_mib, cpus, *_rest = conn.getInfo()
        infos = [info for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)
                 if (info := _info_or_none(dom)) is not None]
    used_kib = sum(int(i[2]) for i in infos)
    free = _host_free_mib(conn)
    node = NodeInfo(mem_total_mib=int(mem_total_mib), cpus=int(cpus), load=_load(c.uri),
                    mem_free_mib=max(int(mem_total_mib) - used_kib // 1024, 0)
                    if free is None else free)
    return Usage(node=node, running=len(infos), vcpus=sum(int(i[3]) for i in infos),
                 memory_mib=sum(int(i[1]) for i in infos) // 1024)


def _info_or_none(dom: libvirt.virDomain) -> list[int] | None:
    """dom.info(), or None when the domain vanished meanwhile."""
    try:
        return list(dom.info())
    except libvirt.libvirtError as err:
        if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return None
        raise


def _host_free_mib(conn: libvirt.virConnect) -> int | None:
    """Free + buffers + cache of the host; None where the driver has no such figure."""
    try:
        stats = conn.getMemoryStats(libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS)
    except libvirt.libvirtError as err:
        if err.get_error_code() != libvirt.VIR_ERR_NO_SUPPORT:
            raise
        return None
    return sum(int(stats.get(key, 0)) for key in ("free", "buffers", "cached")) // 1024


def _load(uri: str) -> float:
    parts = urlsplit(uri)
    if parts.scheme == "test" or parts.hostname not in (None, "", "localhost"):
        return 0.0
    return os.getloadavg()[0]
