"""The in-memory fake hypervisor (tests/support/fakehypervisor.py) against the contract the
real adapter passes on libvirt's test driver (tests/support/hvcontract.py), and the few
things only the fake does. No I/O."""

from __future__ import annotations

from collections.abc import AsyncIterator

import libvirt
import pytest

from reconciler.libvirt import Hypervisor, HypervisorError, RunState
from tests.support.fakehypervisor import FakeHypervisor
from tests.support.hvcontract import CONTRACT, VM1, Check, check_id, state
from tests.support.libvirt_nodes import simple_domain_xml


@pytest.fixture
async def hv() -> AsyncIterator[FakeHypervisor]:
    fake = FakeHypervisor(mem_total_mib=16384, cpus=6)
    await fake.open()
    yield fake
    await fake.close()


def test_the_fake_is_a_hypervisor() -> None:
    hv: Hypervisor = FakeHypervisor()  # checked by mypy: the fake implements the protocol
    assert not hv.connected and not hv.live_migration_supported


@pytest.mark.parametrize("check", CONTRACT, ids=check_id)
async def test_contract(hv: FakeHypervisor, check: Check) -> None:
    await check(hv)


async def test_a_guest_made_stubborn_ignores_shutdown(hv: FakeHypervisor) -> None:
    await hv.define(simple_domain_xml("vm1"))
    await hv.start("vm1")
    hv.stubborn.add("vm1")
    await hv.shutdown("vm1")
    assert await state(hv, "vm1") is RunState.RUNNING
    hv.stubborn.discard("vm1")
    await hv.shutdown("vm1")
    assert await state(hv, "vm1") is RunState.DEFINED


async def test_a_new_definition_applies_at_the_next_start(hv: FakeHypervisor) -> None:
    first = await hv.define(VM1)
    await hv.start("vm1")
    second = await hv.define(VM1.replace("512", "1024"))
    assert (second.uuid, second.memory_mib) == (first.uuid, 512)  # it runs as it was started
    assert "1024" in await hv.domain_xml("vm1", inactive=True)
    await hv.destroy("vm1")
    await hv.start("vm1")
    assert (await hv.list_domains())["vm1"].memory_mib == 1024


async def test_an_undefined_running_domain_goes_with_its_power_off(hv: FakeHypervisor) -> None:
    await hv.define(VM1)
    await hv.start("vm1")
    await hv.undefine("vm1")
    info = await hv.domain("vm1")
    assert info is not None and info.state is RunState.RUNNING and not info.persistent
    await hv.shutdown("vm1")
    assert await hv.domain("vm1") is None


async def test_usage_counts_running_domains(hv: FakeHypervisor) -> None:
    await hv.define(simple_domain_xml("a", memory_mib=512, vcpus=2))
    await hv.define(simple_domain_xml("b", memory_mib=1024))
    await hv.start("a")
    usage = await hv.usage()
    assert (usage.running, usage.memory_mib, usage.vcpus) == (1, 512, 2)
    assert (usage.node.mem_total_mib, usage.node.mem_free_mib, usage.node.cpus) == (
        16384, 16384 - 512, 6)


async def test_live_migration_is_refused_not_faked(hv: FakeHypervisor) -> None:
    await hv.define(VM1)
    await hv.start("vm1")
    with pytest.raises(HypervisorError, match="live migration is not supported") as err:
        await hv.migrate_live("vm1", "fake:///other")
    assert err.value.code == libvirt.VIR_ERR_NO_SUPPORT
    assert not await hv.migrating_out("vm1")
    assert await hv.completed_migration("vm1") is None
    assert await state(hv, "vm1") is RunState.RUNNING


async def test_unreadable_xml_is_refused(hv: FakeHypervisor) -> None:
    with pytest.raises(HypervisorError, match=r"cannot define domain '\?'") as err:
        await hv.define("<domain>")
    assert err.value.code == libvirt.VIR_ERR_XML_ERROR
    assert await hv.list_domains() == {}
