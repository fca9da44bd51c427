"""The firewall of a managed network at its gateway (issue #14): the network's rules
(PVC's ACLs, `in`: to the guests, `out`: from them, each in its `order`) and its NAT, as
nftables tables of the network's own on the node that holds the gateway.

- `ruleset(net, bridge)` (pure) is the text: `table inet herd_<vni>` with a forward base
  chain that sends the traffic leaving the bridge's guests to chain `out` and the traffic
  to them to chain `in`, where the rules stand; with `nat`, `table ip herd_nat_<vni>`
  masquerades what leaves the network's IPv4 block through any other interface. Both are
  replaced atomically (`add table; delete table; table {...}` in one `nft -f` run).
- `Firewall` applies and removes them (in the node's network namespace, if any) and turns
  on IPv4 forwarding there (a gateway routes). Commands run in worker threads.
Rules were parsed by `nft --check` before they were stored (`server.network.nftcheck`).
Called by `reconciler.network.gateways`.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Sequence

from store.netmodel import Network
from vocabulary import AclDirection

TIMEOUT = 10.0


class FirewallError(Exception):
    """An nft or sysctl command failed; the message says which and why."""


def table_names(net: Network) -> tuple[str, str]:
    return f"herd_{net.vni}", f"herd_nat_{net.vni}"


def _chain(net: Network, direction: AclDirection) -> str:
    rules = sorted((r for r in net.acl if r.direction == direction),
                   key=lambda r: (r.order, r.name))
    body = "".join(f"    {r.rule}{_comment(r.name, r.rule)}\n" for r in rules)
    return f"  chain {direction.value} {{\n{body}  }}\n"


def _comment(name: str, rule: str) -> str:
    """The rule's name as its nft comment (unless the rule has a comment of its own)."""
    return "" if "comment" in rule else f" comment \"{name}\""


def ruleset(net: Network, bridge: str) -> str:
    """The nft script that makes the network's tables what `net` says (see module doc)."""
    name, nat = table_names(net)
    text = (f"add table inet {name}\ndelete table inet {name}\n"
            f"table inet {name} {{\n"
            "  chain forward {\n"
            "    type filter hook forward priority 0; policy accept;\n"
            f"    iifname \"{bridge}\" jump out\n"
            f"    oifname \"{bridge}\" jump in\n"
            "  }\n"
            f"{_chain(net, AclDirection.IN)}{_chain(net, AclDirection.OUT)}}}\n"
            f"add table ip {nat}\ndelete table ip {nat}\n")
    if net.nat and net.ipv4 is not None:
        text += (f"table ip {nat} {{\n"
                 "  chain post {\n"
                 "    type nat hook postrouting priority 100; policy accept;\n"
                 f"    ip saddr {net.ipv4.network} oifname != \"{bridge}\" masquerade\n"
                 "  }\n}\n")
    return text


def removal(net: Network) -> str:
    name, nat = table_names(net)
    return (f"add table inet {name}\ndelete table inet {name}\n"
            f"add table ip {nat}\ndelete table ip {nat}\n")


class Firewall:
    """Applies networks' tables on one node (or in one network namespace of it)."""

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns

    def _argv(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *argv] if self.netns else list(argv)

    async def _run(self, argv: Sequence[str], *, stdin: str | None = None) -> None:
        full = self._argv(argv)
        try:
            done = await asyncio.to_thread(subprocess.run, full, input=stdin,
                                           capture_output=True, text=True, timeout=TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise FirewallError(f"{' '.join(argv[:2])}: {e}") from None
        if done.returncode != 0:
            first = (done.stderr.strip().splitlines() or ["no message"])[0]
            raise FirewallError(f"{' '.join(argv[:2])}: {first[:200]}")

    async def apply(self, net: Network, bridge: str) -> None:
        """Forwarding on, then the network's tables as `net` says (atomically)."""
        await self._run(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
        await self._run(["nft", "-f", "-"], stdin=ruleset(net, bridge))

    async def remove(self, net: Network) -> None:
        await self._run(["nft", "-f", "-"], stdin=removal(net))
