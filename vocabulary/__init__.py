"""Herd's vocabulary: every enumerated string of the system, each defined once.

The values are the strings stored in ZooKeeper and taken or shown by the API (a
`StrEnum` member equals its value, so a loaded document's plain strings compare equal).
`kind`: object kinds; `vm`: a VM's desired and observed states, meta choices and verbs;
`node`: a node's domain (flush) state, its verbs, its daemon state, its shutdown policy;
`role`: the roles of API tokens; `runstate`: the run state of one libvirt domain, which
the node reconciler and `statemachine` work on.

Pure and at the bottom of the layers: imports nothing of the project and does no I/O.
Used by `schemas`, `statemachine`, `store`, `reconciler`, `server` and `ctl`.
"""

from vocabulary.console import CONSOLE_ENDED, CONSOLE_GUEST_LEFT, CONSOLE_TAKEN_OVER
from vocabulary.kind import Kind
from vocabulary.network import AclDirection, NetworkKind
from vocabulary.node import (
    DESIRED_DOMAIN_STATE,
    DaemonState,
    DesiredDomainState,
    DomainState,
    DomainStateVerb,
    FenceMode,
    ShutdownPolicy,
)
from vocabulary.role import Role
from vocabulary.rule import RuleKind
from vocabulary.runstate import UP_RUN_STATES, RunState
from vocabulary.storage import PoolKind
from vocabulary.vm import (
    UP_STATES,
    ConditionStatus,
    DesiredState,
    MigrationMethod,
    NodeAction,
    Selector,
    StateVerb,
    StopMode,
    VMState,
)

__all__ = [
    "CONSOLE_ENDED",
    "CONSOLE_GUEST_LEFT",
    "CONSOLE_TAKEN_OVER",
    "DESIRED_DOMAIN_STATE",
    "UP_RUN_STATES",
    "UP_STATES",
    "AclDirection",
    "ConditionStatus",
    "DaemonState",
    "DesiredDomainState",
    "DesiredState",
    "DomainState",
    "DomainStateVerb",
    "FenceMode",
    "Kind",
    "MigrationMethod",
    "NetworkKind",
    "NodeAction",
    "PoolKind",
    "Role",
    "RuleKind",
    "RunState",
    "Selector",
    "ShutdownPolicy",
    "StateVerb",
    "StopMode",
    "VMState",
]
