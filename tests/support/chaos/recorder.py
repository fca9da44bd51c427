"""History recorders of the fault suite: where and when each VM ran, from sources that do
not trust Herd. A recorder is a `RunSource`: `runs()` gives the runs (tests/support/
history.py `Run`, each with what ended it) and `excerpt()` the raw records around a moment,
for the report. The checker sees only runs, so another source plugs in without touching it.

`EventLogRecorder` is the test-driver source: every `herd-node` appends its libvirt
lifecycle events to a file of its own (`--event-log`), and the harness knows when each
node process ended (its kills, graceful restarts and the fence agent's `fenced.log`). On
test-driver nodes the guests live in the daemon's libvirt connection (`test:///<file>`):
they vanish, without an event, whenever the process ends — a kill -9, the fence agent, and
also a SIGTERM: `herd-node` leaves its guests running on SIGTERM, but closing a test-driver
connection takes them with it. So every end of a node process is a host death here, and
the harness hands them all in as `deaths`. A process exit is recorded when the harness
reaped it (graceful stops) or when it sent SIGKILL; the fence log is written after the
kill took; and a daemon that stops gracefully writes `closed` to its event log right after
it closed its libvirt connection (a process can linger after that). Known limits: an
event is stamped when the daemon's loop logs it, so a paused daemon logs late, and a start
not yet logged when the process is killed is missed.

`HostwatchRecorder` is the real-QEMU source: it reads the history that
tests/support/hostwatch.py takes from every host's libvirtd (lifecycle events; a host
found unreachable was powered off). An incoming live migration starts paused, so a run
begins when a guest boots or resumes and ends when it stops, crashes or is suspended for
a migration. A power-off ends the host's runs when it took: the power switch's own record
(`deaths`: the fence agent's log, written once the guests are dead) when given, else when
hostwatch found the host unreachable, which can be a second later (a libvirt call on a
dead socket) — after the guest was already started elsewhere. There a daemon restart is
no host death, so the checker holds a restart to "no VM restarted by a daemon restart
alone". Used by tests/support/chaos/run.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from tests.support import history, hostwatch
from tests.support.history import Run


class RunSource(Protocol):
    """Where VMs ran, independently of Herd."""

    def runs(self) -> list[Run]: ...

    def excerpt(self, subject: str, at: float | None, *, origin: float = 0.0,
                window: float = 5.0, limit: int = 12) -> list[str]: ...


class EventLogRecorder:
    """Runs from the nodes' own event logs plus the harness's record of node deaths."""

    def __init__(self, logs: Callable[[], list[Path]],
                 deaths: Callable[[], dict[str, list[float]]]) -> None:
        self._logs = logs
        self._deaths = deaths

    def events(self) -> list[dict[str, object]]:
        return history.load(self._logs())

    def deaths(self) -> dict[str, list[float]]:
        """The harness's record, and when each daemon closed its libvirt connection (the
        `closed` line of its event log: its test-driver guests ended there, even if the
        process lingered)."""
        out = {node: list(times) for node, times in self._deaths().items()}
        for e in self.events():
            if e["event"] == "closed":
                out.setdefault(str(e["node"]), []).append(float(e["t"]))  # type: ignore[arg-type]
        return out

    def runs(self) -> list[Run]:
        return history.runs(self.events(), self.deaths())

    def excerpt(self, subject: str, at: float | None, *, origin: float = 0.0,
                window: float = 5.0, limit: int = 12) -> list[str]:
        """The events of `subject` (a VM or a node) and node deaths near `at` (all of
        the subject's when `at` is None), oldest first, as report lines with times in
        seconds after `origin`."""
        lines: list[tuple[float, str]] = []
        for e in self.events():
            t = float(e["t"])  # type: ignore[arg-type]
            if subject in (e["vm"], e["node"]) and _near(t, at, window=window):
                lines.append((t, f"{t - origin:8.2f}  {e['node']}: {e['vm']} {e['event']}"))
        for node, times in self._deaths().items():
            lines += [(t, f"{t - origin:8.2f}  {node}: host died (process ended)")
                      for t in times if _near(t, at, window=window)]
        lines.sort()
        return [text for _t, text in lines[-limit:]]


def _near(t: float, at: float | None, *, window: float) -> bool:
    return at is None or abs(t - at) <= window


class HostwatchRecorder:
    """Runs from a hostwatch history (real hypervisors): `read` gives its records, e.g.
    `lambda: hostwatch.load(path)` (`from_file`); `deaths`, when each host was powered
    off (node -> times), by the power switch's own record."""

    def __init__(self, read: Callable[[], list[dict[str, Any]]], *,
                 deaths: Callable[[], dict[str, list[float]]] | None = None) -> None:
        self._read = read
        self._power_offs = deaths or dict

    @classmethod
    def from_file(cls, path: Path, *,
                  deaths: Callable[[], dict[str, list[float]]] | None = None
                  ) -> HostwatchRecorder:
        return cls(lambda: hostwatch.load(path), deaths=deaths)

    def events(self) -> tuple[list[dict[str, object]], dict[str, list[float]]]:
        """History events in tests/support/history.py's terms, and the power-offs (the
        switch's and hostwatch's: a run ends at the first after its start)."""
        events: list[dict[str, object]] = []
        deaths = {node: list(times) for node, times in self._power_offs().items()}
        for e in self._read():
            if e["kind"] == "unreachable":
                deaths.setdefault(str(e["node"]), []).append(float(e["t"]))
                continue
            if e["kind"] != "event":
                continue
            what, migrated = str(e["event"]), e.get("detail") == "migrated"
            if what == "started" and migrated:
                continue  # arrives paused: it runs from its resume
            if what == "suspended":
                if not migrated:
                    continue  # paused in place: still there
                what = "stopped"  # the source hands over
            events.append({**e, "event": what})
        return events, deaths

    def runs(self) -> list[Run]:
        events, deaths = self.events()
        return history.runs(events, deaths)

    def excerpt(self, subject: str, at: float | None, *, origin: float = 0.0,
                window: float = 5.0, limit: int = 12) -> list[str]:
        """As EventLogRecorder's: the subject's events and the power-offs near `at`."""
        events, deaths = self.events()
        lines: list[tuple[float, str]] = []
        for e in events:
            t = float(e["t"])  # type: ignore[arg-type]
            if subject in (e["vm"], e["node"]) and _near(t, at, window=window):
                lines.append((t, f"{t - origin:8.2f}  {e['node']}: {e['vm']} {e['event']}"))
        for node, times in deaths.items():
            lines += [(t, f"{t - origin:8.2f}  {node}: host powered off")
                      for t in times if _near(t, at, window=window)]
        lines.sort()
        return [text for _t, text in lines[-limit:]]
