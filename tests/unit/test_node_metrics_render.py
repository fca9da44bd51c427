"""herd-node's metrics without I/O: libvirt's flat stats record parsed
(`reconciler.libvirt.stats.parse_domain_stats`), the VM and node collectors rendered as a
scraper reads them, and the `metrics_address` option's validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from reconciler.config import load_config
from reconciler.libvirt.interface import DiskStats, DomainStats, InterfaceStats
from reconciler.libvirt.stats import parse_domain_stats
from reconciler.metrics.collector import NodeCollector, VMCollector
from store.configfile import ConfigError
from vocabulary import RunState

QEMU_RECORD: dict[str, Any] = {
    "state.state": 1, "state.reason": 1, "cpu.time": 12_500_000_000, "cpu.user": 1,
    "balloon.current": 1048576, "balloon.maximum": 2097152, "balloon.rss": 524288,
    "block.count": 2,
    "block.0.name": "vda", "block.0.rd.bytes": 1000, "block.0.rd.reqs": 10,
    "block.0.wr.bytes": 2000, "block.0.wr.reqs": 20,
    "block.1.name": "sda", "block.1.rd.bytes": 5,
    "net.count": 1, "net.0.name": "vnet0", "net.0.rx.bytes": 300, "net.0.rx.pkts": 3,
    "net.0.tx.bytes": 400, "net.0.tx.pkts": 4,
}


def test_a_full_record_is_parsed_into_seconds_bytes_and_devices() -> None:
    s = parse_domain_stats("web1", QEMU_RECORD)
    assert s == DomainStats(
        name="web1", state=RunState.RUNNING, cpu_seconds=12.5,
        balloon_current_bytes=1 << 30, balloon_maximum_bytes=2 << 30,
        balloon_rss_bytes=512 << 20,
        disks=(DiskStats("vda", read_bytes=1000, write_bytes=2000, read_requests=10,
                         write_requests=20), DiskStats("sda", read_bytes=5)),
        interfaces=(InterfaceStats("vnet0", rx_bytes=300, tx_bytes=400, rx_packets=3,
                                   tx_packets=4),))


def test_what_libvirt_leaves_out_stays_absent() -> None:
    # the test driver, and QEMU for a domain that is off: state only
    assert parse_domain_stats("off", {"state.state": 5, "state.reason": 0}) == DomainStats(
        name="off", state=RunState.DEFINED)
    # a device without its name is skipped, not mislabelled
    s = parse_domain_stats("x", {"state.state": 3, "block.count": 1, "block.0.rd.bytes": 1})
    assert s.state == RunState.PAUSED and s.disks == ()


def render(*collectors: Any) -> dict[str, list[tuple[dict[str, str], float]]]:
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def test_the_vm_collector_labels_every_series_by_vm_node_and_device() -> None:
    vms = VMCollector("hv1")
    vms.stats = [parse_domain_stats("web1", QEMU_RECORD),
                 parse_domain_stats("off", {"state.state": 5})]
    got = render(vms)
    assert sorted(got["herd_vm_cpu_seconds_total"], key=str) == [
        ({"vm": "off", "node": "hv1"}, 0.0), ({"vm": "web1", "node": "hv1"}, 12.5)]
    assert got["herd_vm_memory_actual_bytes"] == [({"vm": "web1", "node": "hv1"}, 1 << 30)]
    assert got["herd_vm_memory_rss_bytes"] == [({"vm": "web1", "node": "hv1"}, 512 << 20)]
    assert ({"vm": "web1", "node": "hv1", "disk": "vda"}, 2000.0) \
        in got["herd_vm_block_write_bytes_total"]
    assert got["herd_vm_network_transmit_packets_total"] == [
        ({"vm": "web1", "node": "hv1", "interface": "vnet0"}, 4.0)]
    states = {labels["state"]: value for labels, value in got["herd_node_vms"]}
    assert states == {"running": 1, "paused": 0, "defined": 1, "crashed": 0}


def test_the_node_collector_turns_the_published_status_into_bytes() -> None:
    status = {"resources": {"memTotal": 1024, "memFree": 256, "memProv": 512,
                            "vcpuAlloc": 3, "load": 0.5},
              "pools": {"local": {"capacity": 1000, "available": 400, "usable": True}}}
    got = render(NodeCollector("hv1", status=lambda: status, libvirt_errors=lambda: 7,
                               zk_connected=lambda: True))
    node = {"node": "hv1"}
    assert got["herd_node_memory_total_bytes"] == [(node, 1024 << 20)]
    assert got["herd_node_memory_free_bytes"] == [(node, 256 << 20)]
    assert got["herd_node_memory_provisioned_bytes"] == [(node, 512 << 20)]
    assert got["herd_node_vcpus_allocated"] == [(node, 3)]
    assert got["herd_node_load1"] == [(node, 0.5)]
    assert got["herd_node_pool_available_bytes"] == [({**node, "pool": "local"}, 400)]
    assert got["herd_libvirt_errors_total"] == [(node, 7)]
    assert got["herd_zookeeper_connected"] == [(node, 1)]


def test_no_status_yet_gives_no_node_series() -> None:
    got = render(NodeCollector("hv1", status=lambda: None, libvirt_errors=lambda: 0,
                               zk_connected=lambda: False))
    assert "herd_node_memory_total_bytes" not in got
    assert got["herd_zookeeper_connected"] == [({"node": "hv1"}, 0)]


@pytest.mark.parametrize("address", ["127.0.0.1:9310", "[::1]:0", "node1.example:65535"])
def test_metrics_address_takes_host_and_port(tmp_path: Path, address: str) -> None:
    config = load_config(None, {"name": "hv1", "metrics_address": address})
    assert config.metrics_address == address


@pytest.mark.parametrize("address", ["9310", "host:", "host:65536", "a b:1", ":80"])
def test_a_bad_metrics_address_is_refused_by_name(address: str) -> None:
    with pytest.raises(ConfigError, match="metrics_address"):
        load_config(None, {"name": "hv1", "metrics_address": address})


def test_metrics_are_off_by_default() -> None:
    assert load_config(None, {"name": "hv1"}).metrics_address is None
