"""The libvirt adapter against libvirt's test driver: one node file per test, libvirt's state
checked directly, lifecycle events through libvirtaio on the test's own asyncio loop. The
checks the in-memory fake must pass too are in tests/support/hvcontract.py, run here on the
real adapter."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import libvirt
import pytest

from reconciler.libvirt import EventKind, HypervisorError, RunState
from reconciler.libvirt import domains as blocking
from reconciler.libvirt.adapter import LibvirtHypervisor
from reconciler.libvirt.events import bind_event_loop, settle_events
from reconciler.libvirt.interface import PERMANENT_CODES
from tests.support.hvcontract import (
    CONTRACT,
    STUBBORN,
    VM1,
    Check,
    Event,
    check_id,
    next_event,
    state,
)
from tests.support.libvirt_nodes import simple_domain_xml, write_node_file


@pytest.fixture
def node_uri(tmp_path: Path) -> str:
    return write_node_file(tmp_path, "node1", cpus=6, memory_mib=16384)


@pytest.fixture
async def hv(node_uri: str) -> AsyncIterator[LibvirtHypervisor]:
    h = LibvirtHypervisor(node_uri)
    await h.open()
    yield h
    await h.close()


@pytest.mark.parametrize("check", CONTRACT, ids=check_id)
async def test_contract(hv: LibvirtHypervisor, check: Check) -> None:
    await check(hv)


# --- verbs ----------------------------------------------------------------------------------

async def test_define_again_updates_the_definition(hv: LibvirtHypervisor) -> None:
    first = await hv.define(VM1)
    second = await hv.define(VM1.replace("512", "1024"))  # no <uuid>: the existing one is kept
    assert (second.uuid, second.memory_mib) == (first.uuid, 1024)
    await hv.start("vm1")
    await hv.define(VM1.replace("512", "2048"))  # a running domain gets it at its next boot
    assert "<memory unit='KiB'>2097152</memory>" in await hv.domain_xml("vm1", inactive=True)
    assert (await hv.list_domains())["vm1"].memory_mib == 1024


async def test_define_of_bad_xml_raises_a_clear_error(hv: LibvirtHypervisor) -> None:
    with pytest.raises(HypervisorError, match=r"cannot define domain '\?': .*Premature end"):
        await hv.define("<domain>")
    no_os = "<domain type='test'><name>vm2</name><memory>1024</memory></domain>"
    with pytest.raises(HypervisorError, match=r"cannot define domain 'vm2': .*os <type>") as err:
        await hv.define(no_os)
    assert err.value.code == libvirt.VIR_ERR_XML_ERROR and err.value.permanent
    assert await hv.list_domains() == {}


async def test_refusals_of_the_xml_as_such_are_permanent_and_others_are_not(
        hv: LibvirtHypervisor) -> None:
    names = ("VIR_ERR_NO_SUPPORT", "VIR_ERR_XML_ERROR", "VIR_ERR_XML_DETAIL",
             "VIR_ERR_CONFIG_UNSUPPORTED", "VIR_ERR_OPERATION_UNSUPPORTED",
             "VIR_ERR_XML_INVALID_SCHEMA")
    assert {getattr(libvirt, n) for n in names} == PERMANENT_CODES
    bogus = VM1.replace("</domain>", "<devices><video><model type='bogus'/></video>"
                                     "</devices></domain>")
    with pytest.raises(HypervisorError) as refused:
        await hv.define(bogus)
    assert refused.value.code == libvirt.VIR_ERR_CONFIG_UNSUPPORTED and refused.value.permanent
    with pytest.raises(HypervisorError) as missing:
        await hv.start("nothing-here")
    assert not missing.value.permanent  # may exist by the next try


async def test_domain_xml_is_libvirts_definition(hv: LibvirtHypervisor) -> None:
    await hv.define(VM1)
    xml = await hv.domain_xml("vm1", inactive=True)
    assert "<name>vm1</name>" in xml and "<uuid>" in xml
    with pytest.raises(HypervisorError, match="'ghost'"):
        await hv.domain_xml("ghost")


async def test_calls_on_a_closed_adapter_raise(node_uri: str) -> None:
    h = LibvirtHypervisor(node_uri)
    with pytest.raises(HypervisorError, match="not connected") as err:
        await h.list_domains()
    assert err.value.code == libvirt.VIR_ERR_NO_CONNECT
    await h.open()
    assert h.connected
    await h.close()
    assert not h.connected


IMPORT_ONLY = """
import asyncio, socket, sys
import libvirt
import reconciler.libvirt, reconciler.libvirt.adapter, reconciler.libvirt.events

def fail(mark):
    print(mark, file=sys.stderr, flush=True)
    try:
        libvirt.open("test:///no/such/node.xml")
    except libvirt.libvirtError:
        pass

ours, _theirs = socket.socketpair()
try:
    libvirt.virEventAddHandle(ours.fileno(), libvirt.VIR_EVENT_HANDLE_READABLE,
                              lambda *_args: None, None)
except libvirt.libvirtError as err:
    print("no event implementation:", err)
fail("imported")
hv = reconciler.libvirt.adapter.LibvirtHypervisor(sys.argv[1])
asyncio.run(hv.open())
asyncio.run(hv.close())
fail("opened")
"""


def test_importing_the_package_leaves_libvirt_alone(node_uri: str) -> None:
    """No event implementation and no error handler at import: libvirt has no event loop
    until one is bound, and prints its errors (its default handler) until the adapter opens
    its first connection."""
    run = subprocess.run([sys.executable, "-c", IMPORT_ONLY, node_uri], capture_output=True,
                         text=True, timeout=60, check=True)
    assert run.stdout.startswith("no event implementation:"), run.stdout
    _, _, imported = run.stderr.partition("imported\n")
    imported, _, opened = imported.partition("opened\n")
    assert "libvirt: " in imported, run.stderr
    assert "libvirt: " not in opened, run.stderr


# --- the node -------------------------------------------------------------------------------

async def test_node_info_is_the_node_file(hv: LibvirtHypervisor) -> None:
    info = await hv.node_info()
    assert (info.mem_total_mib, info.mem_free_mib, info.cpus) == (16384, 16384, 6)
    assert info.load == 0.0  # the test driver has no load average
    await hv.define(VM1)
    await hv.start("vm1")
    assert (await hv.node_info()).mem_free_mib == 16384 - 512  # total minus running domains


async def test_domains_of_the_node_file_are_running(tmp_path: Path) -> None:
    uri = write_node_file(tmp_path, "busy", domains=[simple_domain_xml("old", memory_mib=1024)])
    h = LibvirtHypervisor(uri)
    await h.open()
    try:
        assert await state(h, "old") is RunState.RUNNING
        assert (await h.node_info()).mem_free_mib == 32768 - 1024
    finally:
        await h.close()


async def test_each_connection_has_its_own_copy_of_the_node_file(
        node_uri: str, hv: LibvirtHypervisor) -> None:
    other = LibvirtHypervisor(node_uri)
    await other.open()
    try:
        await hv.define(VM1)
        await hv.start("vm1")
        assert await other.list_domains() == {}  # the test driver shares nothing between opens
        await other.define(simple_domain_xml("vm2"))
        assert set(await hv.list_domains()) == {"vm1"}
    finally:
        await other.close()
    await hv.reconnect()  # a new connection reads the file again: vm1 is gone
    assert await hv.list_domains() == {}


async def test_live_migration_is_unsupported_on_the_test_driver(
        tmp_path: Path, hv: LibvirtHypervisor) -> None:
    dest = write_node_file(tmp_path, "node2")
    assert hv.live_migration_supported is False
    await hv.define(VM1)
    await hv.start("vm1")
    with pytest.raises(HypervisorError,
                       match="live migration is not supported by the test driver") as err:
        await hv.migrate_live("vm1", dest)
    assert err.value.code == libvirt.VIR_ERR_NO_SUPPORT
    assert await state(hv, "vm1") is RunState.RUNNING


# --- events ---------------------------------------------------------------------------------

async def test_events_of_calls_made_on_the_loop_thread(hv: LibvirtHypervisor) -> None:
    """libvirt called on the loop thread itself (the blocking verbs under the adapter)."""
    queue: asyncio.Queue[Event] = asyncio.Queue()
    await hv.start_events(lambda *event: queue.put_nowait(event))
    try:
        c = hv.connection
        blocking.define(c, STUBBORN)
        blocking.start(c, "stubborn")
        blocking.shutdown(c, "stubborn")  # ignored by the guest: no event
        blocking.destroy(c, "stubborn")
        kinds = [(await next_event(queue))[1] for _ in range(3)]
        assert kinds == [EventKind.DEFINED, EventKind.STARTED, EventKind.STOPPED]
    finally:
        await hv.stop_events()
    assert asyncio.all_tasks() == {asyncio.current_task()}


def test_events_follow_the_process_to_a_new_loop(node_uri: str) -> None:
    """libvirt takes one event implementation per process; each asyncio loop gets it in turn."""
    hv = LibvirtHypervisor(node_uri)

    async def one_round(name: str) -> Event:
        queue: asyncio.Queue[Event] = asyncio.Queue()
        await hv.start_events(lambda *event: queue.put_nowait(event))
        try:
            await hv.define(simple_domain_xml(name))
            return await next_event(queue)
        finally:
            await hv.stop_events()

    asyncio.run(hv.open())
    try:
        assert asyncio.run(one_round("a")) == ("a", EventKind.DEFINED, 0)
        assert asyncio.run(one_round("b")) == ("b", EventKind.DEFINED, 0)
    finally:
        asyncio.run(hv.close())


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
