"""The records of a fault-suite run, shared by the workload, the injector, the recorder and
the checker: what a client asked and what it was told (`Op`), what the injector did
(`Fault`), what ZooKeeper holds at the end (`Snapshot`), and everything the checker gets
(`Evidence`). Pure data, no I/O. Used by every module of tests/support/chaos and by
tests/unit/test_chaos_checker.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from tests.support.history import Run

# How a client request ended: acknowledged (2xx), refused (4xx: nothing was written), or
# unknown (no answer, a timeout, 5xx, 503: it may or may not have been applied).
OK, REFUSED, UNKNOWN = "ok", "refused", "unknown"

# Verbs that change the VM's desired state, and the state they ask for.
STATE_OF_VERB = {"start": "running", "restart": "running", "shutdown": "stopped",
                 "stop": "stopped", "disable": "disabled"}
PLACEMENT_VERBS = frozenset({"migrate", "move", "unmigrate"})
# Client verbs after which a VM's run may legitimately end (a stop, a move, a restart).
STOPPERS = frozenset({"shutdown", "stop", "restart", "disable", *PLACEMENT_VERBS})
NODE_VERBS = frozenset({"flush", "ready"})
META_FIELDS = ("limits", "selector", "autorestart", "shutdownTimeout")


@dataclass(frozen=True)
class Op:
    """One client request. `slot` identifies the VM across renames (None: a node op);
    `vm` is its name when the request was sent; `args` are the request's own fields
    (camelCase meta keys for meta edits, `new_name` for rename, `node` for targets,
    `state` for define)."""

    seq: int
    slot: int | None
    vm: str | None
    node: str | None
    verb: str
    args: dict[str, Any]
    sent: float
    done: float
    outcome: str
    detail: str = ""
    answer: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def maybe_applied(self) -> bool:
        return self.outcome in (OK, UNKNOWN)


@dataclass(frozen=True)
class Fault:
    """One fault the injector carried out: what, on which process, from when to when."""

    kind: str
    target: str
    start: float
    end: float
    note: str = ""


@dataclass(frozen=True)
class ZVM:
    """One VM's znodes as read at the end. A document that did not parse is the string
    `"<unparseable: ...>"`; an absent child is None."""

    name: str
    spec: dict[str, Any] | str | None
    placement: dict[str, Any] | str | None
    status: dict[str, Any] | str | None
    owner: dict[str, Any] | str | None


@dataclass(frozen=True)
class ZNode:
    name: str
    spec: dict[str, Any] | str | None
    status: dict[str, Any] | str | None
    alive: bool


@dataclass(frozen=True)
class Snapshot:
    """What ZooKeeper holds at the end (read directly, not through the API)."""

    vms: dict[str, ZVM]
    nodes: dict[str, ZNode]
    taken: float
    events: list[dict[str, Any]] = field(default_factory=list)  # Herd's event log, oldest first


@dataclass(frozen=True)
class Exit:
    """A process that ended: which, when, its exit code, and whether the harness (a fault)
    or the fence agent ended it."""

    process: str
    at: float
    code: int | None
    expected: bool


@dataclass
class Evidence:
    """Everything the checker judges from. `deaths` are host deaths (node -> times: on
    test-driver nodes, every end of a node process; on QEMU hosts, the power-offs only),
    `fences` the fence agent's power-offs, `stuck` the processes a SIGTERM did not end in
    time (they were killed), `healed` when the last fault ended, `settled` when the checks
    began."""

    runs: list[Run]
    ops: list[Op]
    snapshot: Snapshot
    deaths: dict[str, list[float]] = field(default_factory=dict)
    fences: dict[str, list[float]] = field(default_factory=dict)
    exits: list[Exit] = field(default_factory=list)
    stuck: list[tuple[str, float]] = field(default_factory=list)  # SIGTERM not obeyed in time
    healed: float = 0.0
    settled: float = math.inf
