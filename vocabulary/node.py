"""The words of a node: its domain (flush) state, desired and observed, its daemon state.

Every value is a string stored in ZooKeeper (the node spec and status znodes) or taken and
shown by the API (`spec.domainState`, `status.domainState`, `status.daemonState`,
POST /node/{node}/domain-state). "Domain state" here is the node's: whether it takes VMs
(ready) or is emptied of them (flushed); the run state of one libvirt domain is
`vocabulary.runstate.RunState`. Used by `schemas`, `reconciler` (daemon, controllers),
`server` and `ctl`; and what herd-node does when its host shuts down (`ShutdownPolicy`,
`config.shutdownPolicy`). Pure: imports nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class DesiredDomainState(StrEnum):
    """`spec.domainState` of a node: what the user wants."""

    READY = "ready"
    FLUSHED = "flushed"


class DomainState(StrEnum):
    """Observed domain state of a node (`status.domainState`), written by the controllers."""

    READY = "ready"
    FLUSHING = "flushing"
    FLUSHED = "flushed"
    UNFLUSHING = "unflushing"


class DomainStateVerb(StrEnum):
    """Verbs of POST /node/{node}/domain-state."""

    FLUSH = "flush"
    READY = "ready"


# The `spec.domainState` each verb asks for (and that `wait` waits to see in status). Keyed
# by `DomainStateVerb`; typed by `str` so that a verb loaded as a plain string looks it up.
DESIRED_DOMAIN_STATE: Mapping[str, DesiredDomainState] = {
    DomainStateVerb.FLUSH: DesiredDomainState.FLUSHED,
    DomainStateVerb.READY: DesiredDomainState.READY,
}


class DaemonState(StrEnum):
    """`status.daemonState` of a node daemon."""

    INIT = "init"
    RUN = "run"
    SHUTDOWN = "shutdown"
    STOP = "stop"
    DEAD = "dead"
    FENCED = "fenced"


class FenceMode(StrEnum):
    """`spec.fence` of a node: fence it by its agent when it dies (AUTO), never (NONE), or
    count on its own watchdog (SELF: `reconciler.watchdog`; recovered once its session
    expired and the watchdog's timeout passed)."""

    AUTO = "auto"
    NONE = "none"
    SELF = "self"


class ShutdownPolicy(StrEnum):
    """`config.shutdownPolicy`: what herd-node does with its guests when the host shuts
    down (`reconciler.node.shutdown`)."""

    MIGRATE = "migrate"  # flush the node first (bounded); ready again when it is back
    FREEZE = "freeze"  # leave the guests as they are (a quick reboot)
    STOP = "stop"  # shut the guests down; they start again when the node is back
