"""The vocabulary of client networks (issue #14): a network's kind and the direction of a
firewall rule. Pure; used by `schemas.network`, `statemachine.netplan`, `store`,
`reconciler.network`, `server` and `ctl`.
"""

from __future__ import annotations

from enum import StrEnum


class NetworkKind(StrEnum):
    """`spec.type` of a Network."""

    MANAGED = "managed"  # a VXLAN and a bridge on every node; gateway, DHCP, DNS on the primary
    BRIDGED = "bridged"  # a VLAN or an existing bridge on every node; the LAN serves it


class AclDirection(StrEnum):
    """Which traffic of a network a firewall rule sees, from the guests' side."""

    IN = "in"  # to the guests
    OUT = "out"  # from the guests
