"""`LibvirtNetworks`: libvirt's bridge-mode networks of one node, behind async methods.

Shares the node's libvirt connection (`LibvirtHypervisor.connection`, see `of`): each
blocking call of `reconciler.libvirt.networks` runs in a worker thread here, as
`reconciler.libvirt.adapter` does for domains. `observe()` lists the networks;
`apply(step)` carries out one libvirt step of `statemachine.netplan` (define, start,
autostart, undefine). Failures raise `HypervisorError`. Called by
`reconciler.network.netreconcile`.
"""

from __future__ import annotations

import asyncio

from reconciler.libvirt import networks
from reconciler.libvirt.adapter import LibvirtHypervisor
from reconciler.libvirt.connection import Connection
from statemachine.netplan import LibvirtNet, NetAction, NetStep


class LibvirtNetworks:
    """The libvirt networks of the node that `connection` reaches."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    @classmethod
    def of(cls, hypervisor: LibvirtHypervisor) -> LibvirtNetworks:
        """On the daemon's own connection (opened and reopened by the hypervisor)."""
        return cls(hypervisor.connection)

    async def observe(self) -> dict[str, LibvirtNet]:
        """Every libvirt network of the node, by name."""
        return await asyncio.to_thread(networks.list_networks, self.connection)

    async def apply(self, step: NetStep) -> None:
        """Carry out one libvirt step (`step.network` is the name, `step.device` the bridge)."""
        c, name = self.connection, step.network
        if step.action == NetAction.DEFINE_NET:
            await asyncio.to_thread(networks.define, c, name, bridge=step.device)
        elif step.action == NetAction.START_NET:
            await asyncio.to_thread(networks.start, c, name)
        elif step.action == NetAction.AUTOSTART_NET:
            await asyncio.to_thread(networks.autostart, c, name)
        elif step.action == NetAction.UNDEFINE_NET:
            await asyncio.to_thread(networks.undefine, c, name)
        else:
            raise ValueError(f"{step.action} is not a libvirt step")
