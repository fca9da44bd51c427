"""What herd-node does with its guests when its host shuts down: `config.shutdownPolicy`.

herd-node gets SIGTERM both when it alone stops (an upgrade, `systemctl restart
herd-node`: a daemon restart never touches the guests, it adopts them when back) and when
the whole host goes down. The policy applies only to the second: systemd then has
`shutdown.target` or `reboot.target` queued (`systemctl list-jobs`, what Proxmox's HA
LRM asks too); `NodeDaemon.stop(host_shutdown=True)` says so itself (tests, another init).

- `migrate` (the default): the node flushes itself: spec domainState `flushed`, written in
  one version-checked transaction with `status.shutdownFlush`, the spec generation of that
  write (the mark that the node did it, not an operator). It then waits, following its
  caches, until the primary has flushed it (status domainState `flushed`: none runs here)
  and the VMs placed here run where they went (a target may need this node until then:
  it copies a stopped VM's volumes on a local pool from it), at most
  `shutdown_flush_timeout` seconds (node config, default 300). With no primary, or no
  other node ready to take the VMs, it says why and stops as with `freeze`. VMs that fit
  nowhere else are stopped as by any flush (autorestart ones start again when the node
  is ready). Back again (`resume`), a node whose mark names its spec's
  generation (nobody changed the spec since) sets itself `ready`: its VMs return
  (`lastNode`), as after a manual flush and ready. A node an operator flushed stays so.
- `freeze`: the guests are left as they are, as before this policy existed: the host's
  own shutdown (libvirt-guests) decides what becomes of them, nothing is recovered
  elsewhere (a node that stopped cleanly is not fenced), and they are adopted or started
  again when the node is back. Proxmox's `freeze` (services frozen: not recovered, started
  again on boot), minus the stop, which is left to the host.
- `stop`: the node's VM reconciles end (none starts a guest again), then every guest of
  Herd running here is shut down (ACPI; destroyed after its shutdownTimeout) and its status
  recorded `stopped`. Their desired state stays `running` and they stay placed here: they
  start again when the node is back. Proxmox's `freeze` again, with the stop done by Herd
  (so it is bounded and recorded); there is no `failover`: a node going down cleanly is
  not fenced, so nothing is recovered elsewhere.
While a policy acts, the node's daemonState is `shutdown` (placement puts no VM here); a
second SIGTERM ends its wait at once. Called by `reconciler.daemon`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from reconciler.libvirt import Hypervisor, HypervisorError
from reconciler.node.publisher import StatusPublisher
from reconciler.node.shutdownplan import (
    flush_decision,
    flush_ops,
    guests_to_stop,
    moved,
    policy_of,
    resume_ops,
    shutdown_queued,
)
from store import election, events, txn, vmstatus
from store.client import Store, Versioned
from store.codec import Doc
from store.errors import Conflict, StoreError, Unavailable
from store.informer import Change, Informer
from store.model import VM, Node, read_node, read_vm
from store.paths import Paths
from store.placement import NodeView
from vocabulary import (
    UP_RUN_STATES,
    DaemonState,
    DesiredState,
    DomainState,
    ShutdownPolicy,
)

log = logging.getLogger(__name__)

WRITE_ATTEMPTS = 10  # a transaction of the node's spec and status, read afresh each time


def host_going_down() -> bool:
    """Whether the host is shutting down or rebooting (systemd's queued jobs); False where
    systemd does not answer (no systemd: only `stop(host_shutdown=True)` applies a policy)."""
    try:
        done = subprocess.run(["systemctl", "--full", "--no-legend", "--no-pager", "list-jobs"],
                              capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError) as e:
        log.info("cannot ask systemd whether the host shuts down: %s", e)
        return False
    return done.returncode == 0 and shutdown_queued(done.stdout)


class NodeShutdown:
    """The shutdown policy of one node (see the module docstring); one per daemon."""

    def __init__(self, store: Store, name: str, *, nodes: Informer, vms: Informer,
                 hv: Hypervisor, publisher: StatusPublisher, setting: Callable[[str, Any], Any],
                 flush_timeout: float, pause: Callable[[], Awaitable[None]]) -> None:
        self.store, self.name, self.paths = store, name, store.paths
        self.nodes, self.vms, self.hv, self.publisher = nodes, vms, hv, publisher
        self.setting, self.flush_timeout, self.pause = setting, flush_timeout, pause
        self.host_shutdown: bool | None = None  # None: ask systemd when the stop begins
        self._requests = 0
        self._hurry = False
        self._wake = asyncio.Event()  # a cache change, a libvirt event, a second SIGTERM

    # --- signals (on the loop) ---------------------------------------------------------------

    def requested(self, host_shutdown: bool | None) -> None:
        """SIGTERM: the first says whether the host shuts down; another ends the wait."""
        self._requests += 1
        if self._requests == 1:
            self.host_shutdown = host_shutdown
            return
        if not self._hurry:
            log.warning("stop asked again: not waiting for the shutdown policy any longer")
        self._hurry = True
        self._wake.set()

    def on_domain_event(self, _name: str, _event: str, _detail: int) -> None:
        self._wake.set()

    # --- the policy ---------------------------------------------------------------------------

    async def apply(self) -> None:
        """Before the daemon's own shutdown: the policy, when the host shuts down. Never
        raises: whatever fails, the daemon stops."""
        try:
            policy = policy_of(self.setting("shutdownPolicy", ShutdownPolicy.MIGRATE.value))
            if policy == ShutdownPolicy.FREEZE or not await self._host_going_down():
                return  # the guests stay as they are
            await self._announce()
            done = await (self._migrate() if policy == ShutdownPolicy.MIGRATE
                          else self._stop_guests())
            await self._event(f"{self.name} shuts down (shutdownPolicy {policy}): {done}")
        except Exception as e:
            log.error("shutdown policy: %s; stopping anyway", e)

    async def _host_going_down(self) -> bool:
        if self.host_shutdown is None:
            self.host_shutdown = await asyncio.to_thread(host_going_down)
        return self.host_shutdown

    async def _announce(self) -> None:
        """daemonState `shutdown`: placement puts no VM here any more."""
        self.publisher.registration.daemon_state = DaemonState.SHUTDOWN.value
        try:
            await self.publisher.publish(heartbeat=True)
        except StoreError as e:
            log.warning("could not publish the shutdown: %s", e)

    async def _event(self, message: str) -> None:
        log.info("%s", message)
        try:
            await asyncio.to_thread(events.record, self.store, "shutdown", message,
                                    node=self.name)
        except StoreError as e:
            log.warning("could not record the shutdown event: %s", e)

    # --- migrate ------------------------------------------------------------------------------

    def _node(self) -> Node:
        return read_node(self.name, self.nodes.get, self.paths)

    def _others(self) -> list[NodeView]:
        return [read_node(n, self.nodes.get, self.paths).view
                for n in self.nodes.children(self.paths.nodes) if n != self.name]

    def _vm(self, name: str) -> VM:
        return read_vm(name, self.vms.get, self.paths)

    async def _migrate(self) -> str:
        """Flush this node (see `flush_decision`); until the primary says it is flushed and
        the VMs that were placed here run where they went."""
        primary = await asyncio.to_thread(election.primary, self.store)
        decision = flush_decision(self._node(), self._others(), primary)
        if not decision.wait:
            return f"not flushed: {decision.why}"
        leaving = [n for n in self.vms.children(self.paths.vms)
                   if (vm := self._vm(n)).home == self.name and vm.want == DesiredState.RUNNING]
        if decision.write:
            await asyncio.to_thread(self._commit_fresh, flush_ops)
        log.info("flushing %s before the shutdown: %s", self.name, decision.why)
        if await self._until(lambda: self._node().domain_state == DomainState.FLUSHED and all(
                moved(self._vm(n), self.name) for n in leaving), self.flush_timeout):
            return f"flushed, {len(leaving)} VM(s) moved away"
        on_way = ", ".join(n for n in leaving if not moved(self._vm(n), self.name))
        cut = "asked again to stop" if self._hurry else f"not within {self.flush_timeout:g} s"
        return (f"not flushed ({cut}; domainState {self._node().domain_state}, VMs on "
                f"their way: {on_way or 'none'})")

    async def resume(self) -> None:
        """At start-up: back from a shutdown that flushed the node, ready again (see
        `resume_ops`)."""
        try:
            if await asyncio.to_thread(self._commit_fresh, resume_ops):
                log.info("%s is back from a shutdown flush: ready again unless its spec "
                         "changed since", self.name)
        except Unavailable:
            raise  # the daemon writes it again once ZooKeeper is back
        except StoreError as e:
            log.error("could not return from the shutdown flush: %s", e)

    def _commit_fresh(self, build: Callable[[Paths, str, Versioned, Versioned],
                                            list[txn.Op]]) -> bool:
        """The operations `build` makes of the node's spec and status, read afresh and
        committed as one version-checked transaction (again on a conflict); True when
        there were any."""
        p = self.paths
        for _attempt in range(WRITE_ATTEMPTS):
            ops = build(p, self.name, self.store.get(p.node(self.name)),
                        self.store.get(p.node_status(self.name)))
            if not ops:
                return False
            try:
                txn.commit(self.store, ops)
                return True
            except Conflict:
                continue
        raise Conflict(f"{p.node(self.name)}: still conflicting after {WRITE_ATTEMPTS} "
                       "attempts")

    async def _until(self, done: Callable[[], bool], timeout: float) -> bool:
        """Until `done()` (looked at again on every change of the nodes' and VMs' caches),
        at most `timeout` seconds or until a second SIGTERM."""
        loop = asyncio.get_running_loop()

        def changed(_change: Change) -> None:  # the informers' threads
            loop.call_soon_threadsafe(self._wake.set)
        unsubscribe = [informer.subscribe(changed) for informer in (self.nodes, self.vms)]
        try:
            async with asyncio.timeout(timeout):
                while True:
                    self._wake.clear()
                    if done():
                        return True
                    if self._hurry:
                        return False
                    await self._wake.wait()
        except TimeoutError:
            return False
        finally:
            for cancel in unsubscribe:
                cancel()

    # --- stop ---------------------------------------------------------------------------------

    async def _stop_guests(self) -> str:
        """Shut every guest of Herd here down, forced off after its shutdownTimeout; record
        each one off."""
        await self.pause()  # no reconcile starts a guest again meanwhile
        loop = asyncio.get_running_loop()
        timeouts = {n: vm.shutdown_timeout for n in self.vms.children(self.paths.vms)
                    if (vm := read_vm(n, self.vms.get, self.paths)).exists}
        default = float(self.setting("shutdownTimeout", 180))
        guests = guests_to_stop(await self.hv.list_domains(), timeouts, default)
        deadlines = {name: loop.time() + seconds for name, seconds in guests.items()}
        for name in deadlines:
            await self._hv(self.hv.shutdown, name)
        off = await self._until_off(deadlines)
        await asyncio.to_thread(self._record_off, off)
        left = len(guests) - len(off)
        return f"{len(off)} guest(s) shut down" + (f", {left} left running" if left else "")

    async def _until_off(self, deadlines: dict[str, float]) -> dict[str, bool]:
        """The guests that went off (name -> forced off), each destroyed at its deadline,
        following libvirt's events; until none is left or a second SIGTERM."""
        loop, off = asyncio.get_running_loop(), {}
        while deadlines and not self._hurry:
            self._wake.clear()
            domains = await self.hv.list_domains()
            for name in list(deadlines):
                info = domains.get(name)
                if info is None or info.state not in UP_RUN_STATES:
                    off[name] = False
                elif deadlines[name] <= loop.time():
                    log.warning("%s did not shut down in time: forcing it off", name)
                    if await self._hv(self.hv.destroy, name):
                        off[name] = True
                else:
                    continue
                del deadlines[name]
            if deadlines:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(deadlines.values()) - loop.time()):
                        await self._wake.wait()
        return off

    async def _hv(self, verb: Callable[[str], Awaitable[None]], name: str) -> bool:
        try:
            await verb(name)
            return True
        except HypervisorError as e:
            log.error("%s: %s failed: %s", name, getattr(verb, "__name__", "call"), e)
            return False

    def _record_off(self, off: Mapping[str, bool]) -> None:
        """Each guest's status: off with this node's shutdown, unless another node speaks
        for it now (version-checked)."""
        for name, forced in sorted(off.items()):
            def modify(old: Doc, forced: bool = forced) -> Doc | None:
                if old.get("node") not in (None, self.name):
                    return None
                return vmstatus.shut_down_here(old, node=self.name, now=time.time(),
                                               forced=forced)
            try:
                self.store.update(self.paths.vm_status(name), modify)
            except StoreError as e:
                log.warning("%s: could not record it off: %s", name, e)
