"""`plan`: the one pure function the node reconciler calls per reconcile of a VM.

Role: the reconciler builds `Desired` (spec and placement), `Observed` (libvirt) and
`Recorded` (the status znode), calls `plan(..., now=...)`, writes the returned status and
carries out the returned action. `derive_trigger` picks ONE trigger of the lifecycle
machine from those inputs; `plan` fires it on a `Lifecycle` started at the recorded state
and returns the step its callbacks recorded. The trigger chosen is always valid from the
recorded state, so `plan` never raises for well-formed inputs.

Pure: no I/O, no clock reads.
"""

from __future__ import annotations

import threading

from statemachine.data import Desired, Observed, Recorded, Step
from statemachine.lifecycle import TIMED_STATES, Lifecycle, Trigger
from vocabulary import DesiredState, MigrationMethod, RunState, StopMode, VMState

T = Trigger
S = VMState

# The graceful shutdowns, and the state each one waits in while its deadline runs.
_SHUTDOWN_STATE: dict[Trigger, VMState] = {
    T.WANT_RESTART: S.RESTARTING,
    T.WANT_STOPPED_GRACEFUL: S.SHUTTING_DOWN,
    T.WANT_DISABLE: S.SHUTTING_DOWN,
    T.WANT_MIGRATE_SHUTDOWN: S.MIGRATING,
}


def plan(desired: Desired, observed: Observed, status: Recorded, *, now: float) -> Step:
    """The next step for one VM on this node: the action to carry out, the status to write."""
    trigger = derive_trigger(desired, observed, status, now=now)
    lifecycle = getattr(_models, "lifecycle", None)
    if lifecycle is None:
        lifecycle = _models.lifecycle = Lifecycle(desired, observed, recorded=status, now=now)
    else:
        lifecycle.reset(desired, observed, recorded=status, now=now)
    lifecycle.fire(trigger)
    return lifecycle.step()


# One reusable model per thread (plans on one thread never overlap).
_models = threading.local()


def derive_trigger(
    desired: Desired, observed: Observed, recorded: Recorded, *, now: float
) -> Trigger:
    """The one trigger that describes this reconcile (see the table in `lifecycle`)."""
    if not desired.exists:
        if observed.up:
            return T.DELETED
        return T.NOT_HERE if observed.domain == RunState.ABSENT else T.UNDEFINE
    if observed.migrating_out and observed.domain != RunState.ABSENT:
        return T.MIGRATION_IN_FLIGHT
    if not observed.up:
        return _when_off(desired, observed)
    return _with_timer(_when_up(desired, recorded), recorded, now=now)


def _when_off(desired: Desired, observed: Observed) -> Trigger:
    if not desired.placed_here:
        return T.NOT_HERE if observed.domain == RunState.ABSENT else T.RELEASE
    return T.WANT_RUNNING if desired.target == DesiredState.RUNNING else T.OBSERVED_OFF


def _when_up(desired: Desired, recorded: Recorded) -> Trigger:
    if desired.target != DesiredState.RUNNING:
        # Wherever it is placed: a VM not wanted running is shut down where it runs (then
        # released, if placed elsewhere), never moved first. (An explicit move during a
        # shutdown wants it running again: the API's side of the abort.)
        if desired.stop_mode == StopMode.FORCE:
            return T.WANT_STOPPED_FORCE
        return T.WANT_DISABLE if desired.target == DesiredState.DISABLED \
            else T.WANT_STOPPED_GRACEFUL
    if not desired.placed_here:
        return _migration(desired)
    if desired.restart_request > recorded.observed_restart:
        return T.WANT_RESTART
    return T.OBSERVED_RUNNING


def _migration(desired: Desired) -> Trigger:
    """Placed on another node while up here and wanted running: how to get it there."""
    method = desired.migration_method
    if desired.live_supported and method in (MigrationMethod.LIVE, MigrationMethod.ANY):
        return T.WANT_MIGRATE_LIVE
    if method == MigrationMethod.LIVE:
        return T.LIVE_UNSUPPORTED
    return T.WANT_MIGRATE_SHUTDOWN


def _with_timer(wanted: Trigger, recorded: Recorded, *, now: float) -> Trigger:
    """A graceful shutdown already in progress keeps its deadline: wait, or force off."""
    waits_in = _SHUTDOWN_STATE.get(wanted)
    deadline = recorded.shutdown_deadline
    if waits_in is None or deadline is None or recorded.state not in TIMED_STATES:
        return wanted
    if now >= deadline:
        return T.DEADLINE_PASSED
    return T.TICK if recorded.state == waits_in else wanted
