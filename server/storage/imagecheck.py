"""What an upload may put into a volume (issue #15), checked on its first bytes before any
of them reach the node: pure, called by `server.storage.volumedata`.

The bytes are the image file as libvirt stores it (virStorageVolUpload writes them as
they come): a raw volume takes any bytes up to its capacity; a qcow2 volume takes a qcow2
image (`qemu-img convert -O qcow2` first) whose virtual size fits the volume, with no
backing file and no external data file — such a header would make QEMU open a file of
the host's choosing (another guest's disk, a host file) when a VM uses the volume — and
not encrypted (Herd has no secrets for it). A qcow2 file is somewhat larger than what it
holds (its tables): `upload_limit` allows for that.
"""

from __future__ import annotations

import struct

QCOW2_MAGIC = b"QFI\xfb"
_HEADER = struct.Struct(">4sIQIIQI")  # magic, version, backing offset, size, cluster bits,
#                                       virtual size, crypt method
_INCOMPATIBLE = struct.Struct(">Q")  # version 3, at byte 72
_EXTERNAL_DATA_FILE = 1 << 2
HEAD = 80  # bytes needed to check a qcow2 header


def upload_limit(fmt: str, capacity: int) -> int:
    """The most bytes an upload into a volume of `fmt` and `capacity` may send: the
    capacity for raw; for qcow2 also its metadata (8 + 2 bytes per cluster of at least
    512 bytes: under 1/32 of the capacity, plus the header and the first tables)."""
    return capacity if fmt != "qcow2" else capacity + capacity // 32 + (2 << 20)


def qcow2_problem(head: bytes, capacity: int) -> str | None:
    """Why `head` (the first bytes of an upload) cannot go into a qcow2 volume of
    `capacity` bytes, or None when it may."""
    if len(head) < HEAD or head[:4] != QCOW2_MAGIC:
        return ("Not a qcow2 image: a qcow2 volume takes a qcow2 file "
                "(qemu-img convert -O qcow2 first), or make the volume raw.")
    _magic, version, backing, _bsize, _cbits, size, crypt = _HEADER.unpack_from(head)
    if version not in (2, 3):
        return f"qcow2 version {version} is not supported (2 or 3)."
    if backing:
        return "The image names a backing file: give a standalone image (qemu-img convert)."
    if version == 3 and _INCOMPATIBLE.unpack_from(head, 72)[0] & _EXTERNAL_DATA_FILE:
        return "The image names an external data file: give a standalone image."
    if crypt:
        return "The image is encrypted: give an unencrypted image."
    if size > capacity:
        return (f"The image's virtual size ({size} bytes) is more than the volume's "
                f"capacity ({capacity} bytes).")
    return None
