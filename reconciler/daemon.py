"""`herd-node`'s daemon: wires the store, the watched caches, libvirt and the work queue.

Start-up: connect to ZooKeeper (refusing a newer layout), open libvirt, sync the caches
(`/vms`, `/nodes`, `/config`, one recursive watch each), register the node, then queue
every VM that concerns this node: those placed here and every domain libvirt has here
(adoption: a running domain is taken over, never restarted; a domain Herd never knew is
left alone and reported).
Running: cache changes and libvirt lifecycle events queue the VM they concern on the VM
controller (`reconciler.node.vmfeed`: watch callbacks only enqueue; a periodic full
resync queues them all again, level-triggered); the status publisher writes resources and
heartbeat.
SIGTERM: when the host itself shuts down, the cluster's `shutdownPolicy` first
(`reconciler.node.shutdown`: flush this node, or shut its guests down); then workers
stopped, daemonState stop, `alive` removed. Otherwise VMs are left running: a daemon
restart never restarts guests. Called by `reconciler.main`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from reconciler.cluster.coordinator import Coordinator
from reconciler.cluster.fencing import Fencer
from reconciler.cluster.state import ClusterState
from reconciler.config import NodeConfig
from reconciler.endpoint import NodeEndpoint
from reconciler.libvirt import Hypervisor, HypervisorError
from reconciler.libvirt.adapter import LibvirtHypervisor
from reconciler.libvirt.events import bind_event_loop, settle_events
from reconciler.metrics import MetricsExporter
from reconciler.network.gateways import GatewaySettings, NodeGateways
from reconciler.network.libvirtnet import LibvirtNetworks
from reconciler.network.links import Links
from reconciler.network.netreconcile import NetworkReconciler
from reconciler.network.nodenets import NodeNetSettings, NodeNetworks
from reconciler.node.eventlog import EventLog
from reconciler.node.publisher import StatusPublisher
from reconciler.node.registration import NodeRegistration, ProvisionedMemory, spec_domain_state
from reconciler.node.selffence import WatchdogLink
from reconciler.node.shutdown import NodeShutdown
from reconciler.node.vmfeed import VMFeed
from reconciler.runtime.controller import Controller
from reconciler.storage.nodepools import NodePools
from reconciler.storage.nodevolumes import NodeVolumes
from reconciler.vm.reconcile import MigrationLimits, VMReconciler
from schemas import DEFAULT_SELF_FENCE_TIMEOUT
from store.client import Store
from store.errors import Unavailable
from store.informer import Informer
from store.layout import ensure_layout
from store.placement import VMNeeds, with_storage
from store.volumes import local_volume

log = logging.getLogger(__name__)

FRESH_SLACK = 2.0  # seconds past a status interval that a heartbeat still lets the node pet


class NodeDaemon:
    """One node's daemon; `run()` until `stop()`."""

    def __init__(self, config: NodeConfig, *, hypervisor: Hypervisor | None = None) -> None:
        self.config = config
        self.name = config.name
        self.store = Store(config.zk_target, config.zk_root, timeout=config.zk_timeout)
        self.hv: Hypervisor = hypervisor or LibvirtHypervisor(config.libvirt_uri)
        self._owns_hv = hypervisor is None  # a hypervisor handed in outlives the daemon
        p = self.store.paths
        self.vms = Informer(self.store, p.vms)
        self.nodes = Informer(self.store, p.nodes)
        self.cluster = Informer(self.store, p.config)
        self.rules = Informer(self.store, p.rules)  # affinity rules (the primary's placement)
        self.registration = NodeRegistration(
            self.store, self.name, libvirt_uri=config.libvirt_uri,
            coordinator=config.coordinator, initial_domain_state=config.initial_domain_state,
            address=config.address, migration_uri=config.migration_uri)
        self.registration.live_migration = self._live_migration
        # Serial output logged by virtlogd: a real hypervisor's (the test driver runs none).
        self._console_logs = not config.libvirt_uri.startswith("test")
        self.reconciler = VMReconciler(
            self.name, self.store, vms=self.vms, hypervisor=self.hv,
            cluster_default=self.cluster_default, wake=lambda name: self.queue.enqueue(name),
            migrations=MigrationLimits(concurrency=config.migration_concurrency,
                                       timeout=config.migration_timeout),
            storage=self.hv.connection if isinstance(self.hv, LibvirtHypervisor) else None,
            console_log_dir=config.console_log_dir if self._console_logs else None,
            departed=self._departed)
        self.queue = Controller("vm", self.reconciler.reconcile, node=self.name,
                                workers=config.workers)
        self.provisioned = ProvisionedMemory(self.name, self.vms)
        self.publisher = StatusPublisher(
            self.registration, self.hv, provisioned=self.provisioned,
            interval=config.status_interval,
            initial_domain_state=lambda: spec_domain_state(self.store, self.nodes, self.name))
        self.coordinator = Coordinator(
            self.store, self.name, fencer=Fencer(config.fence),
            state=ClusterState(self.store, vms=self.vms, nodes=self.nodes,
                               cluster=self.cluster, rules=self.rules)) \
            if config.coordinator else None
        self.networks = self._networks(config)
        self.gateways = self._gateways(config)
        self.pools = self._pools(config)
        self.volumes = NodeVolumes(self.store, self.name, connection=self.pools.connection,
                                   pools=self.pools.state) if self.pools is not None else None
        if self.coordinator is not None and self.pools is not None and self.volumes:
            self.coordinator.state.storage = self._storage
        self.metrics = MetricsExporter(self.name, hv=self.hv, store=self.store, nodes=self.nodes)
        self.endpoint = NodeEndpoint.for_node(config, hv=self.hv, store=self.store,
                                              nodes=self.nodes, metrics=self.metrics)
        self.feed = VMFeed(self.name, self.store, vms=self.vms, hv=self.hv,
                           reconciler=self.reconciler, queue=self.queue,
                           provisioned=self.provisioned, publisher=self.publisher,
                           removed=self._removed, resync_interval=config.resync_interval)
        self.event_listeners = self.feed.event_listeners  # history recorders and tests
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Future[Any]] = set()
        self.ready = asyncio.Event()
        self.event_log: EventLog | None = None
        self.shutdown = NodeShutdown(
            self.store, self.name, nodes=self.nodes, vms=self.vms, hv=self.hv,
            publisher=self.publisher, setting=self.cluster_default,
            flush_timeout=config.shutdown_flush_timeout, pause=self.queue.stop)
        self.event_listeners.append(self.shutdown.on_domain_event)
        self.selffence = self._selffence(config)

    def _selffence(self, config: NodeConfig) -> WatchdogLink | None:
        if config.watchdog_socket is None:
            return None
        link = WatchdogLink(
            config.watchdog_socket, self.name, fresh=config.status_interval + FRESH_SLACK,
            timeout=lambda: self.cluster_default("selfFenceTimeout", DEFAULT_SELF_FENCE_TIMEOUT),
            writable=lambda: self.store.writable,
            last_heartbeat=lambda: self.registration.last_heartbeat,
            changed=self.publisher.changed)
        self.registration.watchdog = link.report
        return link

    def _networks(self, config: NodeConfig) -> NodeNetworks | None:
        """The node's network controller, when the config asks for it and libvirt is real."""
        if not config.networks or not isinstance(self.hv, LibvirtHypervisor):
            return None
        settings = NodeNetSettings(self.name, config.address, config.bridge_device,
                                   config.netns)
        found = NodeNetworks(self.store, settings, nodes=self.nodes, changed=self._net_changed,
                             reconciler=NetworkReconciler(Links(config.netns),
                                                          LibvirtNetworks.of(self.hv)))
        self.registration.networks = found.report
        return found

    def _gateways(self, config: NodeConfig) -> NodeGateways | None:
        """The gateways of managed networks, on coordinators (a primary runs them)."""
        coordinator = self.coordinator
        if self.networks is None or coordinator is None:
            return None
        found = NodeGateways(self.store, GatewaySettings(self.name, config.netns,
                                                         config.run_dir),
                             nets=self.networks, nodes=self.nodes,
                             is_primary=lambda: coordinator.is_primary)
        coordinator.term_listeners.append(found.resync)
        return found

    def _pools(self, config: NodeConfig) -> NodePools | None:
        """The node's storage pools (real libvirt only: a fake hypervisor has none)."""
        if not isinstance(self.hv, LibvirtHypervisor):
            return None
        found = NodePools(self.store, self.name, connection=self.hv.connection,
                          keys=config.ceph_secrets, changed=self._pools_changed)
        self.registration.pools = found.report
        return found

    def _live_migration(self) -> bool:
        """Whether libvirt here migrates live (False while it cannot be asked)."""
        try:
            return self.hv.live_migration_supported
        except HypervisorError:
            return False

    def _storage(self, needs: VMNeeds, xml: str | None) -> VMNeeds:
        """`needs` with what `xml`'s volumes on local pools ask of the primary's placement."""
        assert self.pools is not None and self.volumes is not None
        volume, pool = self.volumes.informer.get, self.pools.informer.get
        return with_storage(needs, xml, lambda key: local_volume(
            key, volume=volume, pool=pool, paths=self.store.paths))

    def _pools_changed(self) -> None:
        """A pool's state here changed: publish it; volumes waiting for it look again."""
        self.publisher.changed()
        volumes = self.volumes  # made right after the pools; this runs only once started
        if volumes is not None:
            volumes.resync()

    def _net_changed(self) -> None:
        """A network's state here changed: publish it; its gateway may follow."""
        self.publisher.changed()
        if self.gateways is not None:
            self.gateways.resync()

    def cluster_default(self, key: str, default: Any) -> Any:
        doc = self.cluster.get(self.store.paths.config)
        return doc.doc.get(key, default) if doc else default

    # --- lifecycle -----------------------------------------------------------------------

    async def run(self) -> None:
        self.feed.loop = loop = asyncio.get_running_loop()
        self.queue.bind(loop)  # changes seen while the caches sync wait in the queue
        bind_event_loop(loop)  # before the connection opens (see reconciler.libvirt.events)
        await self._connect()
        try:
            await self._start()
            self.ready.set()
            await self._stopping.wait()
            await self.shutdown.apply()
        finally:
            await self._shutdown()

    def stop(self, *, host_shutdown: bool | None = None) -> None:
        """SIGTERM: end `run()`; with `host_shutdown` (None: ask systemd) after the
        shutdown policy, whose wait a second call ends."""
        self.shutdown.requested(host_shutdown)
        self._stopping.set()

    async def _connect(self) -> None:
        """ZooKeeper, then libvirt, then the caches and the node's registration."""
        await asyncio.to_thread(self.store.start)
        await self._until_written("the cluster layout",
                                  lambda: asyncio.to_thread(ensure_layout, self.store))
        await self.hv.open()
        await asyncio.to_thread(self._watch)
        await self._until_written("registering the node",
                                  lambda: asyncio.to_thread(self.registration.register))
        await self._until_written("the return from a shutdown", self.shutdown.resume)

    def _watch(self) -> None:
        for informer in (self.cluster, self.nodes, self.vms, self.rules):
            informer.start()

    async def _until_written(self, what: str, write: Callable[[], Awaitable[Any]]) -> None:
        """A start-up write, again once ZooKeeper is back if it is away meanwhile: a daemon
        started just before an outage waits it out instead of exiting (issue #20, fault
        suite seed 8)."""
        while True:
            try:
                await write()
                return
            except Unavailable as e:
                if self._stopping.is_set():
                    raise
                log.warning("%s: %s; waiting for ZooKeeper", what, e)
                await asyncio.to_thread(self.store.wait_writable, 1.0)

    async def _start(self) -> None:
        self.vms.subscribe(self.feed.on_vm_change)
        self.vms.on_synced(self.feed.on_synced)
        self.store.add_session_listener(self._on_session)
        if self.coordinator is not None:
            self.vms.subscribe(self.coordinator.on_vm_change)
            self.nodes.subscribe(self.coordinator.on_node_change)
            self.cluster.subscribe(self.coordinator.on_cluster_change)
            self.rules.subscribe(self.coordinator.on_cluster_change)
        if self.config.event_log:
            self.event_log = EventLog(self.config.event_log, self.name)
            self.event_listeners.append(self.event_log.write)
        await self.hv.start_events(self.feed.on_domain_event)
        await self.feed.adopt()
        self.queue.start()
        if self.networks is not None:
            await self.networks.start()
        if self.gateways is not None:
            await self.gateways.start()
        if self.pools is not None:
            await self.pools.start()
        if self.volumes is not None:
            await self.volumes.start()
        if self._console_logs:
            await asyncio.to_thread(self.endpoint.logs.prepare)
        await self.endpoint.start()
        self.registration.endpoint = self.endpoint.url
        self.registration.daemon_state = "run"
        first = self.publisher.publish
        await self._until_written("the first status", lambda: first(heartbeat=True))
        self._tasks = [asyncio.create_task(self.publisher.run(), name="status-publisher"),
                       asyncio.create_task(self.feed.resyncer(), name="resync")]
        if self.coordinator is not None:
            self._tasks.append(asyncio.create_task(self.coordinator.run(), name="coordinator"))
        if self.selffence is not None:
            self._tasks.append(asyncio.create_task(self.selffence.run(), name="watchdog"))

    async def _shutdown(self) -> None:
        await self.endpoint.stop()
        if self.gateways is not None:  # first: a new primary waits for their holds
            await self.gateways.stop()
        if self.coordinator is not None:
            self.coordinator.stop()
        pending = [*self._tasks, *self._background]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await self.queue.stop()
        if self.networks is not None:
            await self.networks.stop()
        if self.volumes is not None:
            await self.volumes.stop()
        if self.pools is not None:
            await self.pools.stop()
        await self.hv.stop_events()
        if self.store.writable:
            self.registration.daemon_state = "stop"
            try:
                await self.publisher.publish(heartbeat=True)
                await asyncio.to_thread(self.registration.deregister)
            except Exception as e:
                log.warning("could not record the stop in ZooKeeper: %s", e)
        await asyncio.to_thread(self._disconnect)
        if self.selffence is not None:  # stopped cleanly: nothing to fence
            await self.selffence.disarm()
        if self._owns_hv:
            await self.hv.close()
            if self.event_log is not None:  # a test-driver node's guests went with it
                self.event_log.write("", "closed", 0)
            await settle_events()  # libvirtaio's leftovers end on this loop, not after it

    def _disconnect(self) -> None:
        for informer in (self.vms, self.nodes, self.cluster, self.rules):
            informer.stop()
        self.store.stop()

    # --- background work ----------------------------------------------------------------

    def _removed(self, vm: str) -> None:
        """The VM is gone from the cluster (on the loop): its console log here goes too."""
        self._spawn(asyncio.to_thread(self.endpoint.logs.forget, vm))

    def _on_session(self, what: str) -> None:
        """A new session after a loss: `alive` is gone with the old one; create it again."""
        if what == "reconnected":
            self.feed.soon(lambda: self._spawn(asyncio.to_thread(self._reregister)))

    def _departed(self, vm: str, node: str) -> None:
        """`vm` left for `node` (migrated, or moved): its console log goes along."""
        self._spawn(self.endpoint.hand_over(vm, node))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _reregister(self) -> None:
        try:
            self.registration.register()
        except Exception as e:
            log.error("re-registering after a reconnect failed: %s", e)
