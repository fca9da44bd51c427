"""The processes of a dev cluster: started detached, recorded, and stopped by PID.

A `ProcessRecord` is what the state file keeps of one process: its role (`zookeeper`,
`node/hv1`, `api`), PID and kernel start time (from /proc), so that `herdctl dev down`,
run by another process long after `dev up` exited, signals only the very process it
started and never a stranger that reused the PID. Every process runs in a session of its
own (a Ctrl-C in the terminal does not reach it), with stdin from /dev/null and output to
a log file (a caller capturing herdctl's output never waits on a daemon's pipe).
Stopping sends SIGTERM to the process group, waits for the exit through a pidfd (an event,
no polling), then SIGKILL. `interrupts_deferred` holds a Ctrl-C back while a process is
started and recorded, so an interrupted `dev up` never has a child it does not know of.
Called by `ctl.dev.cluster`. Linux only (/proc, pidfd).
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any


@dataclass(frozen=True)
class ProcessRecord:
    """One started process as the state file records it."""

    role: str
    pid: int
    start: int  # clock ticks after boot (/proc/<pid>/stat field 22): tells PID reuse apart
    log: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"role": self.role, "pid": self.pid, "start": self.start, "log": self.log}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ProcessRecord:
        return cls(str(doc["role"]), int(doc["pid"]), int(doc["start"]), str(doc.get("log", "")))


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name, or None when gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def start_time(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[19]) if fields is not None else None


def alive(record: ProcessRecord) -> bool:
    """The recorded process still runs (not a zombie, and not another process now)."""
    fields = _stat(record.pid)
    return fields is not None and fields[0] != "Z" and int(fields[19]) == record.start


def spawn(role: str, argv: Sequence[str], *, log: Path,
          env: Mapping[str, str] | None = None) -> tuple[subprocess.Popen[bytes], ProcessRecord]:
    """Start `argv` detached (own session), output appended to `log`."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                env=dict(env) if env is not None else None)
    started = start_time(proc.pid)
    return proc, ProcessRecord(role, proc.pid, started or 0, str(log))


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT) back until the block ends, then raise KeyboardInterrupt.

    A KeyboardInterrupt can surface anywhere, also inside `subprocess.Popen` after the
    fork and before the caller has the PID: that child would run on unrecorded, and no
    cleanup would stop it. Starting a process and recording it inside this block makes
    the two one step as far as Ctrl-C goes. The handler only notes the signal; it is
    installed in the main thread only (elsewhere Python delivers no SIGINT anyway), and
    not where SIGINT is ignored."""
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGINT) in (signal.SIG_IGN, None):
        yield
        return
    caught: list[FrameType | None] = []

    def note(_signum: int, frame: FrameType | None) -> None:
        caught.append(frame)

    previous = signal.signal(signal.SIGINT, note)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:  # now what Ctrl-C would have done: KeyboardInterrupt, or the default death
        if callable(previous):
            previous(signal.SIGINT, caught[0])
        else:
            signal.raise_signal(signal.SIGINT)


def record_of(role: str, proc: subprocess.Popen[bytes], *, log: Path) -> ProcessRecord:
    """The record of a process started elsewhere (the ZooKeeper launcher's)."""
    return ProcessRecord(role, proc.pid, start_time(proc.pid) or 0, str(log))


def _wait_exit(record: ProcessRecord, timeout: float) -> bool:
    """True once the process has exited (or is a zombie), False after `timeout`."""
    if not alive(record):
        return True
    try:
        fd = os.pidfd_open(record.pid)
    except ProcessLookupError:
        return True
    try:
        if not alive(record):  # exited, or the PID was reused, between the checks
            return True
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(timeout * 1000))  # readable once the process exits
    finally:
        os.close(fd)


def wait_pid(pid: int, *, timeout: float) -> bool:
    """Wait (on a pidfd) until `pid` exits; True once gone or a zombie (a process that is
    not our child may never be reaped here), False if it still runs after `timeout`."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(int(timeout * 1000)))
    finally:
        os.close(fd)


def _signal_group(record: ProcessRecord, sig: int) -> None:
    """Signal the process's group (it leads a session: pgid == pid), then the process."""
    if not alive(record):
        return
    try:
        os.killpg(record.pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(record.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def stop(record: ProcessRecord, *, grace: float = 10.0) -> str:
    """Stop one recorded process: SIGCONT+SIGTERM, wait `grace`, then SIGKILL. Says how."""
    if not alive(record):
        return "not running"
    _signal_group(record, signal.SIGCONT)  # a stopped (SIGSTOP) process cannot act on TERM
    _signal_group(record, signal.SIGTERM)
    if _wait_exit(record, grace):
        return "stopped"
    _signal_group(record, signal.SIGKILL)
    if _wait_exit(record, 10.0):
        return "killed"
    return "still running"


PROGRAMS = (b"herd-node", b"herd-api")  # the dev cluster's programs (argv[0] or the script)
MAIN = b"org.apache.zookeeper.server.quorum.QuorumPeerMain"


def strays(directory: Path, *, known: set[int]) -> list[ProcessRecord]:
    """herd-node, herd-api or ZooKeeper processes not in `known` whose command line names
    `directory`: every process of a dev cluster has its directory in its arguments, so
    this finds one that a `dev up` killed between starting it and recording it (and
    nothing else of the user's, such as a `tail -f` of a log there)."""
    needle = str(directory).encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in known or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        started = start_time(int(entry))
        ours = any(arg.rsplit(b"/", 1)[-1] in PROGRAMS for arg in argv[:2]) or MAIN in argv
        if started is not None and ours and any(needle in arg for arg in argv):
            found.append(ProcessRecord("stray", int(entry), started))
    return [r for r in found if alive(r)]


def reap(proc: subprocess.Popen[bytes] | None) -> None:
    """Collect the exit status of a child this process started (no zombie left)."""
    if proc is not None:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
