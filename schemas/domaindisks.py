"""The disks of a domain XML that name volumes of Herd's pools (issue #15):
`<disk type='volume'><source pool='P' volume='V'/>...</disk>`, with whether the disk is
`<shareable/>` (several VMs may attach the volume then). Pure; the parse is
`schemas.domainxml`'s (defused, depth-bounded). Used by `server` (define and XML checks)
and `store` (attachments, placement).
"""

from __future__ import annotations

from dataclasses import dataclass

from marshmallow import ValidationError

from schemas.domainxml import memoized, parse_domain_xml
from schemas.names import is_valid_name


@dataclass(frozen=True)
class VolumeDisk:
    pool: str
    volume: str
    shareable: bool
    target: str = ""  # the guest's device name (`<target dev='vda'/>`)

    @property
    def key(self) -> str:
        return f"{self.pool}/{self.volume}"


def _volume_disks(xml: str) -> tuple[VolumeDisk, ...]:
    if "volume" not in xml:
        return ()
    devices = parse_domain_xml(xml).find("devices")
    found = []
    for index, disk in enumerate(devices.findall("disk") if devices is not None else []):
        if disk.get("type") != "volume":
            continue
        source = disk.find("source")
        pool = source.get("pool", "") if source is not None else ""
        volume = source.get("volume", "") if source is not None else ""
        if not (is_valid_name(pool) and is_valid_name(volume)):
            raise ValidationError(f"disk {index}: a volume disk needs <source pool='P' "
                                  "volume='V'/> naming a pool and a volume of Herd's")
        target = disk.find("target")
        found.append(VolumeDisk(pool, volume, disk.find("shareable") is not None,
                                target.get("dev", "") if target is not None else ""))
    return tuple(found)


volume_disks = memoized(_volume_disks)


def plain_disks(xml: str) -> int:
    """How many writable disks with a source the domain has that are not Herd volumes (an
    image path, a block device, a network disk): storage Herd knows nothing of."""
    devices = parse_domain_xml(xml).find("devices")
    return sum(1 for disk in (devices.findall("disk") if devices is not None else [])
               if disk.get("type") != "volume" and disk.find("source") is not None
               and disk.find("readonly") is None)


def volume_keys(xml: object) -> set[str]:
    """`pool/volume` of every volume disk (none when the XML cannot be read)."""
    if not isinstance(xml, str):
        return set()
    try:
        return {d.key for d in volume_disks(xml)}
    except ValidationError:
        return set()
