"""The node's status publisher: resources and heartbeat, written when they change.

`StatusPublisher.run()` writes `/nodes/<name>/status` (through
`reconciler.node.registration.NodeRegistration.publish`, the node's half of the document)
every heartbeat interval, and sooner when something local changed (`changed()`: a libvirt
event, a VM placed here or away), at most every `PUBLISH_GAP` seconds so that a burst of
events is one write, not hundreds. Run by `reconciler.daemon.NodeDaemon`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from reconciler.libvirt import Hypervisor
from reconciler.node.registration import NodeRegistration, ProvisionedMemory, measure

log = logging.getLogger(__name__)

PUBLISH_GAP = 0.5  # seconds between event-driven node status writes


class StatusPublisher:
    """Publishes one node's resources and heartbeat."""

    def __init__(self, registration: NodeRegistration, hv: Hypervisor, *,
                 provisioned: ProvisionedMemory, interval: float,
                 initial_domain_state: Callable[[], str]) -> None:
        self.registration = registration
        self.hv = hv
        self.provisioned = provisioned
        self.interval = interval
        self.initial_domain_state = initial_domain_state
        self._dirty = asyncio.Event()

    def changed(self) -> None:
        """Something local changed (on the loop): publish soon."""
        self._dirty.set()

    async def run(self) -> None:
        next_beat = time.monotonic() + self.interval
        last = 0.0
        while True:
            try:
                async with asyncio.timeout(max(0.0, next_beat - time.monotonic())):
                    await self._dirty.wait()
                    await asyncio.sleep(max(0.0, last + PUBLISH_GAP - time.monotonic()))
            except TimeoutError:
                pass
            beat = time.monotonic() >= next_beat
            self._dirty.clear()
            try:
                await self.publish(heartbeat=beat)
            except Exception as e:
                log.warning("publishing node status failed: %s", e)
            last = time.monotonic()
            if beat:
                next_beat = last + self.interval

    async def publish(self, *, heartbeat: bool) -> None:
        usage = await self.hv.usage()
        resources = measure(usage, self.provisioned.total())
        await asyncio.to_thread(self.registration.publish, resources, heartbeat=heartbeat,
                                initial_domain_state=self.initial_domain_state)
