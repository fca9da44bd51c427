"""The VM lifecycle as a `transitions` state machine declared as one table.

Pure: no I/O, imports nothing of the project. The node reconciler asks it for the next
step; callbacks only record, the reconciler does the I/O.
"""

from statemachine.data import (
    DOMAIN_STATES,
    MIGRATION_METHODS,
    STOP_MODES,
    TARGETS,
    UP_DOMAINS,
    Action,
    Desired,
    DomainState,
    MigrationMethod,
    Observed,
    Recorded,
    Step,
    StopMode,
    Target,
    VMState,
)
from statemachine.lifecycle import (
    MIGRATION_POLL_SECONDS,
    SHUTDOWN_PHASES,
    STATES,
    TIMED_STATES,
    TRANSITIONS,
    TRIGGERS,
    Lifecycle,
    Trigger,
)
from statemachine.planner import derive_trigger, plan

__all__ = [
    "DOMAIN_STATES",
    "MIGRATION_METHODS",
    "MIGRATION_POLL_SECONDS",
    "SHUTDOWN_PHASES",
    "STATES",
    "STOP_MODES",
    "TARGETS",
    "TIMED_STATES",
    "TRANSITIONS",
    "TRIGGERS",
    "UP_DOMAINS",
    "Action",
    "Desired",
    "DomainState",
    "Lifecycle",
    "MigrationMethod",
    "Observed",
    "Recorded",
    "Step",
    "StopMode",
    "Target",
    "Trigger",
    "VMState",
    "derive_trigger",
    "plan",
]
