"""What a VM's domain XML may say of networks (issue #14), checked wherever the API
stores XML (define, modify, replace, apply):

- every network its NICs name (`<interface type='network'><source network='NAME'/>`)
  exists: otherwise a 422 `unknown_network` naming it;
- every NIC has a MAC address, fixed in the stored XML: a NIC without one keeps the MAC
  its predecessor at the same position had (a replaced XML keeps its addresses), or gets
  a new random one in QEMU's range 52:54:00:xx:xx:xx;
- no MAC is used twice in the cluster: a MAC that another VM's NIC has is a 422.

The uniqueness check reads `server.macindex.MacIndex` (kept by the cache) to say it early
and by name; what makes it hold under concurrency is the MAC registry written in the same
transaction as the VM (`store.macs`). Used by `server.vm_handlers`,
`server.objects` and `server.apply` through `server.objects.XmlCheck`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from marshmallow import ValidationError

from schemas.domainnics import Nic, domain_nics, networks_named, with_macs
from server.errors import ApiError
from server.macindex import MacIndex

QEMU_OUI = "52:54:00"


@dataclass(frozen=True)
class NicCheck:
    """The network rules for one request's XML (see the module doc)."""

    network_exists: Callable[[str], bool]
    macs: MacIndex
    rng: random.Random

    def fixed(self, xml: str, *, vm: str, old: str | None = None,
              field: tuple[str | int, ...] = ("xml",)) -> str:
        """`xml` with every NIC's MAC fixed, after the checks; raises 422 otherwise."""
        nics = _nics(xml, field)
        unknown = [n for n in networks_named(xml) if not self.network_exists(n)]
        if unknown:
            raise _refusal("unknown_network", field, f"network {unknown[0]!r} does not "
                           "exist (herdctl network list)")
        wanted = _previous_macs(old, len(nics)) if old else [None] * len(nics)
        given = [n.mac or wanted[n.index] for n in nics]
        taken = {m for m in given if m is not None}
        fresh = [m or self._new_mac(taken) for m in given]
        self._unique(fresh, vm=vm, field=field)
        return with_macs(xml, [fresh[n.index] for n in nics if n.mac is None])

    def _new_mac(self, taken: set[str]) -> str:
        while True:
            mac = f"{QEMU_OUI}:" + ":".join(f"{self.rng.randrange(256):02x}" for _ in range(3))
            if mac not in taken and self.macs.owner(mac) is None:
                taken.add(mac)
                return mac

    def _unique(self, macs: Iterable[str], *, vm: str, field: tuple[str | int, ...]) -> None:
        seen: set[str] = set()
        for mac in macs:
            owner = self.macs.owner(mac)
            if mac in seen or (owner is not None and owner != vm):
                where = f"VM {owner!r}" if owner not in (None, vm) else "another NIC of it"
                raise _refusal("duplicate_mac", field, f"MAC {mac} is used by {where}: "
                               "each NIC in the cluster needs its own")
            seen.add(mac)


def _nics(xml: str, field: tuple[str | int, ...]) -> tuple[Nic, ...]:
    try:
        return domain_nics(xml)
    except ValidationError as e:
        raise _refusal("invalid", field, str(e.messages[0])) from None


def _previous_macs(old: str, count: int) -> list[str | None]:
    try:
        before = [n.mac for n in domain_nics(old)]
    except ValidationError:
        before = []
    return [before[i] if i < len(before) else None for i in range(count)]


def _refusal(code: str, field: tuple[str | int, ...], message: str) -> ApiError:
    details: dict[str, object] = {str(field[-1]): [message]}
    for key in reversed(field[:-1]):
        details = {str(key): details}
    return ApiError(422, code, message, details=details)
