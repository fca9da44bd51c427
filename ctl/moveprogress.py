"""The progress of `herdctl vm migrate|move|unmigrate --wait` (issue #15): while the API's
wait runs, a thread follows the VM through `GET /watch` and shows what its live migration
copied (the disks of its local volumes, then the memory: `status.migration` diskCopied,
diskTotal, memoryCopied, memoryTotal, sampled by the source node) as bytes and rate, on
stderr (one line redrawn on a terminal, a line per change elsewhere). `progress_line` is
the pure part (tests/unit/test_ctl_moveprogress.py). Used by `ctl.cmd_vm`.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from ctl.client import Client

MIB = 1 << 20


def progress_line(migration: Mapping[str, Any], *, rate: float | None) -> str | None:
    """`copied 96/256 MiB (37%) disk 64/224, memory 32/32 · 85 MiB/s`, or None when the
    migration shows no figures (yet)."""
    disk = int(migration.get("diskCopied", 0)), int(migration.get("diskTotal", 0))
    memory = int(migration.get("memoryCopied", 0)), int(migration.get("memoryTotal", 0))
    total = disk[1] + memory[1]
    if total <= 0:
        return None
    done = min(disk[0] + memory[0], total)
    parts = [f"copied {done / MIB:.0f}/{total / MIB:.0f} MiB ({100 * done // total}%)"]
    if disk[1]:
        parts.append(f"disk {disk[0] / MIB:.0f}/{disk[1] / MIB:.0f}, "
                     f"memory {memory[0] / MIB:.0f}/{memory[1] / MIB:.0f}")
    line = " ".join(parts)
    return f"{line} · {rate / MIB:.0f} MiB/s" if rate is not None else line


class MoveProgress:
    """Shows a VM's migration progress while the `with` block runs (see the module doc)."""

    def __init__(self, client: Client, name: str, *, timeout: float,
                 out: Callable[[str], None] | None = None) -> None:
        self.name = name
        self.tty = sys.stderr.isatty()
        self.out = out or self._write
        self._done = threading.Event()
        self._drawn = False
        self._first: tuple[float, int] | None = None  # (when, bytes) of the first figures
        # Opened here, before the request: no change is missed.
        self._events = client.watch(timeout=timeout, kind="VM", name=name)
        self._thread = threading.Thread(target=self._follow, daemon=True,
                                        name=f"progress-{name}")

    def __enter__(self) -> MoveProgress:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._done.set()
        if self._drawn and self.tty:
            sys.stderr.write("\n")

    def _follow(self) -> None:
        try:
            for event in self._events:
                if self._done.is_set():
                    return
                status = (event.get("object") or {}).get("status") or {}
                self._show(status.get("migration") or {})
        except Exception:  # the progress is a courtesy: the command's answer is what counts
            return

    def _show(self, migration: Mapping[str, Any]) -> None:
        copied = int(migration.get("diskCopied", 0)) + int(migration.get("memoryCopied", 0))
        now = time.monotonic()
        if self._first is None and migration.get("diskTotal", 0):
            self._first = (now, copied)
        rate = None
        if self._first is not None and now > self._first[0] and copied > self._first[1]:
            rate = (copied - self._first[1]) / (now - self._first[0])
        line = progress_line(migration, rate=rate)
        if line is not None and not self._done.is_set():
            self.out(f"vm/{self.name}: {line}")
            self._drawn = True

    def _write(self, line: str) -> None:
        sys.stderr.write(f"\r{line}\x1b[K" if self.tty else f"{line}\n")
        sys.stderr.flush()
