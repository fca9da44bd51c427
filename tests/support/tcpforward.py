"""A TCP forwarder a test controls, to cut one client's connection to a server while
everything else keeps its own: `Forwarder(target)` listens on 127.0.0.1 (a free port) and
copies bytes both ways; `cut()` closes every connection and, until `restore()`, closes
each new one at once (recording when it came: `attempts`), as a pulled cable looks to a
client that retries. Threads. Used by tests/integration/test_store_reconnect.py (how
often a client knocks) and tests/e2e/test_qemu_selffence.py (a node cut from ZooKeeper).
"""

from __future__ import annotations

import socket
import threading
import time


class Forwarder:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.serving = threading.Event()
        self.serving.set()
        self.attempts: list[float] = []  # monotonic times of the connections that came
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._spawn(self._accept)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def cut(self) -> None:
        self.serving.clear()
        with self._lock:
            conns, self._open = self._open, []
        for conn in conns:
            _close(conn)

    def restore(self) -> None:
        self.serving.set()

    def close(self) -> None:
        self.cut()
        _close(self.listener)
        for thread in self._threads:
            thread.join(timeout=5)

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # closed
            self.attempts.append(time.monotonic())
            if not self.serving.is_set():
                conn.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                conn.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open += [conn, upstream]
            self._spawn(_pump, conn, upstream)
            self._spawn(_pump, upstream, conn)


def _close(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    _close(dst)
