"""What every `Hypervisor` answers alike: checks run on the real adapter (libvirt's test
driver, tests/integration/test_hypervisor.py) and on the in-memory fake
(tests/unit/test_fakehypervisor.py), so that the fake stays true to libvirt.

Each check takes an open hypervisor with no domains; `CONTRACT` lists them all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import libvirt
import pytest

from reconciler.libvirt import EventKind, Hypervisor, HypervisorError, RunState
from tests.support.libvirt_nodes import simple_domain_xml

VM1 = ("<domain type='test'><name>vm1</name><memory unit='MiB'>512</memory><vcpu>1</vcpu>"
       "<os><type>hvm</type></os></domain>")
STUBBORN = simple_domain_xml("stubborn", on_poweroff="restart")
Event = tuple[str, EventKind, int]
Check = Callable[[Hypervisor], Awaitable[None]]


async def state(hv: Hypervisor, name: str) -> RunState:
    info = await hv.domain(name)
    return RunState.ABSENT if info is None else info.state


async def next_event(queue: asyncio.Queue[Event]) -> Event:
    return await asyncio.wait_for(queue.get(), timeout=5.0)


# --- verbs ----------------------------------------------------------------------------------

async def define_lists_a_shut_off_domain(hv: Hypervisor) -> None:
    info = await hv.define(VM1)
    listed = await hv.list_domains()
    assert set(listed) == {"vm1"}
    assert listed["vm1"] == info
    assert info.state is RunState.DEFINED
    assert (info.domain_id, info.memory_mib, info.vcpus, info.persistent) == (None, 512, 1, True)
    assert len(info.uuid) == 36


async def start_runs_the_domain_and_again_is_a_no_op(hv: Hypervisor) -> None:
    await hv.define(VM1)
    await hv.start("vm1")
    running = await hv.domain("vm1")
    assert running is not None and running.state is RunState.RUNNING
    assert running.domain_id is not None and running.domain_id > 0
    await hv.start("vm1")
    assert await hv.domain("vm1") == running  # same run, same id


async def shutdown_of_an_obliging_guest_completes_at_once(hv: Hypervisor) -> None:
    await hv.define(VM1)
    await hv.start("vm1")
    await hv.shutdown("vm1")
    info = await hv.domain("vm1")
    assert info is not None and info.state is RunState.DEFINED and info.domain_id is None


async def a_guest_that_ignores_acpi_keeps_running_until_destroyed(hv: Hypervisor) -> None:
    await hv.define(STUBBORN)
    await hv.start("stubborn")
    before = await hv.domain("stubborn")
    await hv.shutdown("stubborn")
    assert await hv.domain("stubborn") == before  # still running, same id
    await hv.destroy("stubborn")
    assert await state(hv, "stubborn") is RunState.DEFINED


async def undefine_removes_the_definition(hv: Hypervisor) -> None:
    await hv.define(VM1)
    await hv.undefine("vm1")
    assert await state(hv, "vm1") is RunState.ABSENT
    assert await hv.list_domains() == {}


async def stopping_verbs_on_off_or_absent_domains_are_no_ops(hv: Hypervisor) -> None:
    await hv.define(VM1)
    await hv.shutdown("vm1")
    await hv.destroy("vm1")
    assert await state(hv, "vm1") is RunState.DEFINED
    await hv.undefine("vm1")
    for verb in (hv.shutdown, hv.destroy, hv.undefine):
        await verb("vm1")
        await verb("never-defined")
    assert await hv.list_domains() == {}


async def start_of_an_absent_domain_raises(hv: Hypervisor) -> None:
    with pytest.raises(HypervisorError, match="cannot start 'ghost': no such domain") as err:
        await hv.start("ghost")
    assert err.value.code == libvirt.VIR_ERR_NO_DOMAIN


async def calls_on_a_closed_hypervisor_raise(hv: Hypervisor) -> None:
    await hv.close()
    assert not hv.connected
    with pytest.raises(HypervisorError, match="not connected") as err:
        await hv.list_domains()
    assert err.value.code == libvirt.VIR_ERR_NO_CONNECT
    await hv.open()
    assert hv.connected


# --- events ---------------------------------------------------------------------------------

async def lifecycle_events_arrive_on_the_loop(hv: Hypervisor) -> None:
    asyncio.get_running_loop().set_debug(True)  # catches loop calls from the wrong thread
    queue: asyncio.Queue[Event] = asyncio.Queue()
    await hv.start_events(lambda *event: queue.put_nowait(event))
    steps: list[tuple[Callable[[str], Awaitable[object]], str, tuple[EventKind, int]]] = [
        (hv.define, VM1, (EventKind.DEFINED, libvirt.VIR_DOMAIN_EVENT_DEFINED_ADDED)),
        (hv.start, "vm1", (EventKind.STARTED, libvirt.VIR_DOMAIN_EVENT_STARTED_BOOTED)),
        (hv.shutdown, "vm1", (EventKind.STOPPED, libvirt.VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN)),
        (hv.start, "vm1", (EventKind.STARTED, libvirt.VIR_DOMAIN_EVENT_STARTED_BOOTED)),
        (hv.destroy, "vm1", (EventKind.STOPPED, libvirt.VIR_DOMAIN_EVENT_STOPPED_DESTROYED)),
        (hv.undefine, "vm1", (EventKind.UNDEFINED, libvirt.VIR_DOMAIN_EVENT_UNDEFINED_REMOVED)),
    ]
    for verb, arg, (kind, detail) in steps:
        await verb(arg)  # the real adapter calls libvirt from a worker thread
        assert await next_event(queue) == ("vm1", kind, detail)
    await hv.stop_events()
    assert asyncio.all_tasks() == {asyncio.current_task()}  # nothing left behind
    assert queue.empty()


async def events_cannot_be_started_twice(hv: Hypervisor) -> None:
    await hv.start_events(lambda *_event: None)
    try:
        with pytest.raises(HypervisorError, match="already started"):
            await hv.start_events(lambda *_event: None)
    finally:
        await hv.stop_events()


async def all_domain_stats_lists_every_domain_with_its_state(hv: Hypervisor) -> None:
    await hv.define(VM1)
    await hv.define(STUBBORN)
    await hv.start("stubborn")
    got = {s.name: s for s in await hv.all_domain_stats()}
    assert {name: s.state for name, s in got.items()} == {"vm1": RunState.DEFINED,
                                                          "stubborn": RunState.RUNNING}
    assert got["vm1"].disks == () and got["vm1"].interfaces == ()


CONTRACT: list[Check] = [
    define_lists_a_shut_off_domain,
    start_runs_the_domain_and_again_is_a_no_op,
    shutdown_of_an_obliging_guest_completes_at_once,
    a_guest_that_ignores_acpi_keeps_running_until_destroyed,
    undefine_removes_the_definition,
    stopping_verbs_on_off_or_absent_domains_are_no_ops,
    start_of_an_absent_domain_raises,
    calls_on_a_closed_hypervisor_raise,
    lifecycle_events_arrive_on_the_loop,
    events_cannot_be_started_twice,
    all_domain_stats_lists_every_domain_with_its_state,
]


def check_id(check: Check) -> str:
    return getattr(check, "__name__", repr(check))
