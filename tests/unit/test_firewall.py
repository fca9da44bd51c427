"""The nftables text of a network's firewall (issue #14): nft itself accepts it (checked
in a fresh user and network namespace, like the API checks rules), rules stand in their
chain in order, NAT only when asked, and removal takes both tables away."""

from __future__ import annotations

import subprocess

from reconciler.network.firewall import removal, ruleset
from store.netmodel import AclRule, IPBlock, Network
from vocabulary import AclDirection, NetworkKind

NET = Network(name="web", kind=NetworkKind.MANAGED, generation=1, vni=1001,
              ipv4=IPBlock("10.100.0.0/24", "10.100.0.1", "10.100.0.100", "10.100.0.199"),
              nat=True, acl=(AclRule("b", AclDirection.IN, 20, "tcp dport 443 accept"),
                             AclRule("a", AclDirection.IN, 10, "tcp dport 22 accept"),
                             AclRule("c", AclDirection.OUT, 5, "ip daddr 10.9.0.0/16 drop")))


def nft_check(text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["unshare", "--user", "--map-root-user", "--net", "nft", "--check",
                           "-f", "-"], input=text, capture_output=True, text=True, timeout=30)


def test_nft_accepts_the_ruleset_and_its_removal() -> None:
    for text in (ruleset(NET, "hbr1001"), removal(NET)):
        done = nft_check(text)
        assert done.returncode == 0, done.stderr


def test_rules_stand_in_order_in_their_chain_and_nat_only_when_asked() -> None:
    text = ruleset(NET, "hbr1001")
    chain_in = text[text.index("chain in {"):text.index("chain out {")]
    assert chain_in.index("dport 22") < chain_in.index("dport 443")
    assert 'ip daddr 10.9.0.0/16 drop comment "c"' in text[text.index("chain out {"):]
    assert 'ip saddr 10.100.0.0/24 oifname != "hbr1001" masquerade' in text
    plain = ruleset(Network(name="web", kind=NetworkKind.MANAGED, generation=1, vni=1001,
                            ipv4=NET.ipv4), "hbr1001")
    assert "masquerade" not in plain and nft_check(plain).returncode == 0
