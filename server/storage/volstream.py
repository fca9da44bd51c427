"""The libvirt side of a volume's data (issue #15): open the volume on the libvirtd of the
node that holds it (the URI the node publishes, `migrationUri`) and pump its bytes through
a libvirt stream (virStorageVolUpload / virStorageVolDownload) in ONE worker thread of its
own, chunk by chunk from or to a `Pipe`, the bounded bridge to the event loop
(`server.storage.pipe`): at most `depth` chunks in memory whatever the volume's size.

Blocking, and the only module of the server that imports libvirt (setup.cfg, contract
`server-libvirt`): herd-api otherwise never speaks to a hypervisor. Every libvirt failure
comes out as `StreamError`. Called by `server.storage.volumedata`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import libvirt

from server.storage.pipe import Aborted, Pipe

SEND = 256 * 1024  # bytes per virStreamSend / virStreamRecv (libvirt's own packet size)
_quiet = threading.Lock()
_quieted: list[bool] = []


class StreamError(Exception):
    """libvirt refused or failed; `missing` when the volume is not there."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


def _ignore(_ctx: object, _err: object) -> None:
    """libvirt's default handler prints every error to stderr; ours are exceptions."""


def _message(err: libvirt.libvirtError) -> str:
    return str(err.get_error_message() or err)


@dataclass
class Volume:
    """One volume opened on its node: the connection, the volume and its sizes."""

    uri: str
    conn: Any
    vol: Any
    capacity: int
    physical: int  # the image file's size: what a download sends

    def close(self) -> None:
        try:
            self.conn.close()
        except libvirt.libvirtError:
            pass


def open_volume(uri: str, pool: str, name: str) -> Volume:
    """The volume `pool/name` on the libvirtd at `uri` (blocking: run it in a thread)."""
    with _quiet:
        if not _quieted:
            libvirt.registerErrorHandler(_ignore, None)
            _quieted.append(True)
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError as err:
        raise StreamError(f"cannot reach libvirt at {uri}: {_message(err)}") from None
    try:
        vol = conn.storagePoolLookupByName(pool).storageVolLookupByName(name)
        _kind, capacity, _alloc = vol.info()
        _kind, _cap, physical = vol.infoFlags(libvirt.VIR_STORAGE_VOL_GET_PHYSICAL)
    except libvirt.libvirtError as err:
        conn.close()
        missing = err.get_error_code() in (libvirt.VIR_ERR_NO_STORAGE_VOL,
                                           libvirt.VIR_ERR_NO_STORAGE_POOL)
        raise StreamError(f"volume {pool}/{name} on {uri}: {_message(err)}",
                          missing=missing) from None
    return Volume(uri, conn, vol, int(capacity), int(physical))


def upload(volume: Volume, pipe: Pipe, *, length: int) -> int:
    """Write `length` bytes taken from `pipe` into the volume; the bytes written. The
    stream is aborted (and `Aborted` or `StreamError` raised) unless all of them came."""
    stream = volume.conn.newStream(0)
    done = 0
    try:
        volume.vol.upload(stream, 0, length, 0)
        while (chunk := pipe.take()) is not None:
            for start in range(0, len(chunk), SEND):
                _send(stream, chunk[start:start + SEND])
            done += len(chunk)
        if done != length:
            raise Aborted(f"the body ended after {done} of {length} bytes")
        stream.finish()
        return done
    except libvirt.libvirtError as err:
        _abort(stream)
        raise StreamError(f"upload to {volume.uri} failed after {done} bytes: "
                          f"{_message(err)}") from None
    except BaseException:
        _abort(stream)
        raise


def _send(stream: Any, data: bytes) -> None:
    while data:
        data = data[stream.send(data):]


def download(volume: Volume, pipe: Pipe, *, chunk: int) -> int:
    """Read the whole image into `pipe` in chunks of about `chunk` bytes, then end it;
    the bytes read. Aborted when the loop side stops taking (`Aborted`)."""
    stream = volume.conn.newStream(0)
    done = 0
    try:
        volume.vol.download(stream, 0, 0, 0)
        while data := _recv(stream, chunk):
            pipe.give(data)
            done += len(data)
        stream.finish()
        pipe.give(None)
        return done
    except libvirt.libvirtError as err:
        _abort(stream)
        raise StreamError(f"download from {volume.uri} failed after {done} bytes: "
                          f"{_message(err)}") from None
    except BaseException:
        _abort(stream)
        raise


def _recv(stream: Any, want: int) -> bytes:
    """Up to `want` bytes (less only at the end of the stream)."""
    parts: list[bytes] = []
    got = 0
    while got < want:
        data = stream.recv(min(SEND, want - got))
        if not data:
            break
        parts.append(data)
        got += len(data)
    return b"".join(parts)


def _abort(stream: Any) -> None:
    try:
        stream.abort()
    except libvirt.libvirtError:
        pass


def run_in_thread(name: str, work: Callable[[], int], pipe: Pipe) -> threading.Thread:
    """Run `work` (an `upload` or `download` closure) in a thread of its own — not the
    loop's default executor, which a long transfer would hold — reporting its end (bytes,
    or the exception) to the pipe; the volume is closed by the caller after `pipe.ended`."""
    def target() -> None:
        try:
            pipe.finish(work(), None)
        except BaseException as e:  # handed to the loop side, which answers for it
            pipe.finish(None, e)

    thread = threading.Thread(target=target, name=f"volume-data {name}", daemon=True)
    thread.start()
    return thread
