"""Every domain's figures in one libvirt call: `getAllDomainStats`, parsed.

`all_domain_stats` is the blocking half of `LibvirtHypervisor.all_domain_stats` (run in a
worker thread there): ONE `getAllDomainStats` call for all domains, whatever their number.
`parse_domain_stats` turns libvirt's flat record of one domain ("cpu.time" in ns,
"balloon.current" in KiB, "block.0.rd.bytes", "net.1.tx.pkts", ...) into a `DomainStats`;
it is pure (unit-tested on dicts). The scrape of herd-node's /metrics
(`reconciler.metrics`) is the caller.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import libvirt

from reconciler.libvirt.connection import Connection, libvirt_call
from reconciler.libvirt.interface import DiskStats, DomainStats, InterfaceStats
from vocabulary import RunState

# libvirt's virDomainState numbers (as in domains._STATES, kept numeric: the parser is pure)
STATE_NUMBERS = {0: RunState.DEFINED, 1: RunState.RUNNING, 2: RunState.RUNNING,
                 3: RunState.PAUSED, 4: RunState.RUNNING, 5: RunState.DEFINED,
                 6: RunState.CRASHED, 7: RunState.PAUSED}

STATS = (libvirt.VIR_DOMAIN_STATS_STATE | libvirt.VIR_DOMAIN_STATS_CPU_TOTAL
         | libvirt.VIR_DOMAIN_STATS_BALLOON | libvirt.VIR_DOMAIN_STATS_BLOCK
         | libvirt.VIR_DOMAIN_STATS_INTERFACE)

KIB = 1024


def _int(raw: Mapping[str, Any], key: str) -> int | None:
    value = raw.get(key)
    return int(value) if isinstance(value, int | float) else None


def _kib(raw: Mapping[str, Any], key: str) -> int | None:
    value = _int(raw, key)
    return None if value is None else value * KIB


def _disks(raw: Mapping[str, Any]) -> tuple[DiskStats, ...]:
    found = []
    for i in range(_int(raw, "block.count") or 0):
        p = f"block.{i}."
        name = raw.get(p + "name")
        if not isinstance(name, str):
            continue
        found.append(DiskStats(name=name, read_bytes=_int(raw, p + "rd.bytes") or 0,
                               write_bytes=_int(raw, p + "wr.bytes") or 0,
                               read_requests=_int(raw, p + "rd.reqs") or 0,
                               write_requests=_int(raw, p + "wr.reqs") or 0))
    return tuple(found)


def _interfaces(raw: Mapping[str, Any]) -> tuple[InterfaceStats, ...]:
    found = []
    for i in range(_int(raw, "net.count") or 0):
        p = f"net.{i}."
        name = raw.get(p + "name")
        if not isinstance(name, str):
            continue
        found.append(InterfaceStats(name=name, rx_bytes=_int(raw, p + "rx.bytes") or 0,
                                    tx_bytes=_int(raw, p + "tx.bytes") or 0,
                                    rx_packets=_int(raw, p + "rx.pkts") or 0,
                                    tx_packets=_int(raw, p + "tx.pkts") or 0))
    return tuple(found)


def parse_domain_stats(name: str, raw: Mapping[str, Any]) -> DomainStats:
    """One domain's record from getAllDomainStats; what libvirt left out stays None."""
    cpu_ns = _int(raw, "cpu.time")
    return DomainStats(
        name=name, state=STATE_NUMBERS.get(_int(raw, "state.state") or 0, RunState.DEFINED),
        cpu_seconds=None if cpu_ns is None else cpu_ns / 1e9,
        balloon_current_bytes=_kib(raw, "balloon.current"),
        balloon_maximum_bytes=_kib(raw, "balloon.maximum"),
        balloon_rss_bytes=_kib(raw, "balloon.rss"),
        disks=_disks(raw), interfaces=_interfaces(raw))


def all_domain_stats(c: Connection) -> list[DomainStats]:
    """Every domain's figures, from one getAllDomainStats call (blocking)."""
    with libvirt_call(f"cannot read domain statistics on {c.uri}"):
        records = c.get().getAllDomainStats(STATS, 0)
        return [parse_domain_stats(dom.name(), raw) for dom, raw in records]
