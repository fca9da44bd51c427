"""Ports of the dev and test servers lie outside the kernel's ephemeral range, so that a
server restarted on its port never finds it taken by a connection's local port."""

from __future__ import annotations

from pathlib import Path

from ctl.dev.zookeeper import LOWEST_PORT, free_port


def test_free_ports_are_below_the_ephemeral_range() -> None:
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = {free_port() for _ in range(50)}
    assert all(LOWEST_PORT <= port < low for port in ports)
    assert len(ports) > 40  # spread, not one port handed out again and again
