"""The cluster's MAC addresses by VM (issue #14): kept by `server.cache` from every change
of a VM's spec (a parse only when the XML has an `<interface`), read by
`server.nics` to refuse a MAC used twice and to pick new ones.
"""

from __future__ import annotations

from marshmallow import ValidationError

from schemas.domainnics import macs_of


class MacIndex:
    """MAC address -> the VM whose NIC has it."""

    def __init__(self) -> None:
        self._owner: dict[str, str] = {}
        self._by_vm: dict[str, tuple[str, ...]] = {}

    def update(self, vm: str, xml: str | None) -> None:
        """The VM's MACs are now those of `xml` (None: the VM is gone)."""
        for mac in self._by_vm.pop(vm, ()):
            if self._owner.get(mac) == vm:
                del self._owner[mac]
        try:
            macs = macs_of(xml) if xml else ()
        except ValidationError:
            macs = ()  # stored before MACs were checked: it holds no address to guard
        if macs:
            self._by_vm[vm] = macs
            for mac in macs:
                self._owner.setdefault(mac, vm)

    def owner(self, mac: str) -> str | None:
        return self._owner.get(mac)
