"""The libvirt adapter against libvirt's test driver: one node file per test, libvirt's state
checked directly, lifecycle events through libvirtaio on the test's own asyncio loop."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest

from reconciler.hypervisor import (
    DomainState,
    EventKind,
    Hypervisor,
    HypervisorError,
    bind_event_loop,
    settle_events,
)
from tests.support.libvirt_nodes import simple_domain_xml, write_node_file

VM1 = ("<domain type='test'><name>vm1</name><memory unit='MiB'>512</memory><vcpu>1</vcpu>"
       "<os><type>hvm</type></os></domain>")
STUBBORN = simple_domain_xml("stubborn", on_poweroff="restart")
Event = tuple[str, EventKind, int]


@pytest.fixture
def node_uri(tmp_path: Path) -> str:
    return write_node_file(tmp_path, "node1", cpus=6, memory_mib=16384)


@pytest.fixture
def hv(node_uri: str) -> Iterator[Hypervisor]:
    h = Hypervisor(node_uri)
    h.open()
    yield h
    h.close()


def state(hv: Hypervisor, name: str) -> DomainState:
    info = hv.domain(name)
    return DomainState.ABSENT if info is None else info.state


# --- verbs ----------------------------------------------------------------------------------

def test_define_lists_a_shut_off_domain(hv: Hypervisor) -> None:
    info = hv.define(VM1)
    listed = hv.list_domains()
    assert set(listed) == {"vm1"}
    assert listed["vm1"] == info
    assert info.state is DomainState.DEFINED
    assert (info.domain_id, info.memory_mib, info.vcpus, info.persistent) == (None, 512, 1, True)
    assert len(info.uuid) == 36


def test_define_again_updates_the_definition(hv: Hypervisor) -> None:
    first = hv.define(VM1)
    second = hv.define(VM1.replace("512", "1024"))  # no <uuid>: the existing one is kept
    assert (second.uuid, second.memory_mib) == (first.uuid, 1024)
    hv.start("vm1")
    hv.define(VM1.replace("512", "2048"))  # a running domain gets it at its next boot
    assert "<memory unit='KiB'>2097152</memory>" in hv.domain_xml("vm1", inactive=True)
    assert hv.list_domains()["vm1"].memory_mib == 1024


def test_start_runs_the_domain_and_again_is_a_no_op(hv: Hypervisor) -> None:
    hv.define(VM1)
    hv.start("vm1")
    running = hv.domain("vm1")
    assert running is not None and running.state is DomainState.RUNNING
    assert running.domain_id is not None and running.domain_id > 0
    hv.start("vm1")
    assert hv.domain("vm1") == running  # same run, same id


def test_shutdown_completes_at_once_on_the_test_driver(hv: Hypervisor) -> None:
    hv.define(VM1)
    hv.start("vm1")
    hv.shutdown("vm1")
    info = hv.domain("vm1")
    assert info is not None and info.state is DomainState.DEFINED and info.domain_id is None


def test_a_guest_that_ignores_acpi_keeps_running_until_destroyed(hv: Hypervisor) -> None:
    hv.define(STUBBORN)
    hv.start("stubborn")
    before = hv.domain("stubborn")
    hv.shutdown("stubborn")
    assert hv.domain("stubborn") == before  # still running, same id
    hv.destroy("stubborn")
    assert state(hv, "stubborn") is DomainState.DEFINED


def test_undefine_removes_the_definition(hv: Hypervisor) -> None:
    hv.define(VM1)
    hv.undefine("vm1")
    assert state(hv, "vm1") is DomainState.ABSENT
    assert hv.list_domains() == {}


def test_stopping_verbs_on_off_or_absent_domains_are_no_ops(hv: Hypervisor) -> None:
    hv.define(VM1)
    hv.shutdown("vm1")
    hv.destroy("vm1")
    assert state(hv, "vm1") is DomainState.DEFINED
    hv.undefine("vm1")
    for verb in (hv.shutdown, hv.destroy, hv.undefine):
        verb("vm1")
        verb("never-defined")
    assert hv.list_domains() == {}


def test_start_of_an_absent_domain_raises(hv: Hypervisor) -> None:
    with pytest.raises(HypervisorError, match="cannot start 'ghost': no such domain") as err:
        hv.start("ghost")
    assert err.value.code == libvirt.VIR_ERR_NO_DOMAIN


def test_define_of_bad_xml_raises_a_clear_error(hv: Hypervisor) -> None:
    with pytest.raises(HypervisorError, match=r"cannot define domain '\?': .*Premature end"):
        hv.define("<domain>")
    no_os = "<domain type='test'><name>vm2</name><memory>1024</memory></domain>"
    with pytest.raises(HypervisorError, match=r"cannot define domain 'vm2': .*os <type>") as err:
        hv.define(no_os)
    assert err.value.code == libvirt.VIR_ERR_XML_ERROR
    assert hv.list_domains() == {}


def test_domain_xml_is_libvirts_definition(hv: Hypervisor) -> None:
    hv.define(VM1)
    xml = hv.domain_xml("vm1", inactive=True)
    assert "<name>vm1</name>" in xml and "<uuid>" in xml
    with pytest.raises(HypervisorError, match="'ghost'"):
        hv.domain_xml("ghost")


def test_calls_on_a_closed_adapter_raise(node_uri: str) -> None:
    h = Hypervisor(node_uri)
    with pytest.raises(HypervisorError, match="not connected") as err:
        h.list_domains()
    assert err.value.code == libvirt.VIR_ERR_NO_CONNECT
    h.open()
    assert h.connected
    h.close()
    assert not h.connected


# --- the node -------------------------------------------------------------------------------

def test_node_info_is_the_node_file(hv: Hypervisor) -> None:
    info = hv.node_info()
    assert (info.mem_total_mib, info.mem_free_mib, info.cpus) == (16384, 16384, 6)
    assert info.load == 0.0  # the test driver has no load average
    hv.define(VM1)
    hv.start("vm1")
    assert hv.node_info().mem_free_mib == 16384 - 512  # total minus running domains


def test_domains_of_the_node_file_are_running(tmp_path: Path) -> None:
    uri = write_node_file(tmp_path, "busy", domains=[simple_domain_xml("old", memory_mib=1024)])
    h = Hypervisor(uri)
    h.open()
    try:
        assert state(h, "old") is DomainState.RUNNING
        assert h.node_info().mem_free_mib == 32768 - 1024
    finally:
        h.close()


def test_each_connection_has_its_own_copy_of_the_node_file(node_uri: str, hv: Hypervisor) -> None:
    other = Hypervisor(node_uri)
    other.open()
    try:
        hv.define(VM1)
        hv.start("vm1")
        assert other.list_domains() == {}  # the test driver shares nothing between opens
        other.define(simple_domain_xml("vm2"))
        assert set(hv.list_domains()) == {"vm1"}
    finally:
        other.close()
    hv.reconnect()  # a new connection reads the file again: vm1 is gone
    assert hv.list_domains() == {}


def test_live_migration_is_unsupported_on_the_test_driver(
        tmp_path: Path, hv: Hypervisor) -> None:
    dest = write_node_file(tmp_path, "node2")
    assert hv.live_migration_supported is False
    hv.define(VM1)
    hv.start("vm1")
    with pytest.raises(HypervisorError,
                       match="live migration is not supported by the test driver") as err:
        hv.migrate_live("vm1", dest)
    assert err.value.code == libvirt.VIR_ERR_NO_SUPPORT
    assert state(hv, "vm1") is DomainState.RUNNING


# --- events ---------------------------------------------------------------------------------

async def next_event(queue: asyncio.Queue[Event]) -> Event:
    return await asyncio.wait_for(queue.get(), timeout=5.0)


async def test_lifecycle_events_arrive_on_the_loop(hv: Hypervisor) -> None:
    asyncio.get_running_loop().set_debug(True)  # catches loop calls from the wrong thread
    queue: asyncio.Queue[Event] = asyncio.Queue()
    await hv.start_events(lambda *event: queue.put_nowait(event))
    steps = [
        (hv.define, VM1, (EventKind.DEFINED, libvirt.VIR_DOMAIN_EVENT_DEFINED_ADDED)),
        (hv.start, "vm1", (EventKind.STARTED, libvirt.VIR_DOMAIN_EVENT_STARTED_BOOTED)),
        (hv.shutdown, "vm1", (EventKind.STOPPED, libvirt.VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN)),
        (hv.start, "vm1", (EventKind.STARTED, libvirt.VIR_DOMAIN_EVENT_STARTED_BOOTED)),
        (hv.destroy, "vm1", (EventKind.STOPPED, libvirt.VIR_DOMAIN_EVENT_STOPPED_DESTROYED)),
        (hv.undefine, "vm1", (EventKind.UNDEFINED, libvirt.VIR_DOMAIN_EVENT_UNDEFINED_REMOVED)),
    ]
    for verb, arg, (kind, detail) in steps:
        await asyncio.to_thread(verb, arg)  # as the daemon calls it: from a worker thread
        assert await next_event(queue) == ("vm1", kind, detail)
    await hv.stop_events()
    assert asyncio.all_tasks() == {asyncio.current_task()}  # libvirtaio left nothing behind
    assert queue.empty()


async def test_events_of_calls_made_on_the_loop_thread(hv: Hypervisor) -> None:
    queue: asyncio.Queue[Event] = asyncio.Queue()
    await hv.start_events(lambda *event: queue.put_nowait(event))
    try:
        hv.define(STUBBORN)
        hv.start("stubborn")
        hv.shutdown("stubborn")  # ignored by the guest: no event
        hv.destroy("stubborn")
        kinds = [(await next_event(queue))[1] for _ in range(3)]
        assert kinds == [EventKind.DEFINED, EventKind.STARTED, EventKind.STOPPED]
    finally:
        await hv.stop_events()
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_events_cannot_be_started_twice(hv: Hypervisor) -> None:
    await hv.start_events(lambda *_event: None)
    try:
        with pytest.raises(HypervisorError, match="already started"):
            await hv.start_events(lambda *_event: None)
    finally:
        await hv.stop_events()


def test_events_follow_the_process_to_a_new_loop(hv: Hypervisor) -> None:
    """libvirt takes one event implementation per process; each asyncio loop gets it in turn."""
    async def one_round(name: str) -> Event:
        queue: asyncio.Queue[Event] = asyncio.Queue()
        await hv.start_events(lambda *event: queue.put_nowait(event))
        try:
            await asyncio.to_thread(hv.define, simple_domain_xml(name))
            return await next_event(queue)
        finally:
            await hv.stop_events()

    assert asyncio.run(one_round("a")) == ("a", EventKind.DEFINED, 0)
    assert asyncio.run(one_round("b")) == ("b", EventKind.DEFINED, 0)


def open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


async def test_libvirt_handles_added_and_removed_from_threads() -> None:
    """The path a remote connection's socket takes (libvirt's event API, from worker
    threads): the callback runs on the loop thread with libvirt's own descriptor, and once
    removed nothing is left: no duplicate descriptor, no task."""
    asyncio.get_running_loop().set_debug(True)
    bind_event_loop()
    fds_before = open_fds()
    ours, theirs = socket.socketpair()
    fired: asyncio.Queue[tuple[int, int, bool]] = asyncio.Queue()

    def on_readable(_watch: int, fd: int, events: int, _opaque: object) -> None:
        ours.recv(16)
        fired.put_nowait((fd, events, threading.current_thread() is threading.main_thread()))

    watch = await asyncio.to_thread(libvirt.virEventAddHandle, ours.fileno(),
                                    libvirt.VIR_EVENT_HANDLE_READABLE, on_readable, None)
    theirs.send(b"x")
    got = await asyncio.wait_for(fired.get(), timeout=5.0)
    assert got == (ours.fileno(), libvirt.VIR_EVENT_HANDLE_READABLE, True)
    assert await asyncio.to_thread(libvirt.virEventRemoveHandle, watch) == 0
    ours.close()
    theirs.close()
    await settle_events()
    assert open_fds() == fds_before
    assert asyncio.all_tasks() == {asyncio.current_task()}
