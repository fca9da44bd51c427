"""The VM lifecycle as a `transitions` state machine declared as one table.

Pure: no I/O, imports nothing of the project but `vocabulary` (the VM states, targets,
stop modes, migration methods and domain run states it plans on). The node reconciler asks
it for the next step; callbacks only record, the reconciler does the I/O.
"""

from statemachine.data import Action, Desired, Observed, Recorded, Step
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
    "MIGRATION_POLL_SECONDS",
    "SHUTDOWN_PHASES",
    "STATES",
    "TIMED_STATES",
    "TRANSITIONS",
    "TRIGGERS",
    "Action",
    "Desired",
    "Lifecycle",
    "Observed",
    "Recorded",
    "Step",
    "Trigger",
    "derive_trigger",
    "plan",
]
