"""A history of where guests ran, taken from every host's libvirtd directly (not from Herd).

Run as a process of its own (`python -m tests.support.hostwatch --out F hv1=URI ...`; the
test process may have bound libvirt's one event implementation elsewhere), it opens every
host's libvirtd, subscribes to lifecycle events, and samples the active domains of every
host every `--interval` seconds. It writes JSON lines to `--out`:

- `{"t", "kind": "event", "node", "vm", "event", "detail"}`: a lifecycle event
  (`started`/`booted`, `suspended`/`migrated`, `stopped`/`destroyed`, ...);
- `{"t", "kind": "sample", "node", "domains": {vm: [state, id]}}`: the active domains of
  a host when they differ from its previous sample; `{"t", "kind": "round", "began",
  "order"}` closes a sampling round (so gaps can be told from "nothing changed"; `order`
  is the order in which its hosts were asked);
- `{"t", "kind": "unreachable", "node", "error"}` while a host's libvirtd does not answer
  (a fenced host); it reconnects when it answers again.

SIGTERM ends it; `HostwatchProcess` runs it from a test (start, `sync`, stop). The
functions below read such a file (`load`) and check it:
`double_runs` (a guest running, not paused, on two hosts at once), `restarts` (a guest
booted again, or stopped other than by migration), `absences` (a sampling round in which
a guest was active on no host). Used by the real-QEMU e2e tests, the fault suite and bench/.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EVENTS = ("defined", "undefined", "started", "suspended", "resumed", "stopped", "shutdown",
          "pmsuspended", "crashed")
DETAILS = {
    "started": ("booted", "migrated", "restored", "from_snapshot", "wakeup"),
    "suspended": ("paused", "migrated", "ioerror", "watchdog", "restored", "from_snapshot",
                  "api_error", "postcopy", "postcopy_failed"),
    "resumed": ("unpaused", "migrated", "from_snapshot", "postcopy", "postcopy_failed"),
    "stopped": ("shutdown", "destroyed", "crashed", "migrated", "saved", "failed",
                "from_snapshot"),
}
STATES = ("nostate", "running", "blocked", "paused", "shutdown", "shutoff", "crashed",
          "pmsuspended")


# --- the recorder (its own process) ----------------------------------------------------------

class Recorder:
    def __init__(self, out: Path, hosts: dict[str, str], *, interval: float) -> None:
        self.out = open(out, "a", buffering=1)  # noqa: SIM115 - lives as long as the process
        self.hosts = hosts
        self.interval = interval
        self.lock = threading.Lock()
        self.conns: dict[str, Any] = {}
        self.last: dict[str, dict[str, list[Any]] | None] = {}
        self.stopping = threading.Event()

    def write(self, doc: dict[str, Any]) -> None:
        with self.lock:
            self.out.write(json.dumps({"t": time.time(), **doc}) + "\n")

    def on_event(self, _conn: Any, dom: Any, event: int, detail: int, node: str) -> None:
        name = EVENTS[event] if event < len(EVENTS) else str(event)
        details = DETAILS.get(name, ())
        self.write({"kind": "event", "node": node, "vm": dom.name(), "event": name,
                    "detail": details[detail] if detail < len(details) else str(detail)})

    def connect(self, node: str) -> Any:
        import libvirt

        conn = libvirt.open(self.hosts[node])
        conn.setKeepAlive(2, 3)
        conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                    self.on_event, node)
        self.conns[node] = conn
        return conn

    def sample(self, node: str) -> None:
        import libvirt

        try:
            conn = self.conns.get(node) or self.connect(node)
            doms = conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)
            seen = dict(filter(None, (_describe(d) for d in doms)))
        except libvirt.libvirtError as e:
            dead = self.conns.pop(node, None)
            if dead is not None:  # or its events would come twice after a reconnect
                with contextlib.suppress(libvirt.libvirtError):
                    dead.close()
            if self.last.get(node, {}) is not None:
                self.write({"kind": "unreachable", "node": node, "error": str(e)})
            print(f"hostwatch: {node}: {e}", file=sys.stderr, flush=True)
            self.last[node] = None
            return
        if seen != self.last.get(node):
            self.write({"kind": "sample", "node": node, "domains": seen})
            self.last[node] = seen

    def run(self) -> None:
        while not self.stopping.is_set():
            began = time.time()
            for node in self.hosts:
                self.sample(node)
            self.write({"kind": "round", "began": began, "order": list(self.hosts)})
            self.stopping.wait(self.interval)


def _describe(dom: Any) -> tuple[str, list[Any]] | None:
    """(name, [state, id]) of a listed domain; None if it went away since the listing."""
    import libvirt

    try:
        return dom.name(), [STATES[dom.state()[0]], dom.ID()]
    except libvirt.libvirtError as e:
        if e.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return None
        raise


def _event_loop() -> None:
    import libvirt

    while True:
        libvirt.virEventRunDefaultImpl()


def main(argv: Sequence[str] | None = None) -> None:
    import libvirt

    parser = argparse.ArgumentParser(prog="python -m tests.support.hostwatch")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("hosts", nargs="+", help="NODE=URI")
    args = parser.parse_args(argv)
    libvirt.registerErrorHandler(lambda _c, _e: None, None)
    libvirt.virEventRegisterDefaultImpl()
    threading.Thread(target=_event_loop, daemon=True).start()
    recorder = Recorder(args.out, dict(h.split("=", 1) for h in args.hosts),
                        interval=args.interval)
    signal.signal(signal.SIGTERM, lambda *_: recorder.stopping.set())
    for node in recorder.hosts:
        recorder.sample(node)
    recorder.write({"kind": "ready"})
    recorder.run()


# --- reading and checking a history ---------------------------------------------------------

@dataclass(frozen=True)
class Interval:
    vm: str
    node: str
    start: float
    end: float


def load(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line) for line in lines if line.strip()]


def running_from_events(history: Iterable[dict[str, Any]], *,
                        end: float) -> list[Interval]:
    """Intervals in which a guest ran unpaused on a host, by its lifecycle events: from a
    boot or a resume to a suspend or a stop (an incoming migration starts paused), or to
    the moment the recorder found the host's libvirtd gone (a power-off kills the guests
    first, so they were dead by then)."""
    open_: dict[tuple[str, str], float] = {}
    out: list[Interval] = []
    for e in (e for e in history if e["kind"] in ("event", "unreachable")):
        if e["kind"] == "unreachable":  # powered off: its guests died before its libvirtd
            for key in [k for k in open_ if k[1] == e["node"]]:
                out.append(Interval(key[0], key[1], open_.pop(key), e["t"]))
            continue
        key = (e["vm"], e["node"])
        runs = (e["event"] == "started" and e["detail"] != "migrated") or e["event"] == "resumed"
        if runs:
            open_.setdefault(key, e["t"])
        elif e["event"] in ("suspended", "stopped", "crashed") and key in open_:
            out.append(Interval(key[0], key[1], open_.pop(key), e["t"]))
    out += [Interval(vm, node, t, end) for (vm, node), t in open_.items()]
    return out


def running_from_samples(history: Iterable[dict[str, Any]]) -> list[Interval]:
    """Intervals from the first to the LAST sample that saw a guest running on a host (the
    last, not the first that did not: samples of two hosts are not taken at one instant,
    so this never reports an overlap that did not happen)."""
    seen: dict[tuple[str, str], list[float]] = {}
    out: list[Interval] = []
    for e in history:
        if e["kind"] not in ("sample", "unreachable"):
            continue
        running = {vm for vm, (state, _id) in (e.get("domains") or {}).items()
                   if state == "running"}
        for key in [k for k in seen if k[1] == e["node"] and k[0] not in running]:
            first, last = seen.pop(key)
            out.append(Interval(key[0], key[1], first, last))
        for vm in running:
            seen.setdefault((vm, e["node"]), [e["t"], e["t"]])[1] = e["t"]
    out += [Interval(vm, node, first, last) for (vm, node), (first, last) in seen.items()]
    return out


def double_runs(intervals: list[Interval]) -> list[tuple[Interval, Interval]]:
    """Pairs of intervals of one guest on two hosts that overlap in time."""
    by_vm: dict[str, list[Interval]] = {}
    for i in intervals:
        by_vm.setdefault(i.vm, []).append(i)
    return [(a, b) for runs in by_vm.values() for n, a in enumerate(runs) for b in runs[n + 1:]
            if a.node != b.node and a.start < b.end and b.start < a.end]


def restarts(history: Iterable[dict[str, Any]], vm: str) -> list[dict[str, Any]]:
    """Events that break one continuous run of `vm`: a boot after its first, a stop that
    is not the end of an outgoing migration, a crash."""
    events = [e for e in history if e["kind"] == "event" and e["vm"] == vm]
    boots = [e for e in events if e["event"] == "started" and e["detail"] != "migrated"]
    stops = [e for e in events if e["event"] in ("stopped", "crashed")
             and e.get("detail") != "migrated"]
    return boots[1:] + stops


def absences(history: Iterable[dict[str, Any]], vm: str, *, since: float,
             until: float) -> list[float]:
    """Times of the sampling rounds in [since, until] after which `vm` was active on no
    host (each host's latest sample counts until it changes). Rounds before the first
    sample that saw `vm` do not count: libvirtd answers no listing while it starts or
    stops a guest's QEMU (a host's sample can lag a second or two behind).

    A round asks its hosts one after the other, so it is no snapshot: a migration to a
    host asked EARLIER in the round than the source, finished between the two questions,
    leaves the guest in neither answer though it was never nowhere. Such a round alone
    (the guest present in the round before and on the target in the round after) proves
    no gap and is not counted; a move to a host asked later in the round, missed by both
    answers, is one, and so is every round of a longer absence."""
    events = list(history)
    current: dict[str, set[str]] = {}
    out: list[float] = []
    sighted_on: str | None = None
    was_nowhere = False
    for i, e in enumerate(events):
        if e["kind"] == "sample":
            current[e["node"]] = set(e["domains"])
            sighted_on = e["node"] if vm in e["domains"] else sighted_on
        elif e["kind"] == "unreachable":
            current[e["node"]] = set()
        elif e["kind"] == "round" and sighted_on is not None:
            nowhere = not any(vm in names for names in current.values())
            if nowhere and since <= e["t"] <= until and (was_nowhere or not _moved_back_in_order(
                    events[i + 1:], vm, source=sighted_on, order=e.get("order", []))):
                out.append(e["t"])
            was_nowhere = nowhere
    return out


def _moved_back_in_order(after: list[dict[str, Any]], vm: str, *, source: str,
                         order: list[str]) -> bool:
    """Whether the next round finds `vm` on a host asked before `source` in a round."""
    for e in after:
        if e["kind"] == "round":
            return False
        if e["kind"] == "sample" and vm in e["domains"]:
            return (e["node"] in order and source in order
                    and order.index(e["node"]) < order.index(source))
    return False


def where(history: Iterable[dict[str, Any]], vm: str) -> list[str]:
    """The hosts on which `vm` was active at the latest samples."""
    current: dict[str, set[str]] = {}
    for e in history:
        if e["kind"] == "sample":
            current[e["node"]] = set(e["domains"])
        elif e["kind"] == "unreachable":
            current[e["node"]] = set()
    return sorted(node for node, names in current.items() if vm in names)


# --- running it (for tests, the fault suite and bench/) -----------------------------------

class HostwatchProcess:
    """`python -m tests.support.hostwatch` on every host, writing to `out`."""

    def __init__(self, out: Path, hosts: Mapping[str, str], *, interval: float = 0.1) -> None:
        self.out = out
        self.argv = [sys.executable, "-m", "tests.support.hostwatch", "--out", str(out),
                     "--interval", str(interval), *(f"{n}={uri}" for n, uri in hosts.items())]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: float = 30.0) -> None:
        """Start it and wait until it took its first samples."""
        with open(self.out.with_suffix(".log"), "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)
        self._until(lambda e: e["kind"] == "ready", timeout=timeout, what="ready")

    def sync(self, *, timeout: float = 20.0) -> None:
        """Until it finished a sampling round that began after this call (its events up
        to now are in the file)."""
        mark = time.time()
        self._until(lambda e: e["kind"] == "round" and e.get("began", 0) > mark,
                    timeout=timeout, what="a sampling round")

    def _until(self, found: Callable[[dict[str, Any]], bool], *, timeout: float,
               what: str) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while not any(found(e) for e in load(self.out)[-200:]):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"hostwatch: no {what} (see {self.out.with_suffix('.log')})")
            time.sleep(0.05)  # a child's output file: nothing to wait on

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


if __name__ == "__main__":
    main()
