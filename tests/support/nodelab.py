"""A lab of network namespaces for the client-network tests and benchmarks (issue #14):
"node" namespaces, each with an underlay veth `u0` (10.77.0.N/24) on one "switch"
namespace (`Lab.underlay`), guests plugged into a node's bridge (`guest` with an address,
`plug` without), what a node has (`links`, `flood`), an ICMP echo from a guest (`ping`:
this machine has no `ping`), a fence agent that pulls a node's plug (`fence_agent`), and
`close()`, which kills every process left in the lab's namespaces and deletes them. Names
are unique per lab (`prefix`). Used by tests/integration/test_network_links.py,
test_node_networks.py, test_node_gateways.py and bench/netlab.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

NODES = ("a", "b", "c")
ADDRESS = {node: f"10.77.0.{i}" for i, node in enumerate(NODES, start=1)}
ZERO = "00:00:00:00:00:00"

# One ICMP echo with DF set (like `ping -c1 -W2 -M do -s SIZE DST`): exit 0 on the reply.
PING = r"""
import os, socket, struct, sys, time
dst, size = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.setsockopt(socket.IPPROTO_IP, 10, 2)  # IP_MTU_DISCOVER = IP_PMTUDISC_DO: never fragment
ident, payload = os.getpid() & 0xFFFF, bytes(size)
def csum(b):
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b + b"\0" * (len(b) % 2)))
    t = (t >> 16) + (t & 0xFFFF)
    return ~(t + (t >> 16)) & 0xFFFF
head = struct.pack("!BBHHH", 8, 0, 0, ident, 1)
s.sendto(struct.pack("!BBHHH", 8, 0, csum(head + payload), ident, 1) + payload, (dst, 0))
deadline = time.monotonic() + 2
while (left := deadline - time.monotonic()) > 0:
    s.settimeout(left)
    try:
        data, (src, _) = s.recvfrom(65535)
    except socket.timeout:
        break
    kind, _, _, rid, _ = struct.unpack("!BBHHH", data[(data[0] & 15) * 4:][:8])
    if kind == 0 and rid == ident and src == dst:
        sys.exit(0)
sys.exit(1)
"""


def sh(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    assert done.returncode == 0, f"{' '.join(argv)}: {done.stderr.strip()}"
    return done.stdout


@dataclass
class Lab:
    prefix: str
    made: list[str] = field(default_factory=list)  # namespaces, deleted in teardown

    def ns(self, node: str) -> str:
        return f"{self.prefix}-{node}"

    def add_ns(self, name: str) -> str:
        sh("ip", "netns", "add", name)
        self.made.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def links(self, node: str) -> dict[str, dict[str, Any]]:
        doc = json.loads(sh("ip", "-n", self.ns(node), "-j", "-d", "link", "show"))
        return {link["ifname"]: link for link in doc}

    def flood(self, node: str, dev: str) -> set[str]:
        doc = json.loads(sh("bridge", "-n", self.ns(node), "-j", "fdb", "show"))
        return {e["dst"] for e in doc if e.get("ifname") == dev and e["mac"] == ZERO}

    def guest(self, node: str, bridge: str, address: str, *, mtu: int = 1450) -> str:
        """A guest namespace with `eth0` (address/24) plugged into `bridge` of `node`."""
        name = self.add_ns(f"{self.prefix}-g{len(self.made)}")
        port = f"gp{len(self.made)}"
        sh("ip", "-n", self.ns(node), "link", "add", port, "mtu", str(mtu), "type", "veth",
           "peer", "name", "eth0", "netns", name)
        sh("ip", "-n", self.ns(node), "link", "set", port, "master", bridge, "up")
        sh("ip", "-n", name, "link", "set", "eth0", "mtu", str(mtu), "up")
        sh("ip", "-n", name, "addr", "add", f"{address}/24", "dev", "eth0")
        return name

    async def ping(self, guest: str, address: str, *, size: int = 56) -> bool:
        proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", guest, sys.executable, "-c", PING, address, str(size),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        return await proc.wait() == 0

    def underlay(self, nodes: Iterable[str] = NODES) -> None:
        """A switch namespace and one namespace per node with `u0` on the switch."""
        switch = self.add_ns(self.ns("sw"))
        sh("ip", "-n", switch, "link", "add", "sw", "type", "bridge")
        sh("ip", "-n", switch, "link", "set", "sw", "up")
        for node in nodes:
            ns = self.add_ns(self.ns(node))
            sh("ip", "-n", switch, "link", "add", f"p{node}", "type", "veth", "peer", "name",
               "u0", "netns", ns)
            sh("ip", "-n", switch, "link", "set", f"p{node}", "master", "sw", "up")
            sh("ip", "-n", ns, "addr", "add", f"{ADDRESS[node]}/24", "dev", "u0")
            sh("ip", "-n", ns, "link", "set", "u0", "up")

    def plug(self, node: str, bridge: str) -> str:
        """A guest namespace whose address-less `eth0` is a port of `bridge` on `node`."""
        guest = self.add_ns(f"{self.prefix}-c{len(self.made)}")
        port = f"cp{len(self.made)}"
        sh("ip", "-n", self.ns(node), "link", "add", port, "type", "veth", "peer", "name",
           "eth0", "netns", guest)
        sh("ip", "-n", self.ns(node), "link", "set", port, "master", bridge, "up")
        sh("ip", "-n", guest, "link", "set", "eth0", "up")
        return guest

    def close(self) -> None:
        """Every process left in the lab's namespaces killed, the namespaces gone."""
        for name in reversed(self.made):
            pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True,
                                  text=True, timeout=10, check=False).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10,
                           check=False)
        self.made.clear()


def fence_agent(lab: Lab, nodes: Iterable[str], path: Path) -> Path:
    """A fence agent (`command`) that pulls the plug of lab node `hv-<n>` (SIGKILL to every
    process in its namespace) and appends `<node> <epoch seconds>` to `<path>.log`."""
    cases = "".join(f"  hv-{n}) ns={lab.ns(n)} ;;\n" for n in nodes)
    path.write_text(f"#!/bin/sh\ncase \"$HERD_NODE\" in\n{cases}  *) exit 1 ;;\nesac\n"
                    "ip netns pids \"$ns\" | xargs -r kill -9\n"
                    f"echo \"$HERD_NODE $(date +%s.%N)\" >> {path}.log\n")
    path.chmod(0o755)
    return path


def fenced(path: Path) -> list[tuple[str, float]]:
    """What the agent at `path` fenced, in order: (node, when)."""
    log = Path(f"{path}.log")
    lines = log.read_text().split("\n") if log.exists() else []
    return [(line.split()[0], float(line.split()[1])) for line in lines if line.strip()]


@pytest.fixture
def lab() -> Iterator[Lab]:
    made = Lab(prefix=f"hx{uuid.uuid4().hex[:6]}")
    try:
        made.underlay()
        yield made
    finally:
        made.close()
