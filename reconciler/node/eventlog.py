"""The node's own record of libvirt lifecycle events: one JSON line per event in a file.

`EventLog` is made by `reconciler.daemon.NodeDaemon` when the config sets `event_log`; the
daemon calls `write()` on its loop for every lifecycle event, and once at its end.
"""

from __future__ import annotations

import json
import time


class EventLog:
    """Appends one JSON line per libvirt lifecycle event: when, node, VM, event, detail.
    A record of what the hypervisor did, written by the node itself, for history checkers
    that do not trust Herd's own status (tests/support/history.py). A last line, event
    `closed` (no VM), says when the daemon closed its own libvirt connection: on libvirt's
    test driver its guests end there (tests/support/chaos/recorder.py)."""

    def __init__(self, path: str, node: str) -> None:
        self.path = path
        self.node = node

    def write(self, name: str, kind: str, detail: int) -> None:
        line = json.dumps({"t": time.time(), "node": self.node, "vm": name, "event": kind,
                           "detail": detail})
        with open(self.path, "a") as f:  # one short append per event; O_APPEND keeps lines
            f.write(line + "\n")
