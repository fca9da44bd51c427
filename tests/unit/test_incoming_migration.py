"""The destination's rule for a guest arriving by live migration (no I/O): it does not
speak for the VM while the domain is still paused for the migration, nor while the
source's session owns the VM, even if the source's owner znode is gone (a source daemon
killed mid-migration: the migration may still fail and the guest resume there)."""

from __future__ import annotations

from typing import Any

from kazoo.protocol.states import ZnodeStat

from reconciler.libvirt import DomainInfo, RunState
from reconciler.vm.reconcile import View, VMReconciler
from store.client import Versioned


def versioned(doc: dict[str, Any], *, session: int = 7) -> Versioned:
    return Versioned(doc, ZnodeStat(1, 1, 0, 0, 0, 0, 0, session, 10, 0, 1))


def view(*, owner: str | None, placed: str = "hv2") -> View:
    return View("g", versioned({"spec": {}}), {"node": placed}, None,
                versioned({"node": owner}) if owner else None)


def domain(state: RunState, *, migrating_in: bool) -> DomainInfo:
    return DomainInfo(name="g", uuid="u", state=state, domain_id=3, memory_mib=32, vcpus=1,
                      persistent=True, migrating_in=migrating_in)


def reconciler() -> VMReconciler:
    nothing: Any = None  # _incoming reads neither ZooKeeper nor libvirt
    return VMReconciler("hv2", nothing, vms=nothing, hypervisor=nothing,
                        cluster_default=lambda _k, d: d)


def test_paused_for_an_incoming_migration_is_not_ours_even_unowned() -> None:
    paused = domain(RunState.PAUSED, migrating_in=True)
    assert reconciler()._incoming(view(owner=None), paused)
    assert reconciler()._incoming(view(owner="hv1"), paused)


def test_running_here_while_the_source_owns_it_is_still_incoming() -> None:
    running = domain(RunState.RUNNING, migrating_in=False)
    assert reconciler()._incoming(view(owner="hv1"), running)


def test_running_and_released_is_ours_to_claim() -> None:
    running = domain(RunState.RUNNING, migrating_in=False)
    assert not reconciler()._incoming(view(owner=None), running)
    assert not reconciler()._incoming(view(owner=None, placed="hv3"), running)
    assert not reconciler()._incoming(view(owner="hv1"), None)
