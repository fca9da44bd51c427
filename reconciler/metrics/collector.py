"""The figures of herd-node's /metrics that are read at scrape time, as prometheus-client
collectors: every VM's (from one bulk stats call) and the node's (from its own status).

`VMCollector` renders the `DomainStats` of the scrape in progress (`reconciler.metrics.
exporter` awaits `Hypervisor.all_domain_stats()` first, then renders in a worker thread), so
`collect()` does no I/O: per VM CPU seconds and memory (labels vm, node), per disk block I/O
(vm, node, disk), per interface traffic (vm, node, interface), and the node's domains by
libvirt run state. `NodeCollector` reads what the node publishes in its status
(`/nodes/<name>/status`: resources in MiB, pools in bytes) from the daemon's node cache, and
the libvirt error count and ZooKeeper connection of this process. Pure of I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from reconciler.libvirt.interface import DomainStats
from vocabulary import RunState

MIB = 1 << 20

# (family, help, attribute of DomainStats) — the VM's CPU and memory
_VM_GAUGES = (
    ("herd_vm_memory_actual_bytes", "Memory the guest has now (balloon current)",
     "balloon_current_bytes"),
    ("herd_vm_memory_balloon_maximum_bytes", "Memory the balloon may give the guest at most",
     "balloon_maximum_bytes"),
    ("herd_vm_memory_rss_bytes", "Resident memory of the guest's process on the host",
     "balloon_rss_bytes"),
)
_DISK = (("herd_vm_block_read_bytes", "Bytes read by the disk", "read_bytes"),
         ("herd_vm_block_write_bytes", "Bytes written by the disk", "write_bytes"),
         ("herd_vm_block_read_requests", "Read requests of the disk", "read_requests"),
         ("herd_vm_block_write_requests", "Write requests of the disk", "write_requests"))
_NET = (("herd_vm_network_receive_bytes", "Bytes received by the interface", "rx_bytes"),
        ("herd_vm_network_transmit_bytes", "Bytes sent by the interface", "tx_bytes"),
        ("herd_vm_network_receive_packets", "Packets received by the interface",
         "rx_packets"),
        ("herd_vm_network_transmit_packets", "Packets sent by the interface", "tx_packets"))

# the node's status resources (MiB) -> family
_RESOURCES = (("herd_node_memory_total_bytes", "Memory of the node", "memTotal", MIB),
              ("herd_node_memory_free_bytes", "Free memory of the node", "memFree", MIB),
              ("herd_node_memory_provisioned_bytes", "Memory of the VMs placed here",
               "memProv", MIB),
              ("herd_node_vcpus_allocated", "vCPUs of the running VMs", "vcpuAlloc", 1),
              ("herd_node_load1", "1-minute load average of the node", "load", 1))


class VMCollector(Collector):
    """Every VM's figures from the stats of the scrape under way (`stats`, set before
    rendering)."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.stats: list[DomainStats] = []

    def collect(self) -> Iterator[Metric]:
        n, stats = self.node, self.stats
        cpu = CounterMetricFamily("herd_vm_cpu_seconds", "CPU time the guest used "
                                  "(0 while libvirt reports none: off)", labels=("vm", "node"))
        for s in stats:
            cpu.add_metric((s.name, n), s.cpu_seconds or 0.0)
        yield cpu
        for name, text, attr in _VM_GAUGES:
            gauge = GaugeMetricFamily(name, text, labels=("vm", "node"))
            for s in stats:
                value = getattr(s, attr)
                if value is not None:
                    gauge.add_metric((s.name, n), value)
            yield gauge
        yield from _devices(stats, n, _DISK, "disk", lambda s: s.disks)
        yield from _devices(stats, n, _NET, "interface", lambda s: s.interfaces)
        yield _by_state(stats, n)


def _devices(stats: list[DomainStats], node: str, table: tuple[tuple[str, str, str], ...],
             label: str, devices: Callable[[DomainStats], Iterable[Any]]) -> Iterator[Metric]:
    families = [(CounterMetricFamily(name, text, labels=("vm", "node", label)), attr)
                for name, text, attr in table]
    for s in stats:
        for dev in devices(s):
            for family, attr in families:
                family.add_metric((s.name, node, dev.name), getattr(dev, attr))
    yield from (family for family, _ in families)


def _by_state(stats: list[DomainStats], node: str) -> Metric:
    counts = dict.fromkeys((RunState.RUNNING, RunState.PAUSED, RunState.DEFINED,
                            RunState.CRASHED), 0)
    for s in stats:
        counts[s.state] = counts.get(s.state, 0) + 1
    family = GaugeMetricFamily("herd_node_vms", "Domains on the node by libvirt run state",
                               labels=("node", "state"))
    for state, count in counts.items():
        family.add_metric((node, str(state)), count)
    return family


class NodeCollector(Collector):
    """The node's published status and this process's libvirt and ZooKeeper figures."""

    def __init__(self, node: str, *, status: Callable[[], dict[str, Any] | None],
                 libvirt_errors: Callable[[], int], zk_connected: Callable[[], bool]) -> None:
        self.node = node
        self.status, self.libvirt_errors, self.zk_connected = status, libvirt_errors, zk_connected

    def collect(self) -> Iterator[Metric]:
        n, doc = self.node, self.status() or {}
        resources = doc.get("resources") or {}
        for name, text, key, unit in _RESOURCES:
            family = GaugeMetricFamily(name, text, labels=("node",))
            if isinstance(resources.get(key), int | float):
                family.add_metric((n,), resources[key] * unit)
            yield family
        pools = doc.get("pools") or {}
        for name, text, key in (("herd_node_pool_capacity_bytes", "Size of the pool", "capacity"),
                                ("herd_node_pool_available_bytes", "Free space of the pool",
                                 "available")):
            family = GaugeMetricFamily(name, text, labels=("node", "pool"))
            for pool, state in sorted(pools.items()):
                if isinstance(state, dict) and isinstance(state.get(key), int | float):
                    family.add_metric((n, pool), state[key])
            yield family
        errors = CounterMetricFamily("herd_libvirt_errors", "libvirt calls that failed in "
                                     "this process", labels=("node",))
        errors.add_metric((n,), self.libvirt_errors())
        yield errors
        connected = GaugeMetricFamily("herd_zookeeper_connected", "1 while the ZooKeeper "
                                      "session is connected and writable", labels=("node",))
        connected.add_metric((n,), 1 if self.zk_connected() else 0)
        yield connected
