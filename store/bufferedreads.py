"""Buffered reads for kazoo's connection: ZooKeeper's replies and watch events are
received up to 64 KiB at a time instead of one poll and recv for each message's length,
then again for its body (each a GIL hand-off).

Installed by `store.client.Store` on its kazoo client; like the other modules here that
patch kazoo (`store.pollhandler`, `store.addwatch`), it can go when kazoo changes.
"""

from __future__ import annotations

from typing import Any

from kazoo.client import KazooClient
from kazoo.protocol.connection import ConnectionDropped
from kazoo.protocol.serialization import int_struct


class BufferedReads:
    """Buffered reads for kazoo's connection (one client; plain sockets only).

    kazoo's reader (`ConnectionHandler._read`) polls, then receives exactly the bytes it
    asks for: a message costs two polls and two recvs, plus the connection loop's own poll.
    This reader receives up to `CHUNK` bytes whenever its buffer runs short (polling only
    when the non-blocking socket has nothing yet) and serves the length and the body from
    the buffer. The connection loop would then poll the socket although complete messages
    wait in the buffer, so the handler's `select` answers "readable" at once while one does
    (at most one receive's worth of messages, then the loop polls again and sends what is
    queued: requests are not starved). The buffer belongs to one socket: a reconnect
    starts a new one.
    """

    CHUNK = 65536

    def __init__(self, client: KazooClient) -> None:
        self.conn = client._connection
        self.select = client.handler.select
        self._sock: Any = None
        self._buf = bytearray()
        self._pos = 0

    @classmethod
    def install(cls, client: KazooClient) -> None:
        if client.use_ssl:  # SSL has its own buffering (`pending`); kazoo handles it
            return
        reader = cls(client)
        client._connection._read = reader.read
        client.handler.select = reader.select_buffered

    def ready(self) -> bool:
        """A whole message waits in the buffer (of the current socket)."""
        left = len(self._buf) - self._pos
        if left < 4 or self._sock is not self.conn._socket:
            return False
        return bool(left - 4 >= int_struct.unpack_from(self._buf, self._pos)[0])

    def select_buffered(self, rlist: list[Any], wlist: list[Any], xlist: list[Any],
                        timeout: float | None = None) -> tuple[list[Any], list[Any], list[Any]]:
        sock = self.conn._socket
        if rlist and self.ready() and any(r is sock for r in rlist):
            return [sock], [], []
        return self.select(rlist, wlist, xlist, timeout)  # type: ignore[no-any-return]

    def read(self, length: int, timeout: float) -> bytes:
        """`length` bytes from the buffer, receiving more as needed (kazoo's contract)."""
        sock = self.conn._socket
        if sock is not self._sock:
            self._sock, self._buf, self._pos = sock, bytearray(), 0
        while len(self._buf) - self._pos < length:
            self._fill(sock, length - (len(self._buf) - self._pos), timeout)
        start = self._pos
        self._pos += length
        with memoryview(self._buf) as view:  # released before the buffer next resizes
            return bytes(view[start:self._pos])

    def _fill(self, sock: Any, wanted: int, timeout: float) -> None:
        with self.conn._socket_error_handling():
            try:
                chunk = sock.recv(max(wanted, self.CHUNK))
            except BlockingIOError:
                if not self.select([sock], [], [], timeout)[0]:
                    raise self.conn.handler.timeout_exception(
                        "socket time-out during read") from None
                return
        if not chunk:
            raise ConnectionDropped("socket connection broken")
        if self._pos:
            del self._buf[:self._pos]
            self._pos = 0
        self._buf += chunk
