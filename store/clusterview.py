"""The cluster as placement sees it, read off the VMs' snapshots (`store.model.VM`): the
one reading that the primary's controllers (`reconciler.cluster.state`) and herd-api's
explicit moves and rebalance (`server.affinity`, `server.cluster_ops`) share (issue #17).

- `where`: the node of every VM placed to run (what affinity rules look at);
- `placements`: every placement, for exact accounting (`store.placement.account`): a VM
  running where it is placed is in its node's published figures already;
- `movable`: the VMs a rebalance may move (running where placed, desired running).
Pure; `needs` gives a VM's needs (the caller's parse cache, its storage).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from store.model import VM
from store.placement import Placed, VMNeeds
from vocabulary import DesiredState, VMState

Needs = Callable[[VM], VMNeeds]


def _runs_where_placed(vm: VM) -> bool:
    return vm.state == VMState.RUNNING and vm.status_node == vm.home


def where(vms: Iterable[VM]) -> dict[str, str]:
    return {v.name: v.home for v in vms
            if v.home is not None and v.want == DesiredState.RUNNING}


def placements(vms: Iterable[VM], needs: Needs) -> list[Placed]:
    found = []
    for vm in vms:
        if vm.home is not None:
            n = needs(vm)
            found.append(Placed(vm.home, n.memory_mib, n.vcpus,
                                to_run=vm.want == DesiredState.RUNNING,
                                counted=_runs_where_placed(vm)))
    return found


def movable(vms: Iterable[VM], needs: Needs) -> dict[str, tuple[VMNeeds, str]]:
    return {vm.name: (needs(vm), vm.home) for vm in vms
            if vm.home is not None and vm.want == DesiredState.RUNNING
            and _runs_where_placed(vm)}
