"""Copy a volume from another node's libvirtd into this node's pool of the same name.

A VM whose volumes live on a local pool of another node and that is to start here (moved
while off, or by shutdown: issue #15) has them copied first, the way a kubelet pulls an
image before it starts a container: `pull` opens the volume on the libvirtd of the node
that holds it (the URI that node publishes, `migrationUri`), makes a fresh volume of the
same name, capacity and format here (a partial copy of an earlier attempt is replaced),
and streams the image file across (virStorageVolDownload there, virStorageVolUpload here)
one chunk at a time — one chunk in memory, whatever the size — as a sparse stream: a
hole of the image (most of a fresh raw volume) goes as its length, not as zeros. A failed
copy deletes its partial volume. `Progress` counts the bytes (holes included) for the
caller's status.

Blocking: runs in a worker thread of `reconciler.vm.fetch`; every libvirt failure comes
out as `HypervisorError`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import libvirt

from reconciler.libvirt.connection import Connection, libvirt_call
from reconciler.libvirt.interface import HypervisorError
from reconciler.libvirt.volumes import delete, volume_xml

CHUNK = 256 * 1024  # bytes per virStreamRecv / virStreamSend (libvirt's packet size)
_IN_HOLE = -3  # virStreamRecvFlags(VIR_STREAM_RECV_STOP_AT_HOLE): the stream is at a hole


@dataclass
class Progress:
    """Bytes copied so far of the image files being copied (written by the copying
    thread, read by the loop: plain ints, each write atomic)."""

    done: int = 0
    total: int = 0
    cancelled: threading.Event = field(default_factory=threading.Event)


class Cancelled(Exception):
    """The daemon stops: the copy was abandoned (its partial volume deleted)."""


def pull(local: Connection, remote_uri: str, pool: str, name: str, *, fmt: str,
         progress: Progress) -> None:
    """Copy volume `pool/name` from the libvirtd at `remote_uri` into this node's pool."""
    with libvirt_call(f"cannot reach libvirt at {remote_uri}"):
        remote = libvirt.open(remote_uri)
    try:
        with libvirt_call(f"cannot read volume {pool}/{name} on {remote_uri}"):
            source = remote.storagePoolLookupByName(pool).storageVolLookupByName(name)
            _kind, capacity, physical = source.infoFlags(libvirt.VIR_STORAGE_VOL_GET_PHYSICAL)
        progress.total += int(physical)
        target = _fresh(local, pool, name, size=int(capacity), fmt=fmt)
        try:
            _pump(remote, source, local.get(), target, length=int(physical),
                  progress=progress)
        except BaseException:
            _delete(target)
            raise
    finally:
        _close(remote)


def _fresh(local: Connection, pool: str, name: str, *, size: int, fmt: str) -> Any:
    """An empty volume `pool/name` here (what an earlier attempt left is deleted)."""
    delete(local, pool, name)
    with libvirt_call(f"cannot make volume {pool}/{name} on {local.uri}"):
        lv_pool = local.get().storagePoolLookupByName(pool)
        return lv_pool.createXML(volume_xml(name, size=size, fmt=fmt), 0)


def _pump(remote: Any, source: Any, local: Any, target: Any, *, length: int,
          progress: Progress) -> None:
    """Stream `length` bytes of the image file from `source` into `target`."""
    inbound, outbound = remote.newStream(0), local.newStream(0)
    done = 0
    try:
        with libvirt_call("cannot copy the volume's data"):
            source.download(inbound, 0, length, libvirt.VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM)
            target.upload(outbound, 0, length, libvirt.VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM)
            while done < length:
                if progress.cancelled.is_set():
                    raise Cancelled(f"the copy was abandoned after {done} bytes")
                moved = _step(inbound, outbound, want=min(CHUNK, length - done))
                if not moved:
                    break
                done += moved
                progress.done += moved
            inbound.finish()
            outbound.finish()
    except BaseException:
        _abort(inbound)
        _abort(outbound)
        raise


def _step(inbound: Any, outbound: Any, *, want: int) -> int:
    """Move the next piece: data, or a hole (sent as a hole: a sparse image stays
    sparse); the bytes of the image it covers (0: the end)."""
    got = inbound.recvFlags(want, libvirt.VIR_STREAM_RECV_STOP_AT_HOLE)
    if got == _IN_HOLE:
        hole = int(inbound.recvHole(0))
        outbound.sendHole(hole, 0)
        return hole
    if not isinstance(got, bytes):
        raise HypervisorError(f"unexpected answer of the stream: {got!r}")
    _send(outbound, got)
    return len(got)


def _send(stream: Any, data: bytes) -> None:
    while data:
        data = data[stream.send(data):]


def _abort(stream: Any) -> None:
    try:
        stream.abort()
    except libvirt.libvirtError:
        pass


def _delete(volume: Any) -> None:
    try:
        volume.delete(0)
    except libvirt.libvirtError:
        pass  # the next attempt replaces it


def _close(conn: Any) -> None:
    try:
        conn.close()
    except libvirt.libvirtError:
        pass
