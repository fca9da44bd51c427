"""The disks of a domain XML that name Herd's volumes, and the ones that do not
(`schemas.domaindisks`): what placement, attachments and a live migration's trust in a
shared pool read."""

from __future__ import annotations

import pytest
from marshmallow import ValidationError

from schemas.domaindisks import VolumeDisk, plain_disks, volume_disks


def domain(*disks: str) -> str:
    return f"<domain type='kvm'><name>d</name><devices>{''.join(disks)}</devices></domain>"


VOLUME = "<disk type='volume'><source pool='p' volume='v'/><target dev='vda'/></disk>"
SHARED = ("<disk type='volume'><source pool='p' volume='s'/><target dev='vdb'/>"
          "<shareable/></disk>")
FILE = "<disk type='file'><source file='/var/lib/x.img'/><target dev='vdc'/></disk>"
CDROM = ("<disk type='file' device='cdrom'><source file='/iso/x.iso'/><target dev='sda'/>"
         "<readonly/></disk>")
EMPTY = "<disk type='file' device='cdrom'><target dev='sdb'/></disk>"


def test_volume_disks_name_pool_volume_target_and_sharing() -> None:
    assert volume_disks(domain(VOLUME, SHARED, FILE)) == (
        VolumeDisk("p", "v", False, "vda"), VolumeDisk("p", "s", True, "vdb"))


def test_a_volume_disk_without_a_pool_is_refused() -> None:
    with pytest.raises(ValidationError, match="disk 0"):
        volume_disks(domain("<disk type='volume'><source volume='v'/></disk>"))


@pytest.mark.parametrize(("disks", "expected"), [
    ((VOLUME, SHARED), 0),
    ((VOLUME, FILE), 1),  # an image Herd knows nothing of
    ((VOLUME, CDROM, EMPTY), 0),  # read-only, or no medium: nothing to keep consistent
    ((FILE, FILE), 2),
])
def test_plain_disks_count_the_writable_ones_that_are_not_volumes(
        disks: tuple[str, ...], expected: int) -> None:
    assert plain_disks(domain(*disks)) == expected
