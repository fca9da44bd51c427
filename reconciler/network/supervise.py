"""One dnsmasq run as a supervised child: started, watched, restarted, stopped.

`Supervised` runs one command (a dnsmasq of `reconciler.network.gateway.Gateway`: the main
instance, or the router advertisement instance of a network with `ipv6`). It is ready when
dnsmasq logs "started" (its sockets are bound by then). One that dies after that is
restarted after a capped exponential backoff (reset by a long run); one that exits at start
with a configuration, network (address in use) or file error is a permanent failure:
reported once (`report(reason)`), state FAILED, no retry until the next `start()`. A failed
lease-init (the daemon could not read the leases) is retried with the backoff, its reason
reported once. `stop()`: SIGTERM, SIGKILL after `grace`.

`stale_pid` and `end_stranger` find and end a dnsmasq an earlier herd-node left running (by
its pid file; recognised by its command line naming that pid file).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

log = logging.getLogger(__name__)

READY_LINE = "started, version"
PERMANENT_EXITS = frozenset({1, 2, 3, 4, 5})  # dnsmasq: config, network, file, memory, misc


class State(StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"  # dnsmasq died; restarting after a delay
    FAILED = "failed"  # a permanent start failure: waits for start()


SEVERITY = {State.RUNNING: 0, State.STARTING: 1, State.BACKOFF: 2, State.FAILED: 3,
            State.STOPPED: 4}  # a gateway is as well as its worst process


@dataclass(frozen=True)
class Backoff:
    """Delays between restarts of a dnsmasq that died: initial, doubled up to cap; a run of
    `stable` seconds or more starts again from initial."""

    initial: float = 0.5
    cap: float = 30.0
    stable: float = 60.0


@dataclass(frozen=True)
class ProcessStatus:
    state: State
    pid: int | None = None
    restarts: int = 0
    reason: str | None = None


@dataclass(frozen=True)
class Timing:
    """How long a start may take (`ready`), and a stop before SIGKILL (`grace`)."""

    backoff: Backoff
    grace: float = 5.0
    ready: float = 15.0


class Supervised:
    """One supervised dnsmasq (see the module's docstring). `argv()` and `env()` (added to
    os.environ) are asked at each (re)start; `on_ready` runs each time it became ready;
    `report(reason)` once per reason (again only after it was ready meanwhile)."""

    def __init__(self, name: str, *, argv: Callable[[], Sequence[str]], network: str,
                 timing: Timing, report: Callable[[str], None],
                 env: Callable[[], Mapping[str, str]] | None = None,
                 on_ready: Callable[[], None] | None = None) -> None:
        self.name = name
        self._argv = argv
        self._network = network
        self._timing = timing
        self._report = report
        self._env = env
        self._on_ready = on_ready
        self._status = ProcessStatus(State.STOPPED)
        self._reported: str | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._settled = asyncio.Event()  # the current start attempt came to an outcome
        self._wake = asyncio.Event()  # stop() interrupts a backoff
        self._stopping = False

    @property
    def status(self) -> ProcessStatus:
        return self._status

    @property
    def active(self) -> bool:
        """Running, starting or waiting to restart (not stopped, not failed for good)."""
        return self._task is not None and not self._task.done()

    async def start(self) -> ProcessStatus:
        """Start it; returns once it is ready or has failed (or waits to retry)."""
        if self.active:
            return self._status
        self._stopping = False
        self._wake.clear()
        self._settled.clear()
        self._task = asyncio.create_task(self._supervise(),
                                         name=f"{self.name}-{self._network}")
        await self._settled.wait()
        return self._status

    async def stop(self) -> None:
        """SIGTERM, SIGKILL after the grace time; returns once it has exited."""
        task, self._task = self._task, None
        if task is not None:
            self._stopping = True
            self._wake.set()
            self.signal(signal.SIGTERM)
            done, _ = await asyncio.wait({task}, timeout=self._timing.grace)
            if not done:
                log.warning("network %s: %s ignored SIGTERM; SIGKILL", self._network, self.name)
                self.signal(signal.SIGKILL)
            await task
        self._status = ProcessStatus(State.STOPPED, restarts=self._status.restarts)

    def signal(self, sig: int) -> None:
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)

    def _fail(self, reason: str, *, state: State = State.FAILED) -> None:
        self._status = ProcessStatus(state, restarts=self._status.restarts, reason=reason)
        self._settled.set()
        if reason != self._reported:
            self._reported = reason
            self._report(reason)

    async def _supervise(self) -> None:
        backoff = self._timing.backoff
        delay = backoff.initial
        loop = asyncio.get_running_loop()
        try:
            while not self._stopping:
                began = loop.time()
                ready, reason, permanent = await self._run_once()
                if self._stopping:
                    break
                if permanent:
                    self._fail(reason)
                    return
                if ready and loop.time() - began >= backoff.stable:
                    delay = backoff.initial
                self._fail(f"{reason}; restart in {delay:g} s" if ready else reason,
                           state=State.BACKOFF)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                delay = min(delay * 2, backoff.cap)
                self._status = ProcessStatus(State.BACKOFF, restarts=self._status.restarts + 1,
                                             reason=self._status.reason)
        except Exception as e:  # a bug here must not leave dnsmasq unsupervised silently
            log.exception("network %s: %s supervisor failed", self._network, self.name)
            self._fail(f"{self.name} supervisor failed: {e}")
        finally:
            self._settled.set()

    async def _run_once(self) -> tuple[bool, str, bool]:
        """One life of dnsmasq: (became ready, why it ended, a permanent start failure)."""
        env = {**os.environ, **(self._env() if self._env is not None else {})}
        proc = await asyncio.create_subprocess_exec(
            *self._argv(), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, env=env, start_new_session=True)
        self._proc = proc
        self._status = ProcessStatus(State.STARTING, pid=proc.pid,
                                     restarts=self._status.restarts, reason=self._status.reason)
        tail: collections.deque[str] = collections.deque(maxlen=4)
        ready = asyncio.Event()
        assert proc.stderr is not None
        reader = asyncio.create_task(self._read_log(proc.stderr, tail=tail, ready=ready))
        try:
            if self._stopping:
                proc.terminate()
            if await self._until_ready(proc, ready):
                self._ready(proc)
            rc = await proc.wait()
        finally:
            self._proc = None
            if proc.returncode is None:  # cancelled: never leave dnsmasq behind
                proc.kill()
                await proc.wait()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(reader), 1.0)
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        said = f": {tail[-1]}" if tail else ""
        if not ready.is_set():
            return False, f"{self.name} exited with {rc} at start{said}", rc in PERMANENT_EXITS
        return True, f"{self.name} exited with {rc}{said}", False

    async def _until_ready(self, proc: asyncio.subprocess.Process, ready: asyncio.Event) -> bool:
        waits = {asyncio.ensure_future(ready.wait()), asyncio.ensure_future(proc.wait())}
        try:
            await asyncio.wait(waits, timeout=self._timing.ready,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
        if not ready.is_set() and proc.returncode is None:
            log.error("network %s: %s not ready after %g s; killing it",
                      self._network, self.name, self._timing.ready)
            proc.kill()
        return ready.is_set()

    def _ready(self, proc: asyncio.subprocess.Process) -> None:
        self._status = ProcessStatus(State.RUNNING, pid=proc.pid, restarts=self._status.restarts)
        self._reported = None
        self._settled.set()
        log.info("network %s: %s %d serving", self._network, self.name, proc.pid)
        if self._on_ready is not None:
            self._on_ready()

    async def _read_log(self, stream: asyncio.StreamReader, *, tail: collections.deque[str],
                        ready: asyncio.Event) -> None:
        async for raw in stream:
            line = raw.decode(errors="replace").rstrip()
            if not line:
                continue
            tail.append(line)
            log.info("network %s: %s", self._network, line)
            if READY_LINE in line:
                ready.set()


def stale_pid(pid_file: str) -> int | None:
    """The PID of a dnsmasq an earlier herd-node left running with this pid file, if any."""
    try:
        with open(pid_file) as f:
            pid = int(f.read().strip() or 0)
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().split(b"\0")
    except (OSError, ValueError):
        return None
    mine = f"--pid-file={pid_file}".encode()
    return pid if pid > 0 and mine in cmdline else None


async def end_stranger(pid: int, *, grace: float) -> None:
    """SIGTERM a process that is not our child, wait for its end (pidfd), then SIGKILL."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    gone = loop.create_future()

    def exited() -> None:
        if not gone.done():
            gone.set_result(None)

    loop.add_reader(fd, exited)
    try:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(fd, sig)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(gone), grace)
                return
    finally:
        loop.remove_reader(fd)
        os.close(fd)
