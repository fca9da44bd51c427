"""The console logs of the VMs that ran on this node (issue #16).

virtlogd writes each guest's serial output to `<console_log_dir>/<vm>.log` from its start
(`reconciler.libvirt.consolexml`), rotating it to `<vm>.log.0` ... by its own size cap.
What a VM printed on the nodes it ran on before lives in `<vm>.history`, handed over by
the node it left (`hand_over`, after a live migration or a move). `tail` joins history,
rotated files and the current file, and keeps the last `limit` bytes (`console_log_bytes`).

Served by the node endpoint (`reconciler.endpoint.server`): GET /vm/{vm}/log (`lines`,
`follow`: new output as it is written, from inotify, never a poll) and PUT
/vm/{vm}/log/history (the previous node's hand-over).
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from aiohttp import web
from asyncinotify import Inotify, Mask

from reconciler.endpoint.errors import refusal

log = logging.getLogger(__name__)

ROTATED = 3  # virtlogd's max_backups default: <vm>.log.0 .. .2


class ConsoleLogs:
    """Reads, follows and hands over the console logs in one directory."""

    def __init__(self, directory: str, *, limit: int) -> None:
        self.dir = Path(directory)
        self.limit = limit

    def prepare(self) -> None:
        """The directory, so that virtlogd can create the files (QEMU fails to start a
        guest whose log directory is missing)."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            log.error("console logs: cannot make %s: %s (guests will not start)", self.dir, e)

    def current(self, vm: str) -> Path:
        return self.dir / f"{vm}.log"

    def _parts(self, vm: str) -> list[Path]:
        """Oldest first: the history, the rotated files, the current file."""
        rotated = [self.dir / f"{vm}.log.{i}" for i in reversed(range(ROTATED))]
        return [self.dir / f"{vm}.history", *rotated, self.current(vm)]

    def tail(self, vm: str) -> bytes:
        """The last `limit` bytes the VM printed (empty if it printed nothing here)."""
        out = b""
        for part in reversed(self._parts(vm)):
            need = self.limit - len(out)
            if need <= 0:
                break
            out = _last_bytes(part, need) + out
        return out

    def store_history(self, vm: str, data: bytes) -> None:
        """The previous node's log of `vm`, kept before what it prints here (atomically)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        target = self.dir / f"{vm}.history"
        temp = target.with_suffix(".history.tmp")
        temp.write_bytes(data[-self.limit:])
        os.replace(temp, target)

    def forget(self, vm: str) -> None:
        """Remove every file of `vm` here (handed over, or the VM removed)."""
        for part in self._parts(vm):
            part.unlink(missing_ok=True)

    async def get(self, request: web.Request) -> web.StreamResponse:
        vm = request.match_info["vm"]
        lines = _lines(request.query.get("lines"))
        data = await asyncio.to_thread(self.tail, vm)
        if lines is not None:
            data = b"".join(data.splitlines(keepends=True)[-lines:]) if lines else b""
        if request.query.get("follow") != "1":
            return web.Response(body=data, content_type="application/octet-stream")
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await resp.prepare(request)
        await resp.write(data)
        await self._follow(vm, resp)
        return resp

    async def _follow(self, vm: str, resp: web.StreamResponse) -> None:
        """Write what virtlogd appends to the current file until the client goes."""
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.current(vm)
        with Inotify() as inotify:
            inotify.add_watch(self.dir, Mask.MODIFY | Mask.CREATE | Mask.MOVED_TO)
            offset = path.stat().st_size if path.exists() else 0
            async for event in inotify:
                if event.name is None or event.name.name != path.name:
                    continue
                if event.mask & (Mask.CREATE | Mask.MOVED_TO):
                    offset = 0  # rotated: a new current file
                new, offset = await asyncio.to_thread(_read_from, path, offset)
                if new:
                    await resp.write(new)

    async def put_history(self, request: web.Request) -> web.Response:
        vm = request.match_info["vm"]
        data = await request.content.read(self.limit + 1)
        await asyncio.to_thread(self.store_history, vm, data)
        return web.json_response({"vm": vm, "bytes": len(data[-self.limit:])})


def _lines(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not raw.isdigit() or int(raw) > 1_000_000:
        raise refusal(400, "lines: must be a whole number up to 1000000")
    return int(raw)


def _last_bytes(path: Path, count: int) -> bytes:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - count))
            return f.read(count)
    except FileNotFoundError:
        return b""


def _read_from(path: Path, offset: int) -> tuple[bytes, int]:
    """What `path` holds past `offset`, and the new offset (0 again if it shrank)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() < offset:
                offset = 0
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return b"", 0
    return data, offset + len(data)
