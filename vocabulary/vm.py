"""The words of a VM: its desired and observed states, its meta choices, its verbs.

Every value is a string stored in ZooKeeper (the VM spec and status znodes) or taken and
shown by the API. `schemas` validates documents and requests with these enums,
`statemachine` plans on them, `store`, `reconciler`, `server` and `ctl` compare stored
strings with them (a `StrEnum` member equals its value). Pure: imports nothing.
"""

from __future__ import annotations

from enum import StrEnum


class DesiredState(StrEnum):
    """`spec.state` of a VM: what the user wants (the target of the lifecycle)."""

    RUNNING = "running"
    STOPPED = "stopped"
    DISABLED = "disabled"


class StopMode(StrEnum):
    """`spec.stopMode`: how a VM reaches stopped or disabled."""

    GRACEFUL = "graceful"
    FORCE = "force"


class Selector(StrEnum):
    """Node selector of a VM (`spec.meta.selector`); NONE means the cluster default."""

    MEM = "mem"
    MEMPROV = "memprov"
    LOAD = "load"
    VCPUS = "vcpus"
    VMS = "vms"
    NONE = "none"


class MigrationMethod(StrEnum):
    """`spec.meta.migrationMethod`; ANY is live with a fallback to shutdown-and-start."""

    LIVE = "live"
    SHUTDOWN = "shutdown"
    ANY = "any"


class VMState(StrEnum):
    """Observed state of a VM (`status.state`), written by the node reconciler."""

    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    SHUTTING_DOWN = "shutting-down"
    STOPPING = "stopping"
    RESTARTING = "restarting"
    MIGRATING = "migrating"
    FAILED = "failed"
    DISABLED = "disabled"
    UNKNOWN = "unknown"


# Observed states in which a VM's guest may be up on some node: rename and delete refuse
# them, the controllers count the VM as running there, the API shows its node.
UP_STATES: frozenset[str] = frozenset(s.value for s in VMState) - {
    VMState.STOPPED.value, VMState.FAILED.value, VMState.DISABLED.value}


class ConditionStatus(StrEnum):
    """`status` of a VM condition."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class StateVerb(StrEnum):
    """Imperative verbs of POST /vm/{vm}/state."""

    START = "start"
    SHUTDOWN = "shutdown"
    STOP = "stop"
    RESTART = "restart"
    DISABLE = "disable"


class NodeAction(StrEnum):
    """Actions of POST /vm/{vm}/node."""

    MIGRATE = "migrate"
    MOVE = "move"
    UNMIGRATE = "unmigrate"
