"""herd-node daemons run in-process on the test's asyncio loop, for integration and e2e
tests: start (until ready), the SIGTERM path, a crash, and restarts.

With `shared_hypervisor` (the default) the test holds the libvirt connection and hands it
to every daemon it starts, so the test can look at libvirt directly and a daemon restart
keeps the "hypervisor" (the test driver's state lives in the connection); without it the
daemon opens its own (real QEMU, whose state libvirtd keeps).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from reconciler.config import NodeConfig
from reconciler.daemon import NodeDaemon
from reconciler.libvirt.adapter import LibvirtHypervisor

Listener = Callable[[str, str, int], None]
READY_TIMEOUT = 30.0


class RunningDaemon:
    def __init__(self, config: NodeConfig, *, shared_hypervisor: bool = True,
                 listeners: list[Listener] | None = None) -> None:
        self.config = config
        self.hv: LibvirtHypervisor | None = LibvirtHypervisor(config.libvirt_uri) \
            if shared_hypervisor else None
        self.listeners = list(listeners or [])
        self.daemon: NodeDaemon | None = None
        self.task: asyncio.Task[None] | None = None

    @property
    def hypervisor(self) -> LibvirtHypervisor:
        """The shared libvirt connection (tests that look at libvirt directly)."""
        assert self.hv is not None, "this daemon opens its own libvirt connection"
        return self.hv

    async def start(self) -> NodeDaemon:
        """A new daemon, running once it is ready (its failure to start is raised). The
        shared connection opens first (no-op when open)."""
        if self.hv is not None:
            await self.hv.open()
        daemon = self.daemon = NodeDaemon(self.config, hypervisor=self.hv)
        daemon.event_listeners.extend(self.listeners)
        task = self.task = asyncio.create_task(daemon.run())
        ready = asyncio.create_task(daemon.ready.wait())
        done, _ = await asyncio.wait({task, ready}, timeout=READY_TIMEOUT,
                                     return_when=asyncio.FIRST_COMPLETED)
        if ready not in done:
            ready.cancel()
            if task in done:
                task.result()
            await self.stop()
            raise AssertionError(f"the daemon did not become ready in {READY_TIMEOUT:.0f} s")
        return daemon

    async def stop(self) -> None:
        """The SIGTERM path: `stop()`, then wait for `run()` to return."""
        if self.daemon is not None and self.task is not None and not self.task.done():
            self.daemon.stop()
            await asyncio.wait_for(self.task, 30)
        self.daemon = self.task = None

    async def crash(self) -> None:
        """A power-off: the guests vanish with the connection, the ZooKeeper session ends
        without the clean stop, and the daemon is gone."""
        assert self.daemon is not None and self.task is not None
        if self.hv is not None:  # at once, on the loop: the daemon sees no half-closed world
            self.hv.connection.close()
        await asyncio.to_thread(self.daemon.store.client.stop)
        self.task.cancel()
        with contextlib.suppress(BaseException):
            await self.task
        self.daemon = self.task = None

    async def close(self) -> None:
        """Close the shared libvirt connection (after the last stop)."""
        if self.hv is not None:
            await self.hv.close()
