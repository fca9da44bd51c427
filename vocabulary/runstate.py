"""The run state of one libvirt domain on one node, as the node reconciler sees it.

Not stored in ZooKeeper: the libvirt adapter (`reconciler.libvirt`) reduces what
libvirt reports to a `RunState`, the node daemon counts the domains up, and
`statemachine` plans a VM's next step from it (`Observed.domain`). Named apart from the
node's `DomainState` (ready/flushed), which is a different thing. Pure: imports nothing.
"""

from __future__ import annotations

from enum import StrEnum


class RunState(StrEnum):
    """What libvirt says about a domain, reduced to what the reconciler acts on."""

    ABSENT = "absent"
    DEFINED = "defined"  # persistent and shut off
    RUNNING = "running"
    PAUSED = "paused"
    CRASHED = "crashed"


# A domain in one of these states has a live guest (a QEMU process): it must be shut down,
# destroyed or migrated before it can be considered off. "crashed" counts as off, like
# "defined": whoever carries out START, RELEASE or UNDEFINE on a domain libvirt still
# reports active (on_crash=preserve) destroys it first.
UP_RUN_STATES: frozenset[RunState] = frozenset({RunState.RUNNING, RunState.PAUSED})
