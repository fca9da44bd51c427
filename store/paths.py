"""Znode paths of the ZooKeeper layout (DESIGN.md section 2), under a configurable root.

Every path the project uses is built here and nowhere else. Called by every store module
and by tests that inspect ZooKeeper directly.
"""

from __future__ import annotations

from dataclasses import dataclass

VM_CHILDREN = ("placement", "status", "owner")


@dataclass(frozen=True)
class Paths:
    """Paths below one cluster root (default `/herd`)."""

    root: str = "/herd"

    def __post_init__(self) -> None:
        if not self.root.startswith("/") or (self.root != "/" and self.root.endswith("/")):
            raise ValueError(f"root must be absolute, without a trailing slash: {self.root!r}")

    def _join(self, *parts: str) -> str:
        return "/".join((self.root.rstrip("/"), *parts))

    @property
    def schema(self) -> str:
        return self._join("schema")

    @property
    def config(self) -> str:
        return self._join("config")

    @property
    def vms(self) -> str:
        return self._join("vms")

    @property
    def nodes(self) -> str:
        return self._join("nodes")

    @property
    def election(self) -> str:
        return self._join("election")

    @property
    def events(self) -> str:
        return self._join("events")

    @property
    def networks(self) -> str:
        return self._join("networks")

    def network(self, name: str) -> str:
        return self._join("networks", name)

    def network_leases(self, name: str) -> str:
        return self._join("networks", name, "leases")

    def network_gateway(self, name: str) -> str:
        return self._join("networks", name, "gateway")

    def network_lease(self, name: str, mac: str) -> str:
        return self._join("networks", name, "leases", mac)

    @property
    def pools(self) -> str:
        return self._join("pools")

    @property
    def rules(self) -> str:
        return self._join("rules")

    def rule(self, name: str) -> str:
        return self._join("rules", name)

    def pool(self, name: str) -> str:
        return self._join("pools", name)

    @property
    def volumes(self) -> str:
        return self._join("volumes")

    def volume_pool(self, pool: str) -> str:
        return self._join("volumes", pool)

    def volume(self, pool: str, name: str) -> str:
        return self._join("volumes", pool, name)

    def volume_status(self, pool: str, name: str) -> str:
        return self._join("volumes", pool, name, "status")

    def volume_attachment(self, pool: str, name: str) -> str:
        return self._join("volumes", pool, name, "attachment")

    @property
    def macs(self) -> str:
        return self._join("macs")

    def mac(self, mac: str) -> str:
        return self._join("macs", mac)

    @property
    def audit(self) -> str:
        return self._join("audit")

    @property
    def tokens(self) -> str:
        return self._join("tokens")

    def token(self, name: str) -> str:
        return self._join("tokens", name)

    def vm(self, name: str) -> str:
        return self._join("vms", name)

    def vm_placement(self, name: str) -> str:
        return self._join("vms", name, "placement")

    def vm_status(self, name: str) -> str:
        return self._join("vms", name, "status")

    def vm_owner(self, name: str) -> str:
        return self._join("vms", name, "owner")

    def vm_znodes(self, name: str) -> tuple[str, str, str, str]:
        """The VM's own znode and its placement, status and owner (one join, not four:
        the primary reads every VM this way on each pass)."""
        base = self._join("vms", name)
        return base, f"{base}/placement", f"{base}/status", f"{base}/owner"

    def node(self, name: str) -> str:
        return self._join("nodes", name)

    def node_status(self, name: str) -> str:
        return self._join("nodes", name, "status")

    def node_alive(self, name: str) -> str:
        return self._join("nodes", name, "alive")

    def split(self, path: str) -> tuple[str, ...]:
        """The components of `path` below the root (`('vms', 'web1', 'status')`)."""
        prefix = self.root.rstrip("/") + "/"
        if not path.startswith(prefix):
            return ()
        return tuple(path[len(prefix):].split("/"))
