"""The VM lifecycle machine: one transition table, and the `Lifecycle` model it drives.

Role: `statemachine.planner.plan` builds a `Lifecycle` at the recorded status state, fires
the one trigger it derived from (desired, observed, recorded, now), and reads back the step
the callbacks recorded. Tests enumerate `STATES` x `TRIGGERS` against `TRANSITIONS`.

Triggers name what is wanted (`want_*`) or seen (`observed_*`, `deadline_passed`, ...).
Every trigger but the shutdown timer ones is valid from every state: the reconciler is
level-triggered and must act on what it sees whatever the recorded status says (a daemon
restart, a controller's `unknown`, a stale write). `tick` and `deadline_passed` exist only
while a shutdown with a deadline is in progress; firing them elsewhere raises
`transitions.MachineError`.

Callbacks only record (action, deadline, reason, ...); conditions are pure functions of the
model's data. The states are `vocabulary.VMState`. Pure: no I/O, no clock reads (`now` is
passed in).
"""

from __future__ import annotations

import threading
from enum import StrEnum
from typing import TYPE_CHECKING

from transitions import Machine

from statemachine.data import Action, Desired, Observed, Recorded, Step
from vocabulary import DesiredState, RunState, VMState

if TYPE_CHECKING:  # the stubs shipped with `transitions` declare it; the module does not
    from transitions.core import TransitionConfigDict

S = VMState
ANY = "*"  # every state
SAME = "="  # stay in the source state

# How long to wait before looking again at a live migration in flight.
MIGRATION_POLL_SECONDS = 5.0


class Trigger(StrEnum):
    """The events of the lifecycle machine (see the table for what each one does)."""

    OBSERVED_RUNNING = "observed_running"  # wanted running here, and it is up
    WANT_RUNNING = "want_running"  # wanted running here, and it is off
    WANT_RESTART = "want_restart"  # a restart request not yet carried out, and it is up
    WANT_STOPPED_GRACEFUL = "want_stopped_graceful"  # wanted stopped (ACPI), and it is up
    WANT_STOPPED_FORCE = "want_stopped_force"  # wanted stopped or disabled now, and it is up
    WANT_DISABLE = "want_disable"  # wanted disabled (ACPI), and it is up
    TICK = "tick"  # a shutdown in progress, its deadline not reached
    DEADLINE_PASSED = "deadline_passed"  # a shutdown in progress, its deadline reached
    OBSERVED_OFF = "observed_off"  # wanted stopped or disabled here, and it is off
    WANT_MIGRATE_LIVE = "want_migrate_live"  # placed elsewhere, up here, live migration possible
    WANT_MIGRATE_SHUTDOWN = "want_migrate_shutdown"  # placed elsewhere, up here, by shutdown
    MIGRATION_IN_FLIGHT = "migration_in_flight"  # a live migration job runs here
    LIVE_UNSUPPORTED = "live_unsupported"  # placed elsewhere, live only, driver cannot
    RELEASE = "release"  # placed elsewhere, off here
    DELETED = "deleted"  # deleted from ZooKeeper, up here
    UNDEFINE = "undefine"  # deleted from ZooKeeper, defined (off) here
    NOT_HERE = "not_here"  # no domain here and another node (or nobody) is responsible


T = Trigger
# States in which a graceful shutdown waits for its deadline (the `tick` sources).
SHUTDOWN_PHASES: tuple[VMState, ...] = (S.SHUTTING_DOWN, S.RESTARTING, S.MIGRATING)
# States whose recorded `shutdown_deadline` is live; every other state's is ignored.
TIMED_STATES: tuple[VMState, ...] = (*SHUTDOWN_PHASES, S.STOPPING)

# The whole machine. Rows of one trigger are tried in order; the first whose conditions hold
# wins (the last row of a trigger has none).
TRANSITIONS: tuple[TransitionConfigDict, ...] = (
    # -- running here ---------------------------------------------------------------------
    {"trigger": T.OBSERVED_RUNNING, "source": ANY, "dest": S.RUNNING, "after": "record_running"},
    {"trigger": T.WANT_RUNNING, "source": ANY, "dest": S.STARTING,
     "after": ["consume_restart", "record_start"]},
    # -- graceful shutdowns: ACPI now, or keep the deadline of the one in progress --------
    {"trigger": T.WANT_RESTART, "source": ANY, "dest": S.RESTARTING, "after": "record_shutdown"},
    {"trigger": T.WANT_STOPPED_GRACEFUL, "source": ANY, "dest": S.SHUTTING_DOWN,
     "after": "record_shutdown"},
    {"trigger": T.WANT_DISABLE, "source": ANY, "dest": S.SHUTTING_DOWN,
     "after": "record_shutdown"},
    {"trigger": T.TICK, "source": list(SHUTDOWN_PHASES), "dest": SAME, "after": "record_wait"},
    {"trigger": T.DEADLINE_PASSED, "source": S.SHUTTING_DOWN, "dest": S.STOPPING,
     "after": "record_timeout"},
    {"trigger": T.DEADLINE_PASSED, "source": [S.RESTARTING, S.MIGRATING, S.STOPPING],
     "dest": SAME, "after": "record_timeout"},
    # -- forced off, and off ----------------------------------------------------------------
    {"trigger": T.WANT_STOPPED_FORCE, "source": ANY, "dest": S.STOPPING,
     "after": "record_destroy"},
    {"trigger": T.OBSERVED_OFF, "source": ANY, "dest": S.DISABLED,
     "conditions": "wants_disabled", "after": ["consume_restart", "record_off"]},
    {"trigger": T.OBSERVED_OFF, "source": ANY, "dest": S.STOPPED,
     "after": ["consume_restart", "record_off"]},
    # -- placed on another node -------------------------------------------------------------
    {"trigger": T.WANT_MIGRATE_LIVE, "source": ANY, "dest": S.MIGRATING,
     "after": "record_migrate_live"},
    {"trigger": T.WANT_MIGRATE_SHUTDOWN, "source": ANY, "dest": S.MIGRATING,
     "after": "record_shutdown"},
    {"trigger": T.MIGRATION_IN_FLIGHT, "source": ANY, "dest": S.MIGRATING,
     "after": "record_migration_wait"},
    {"trigger": T.LIVE_UNSUPPORTED, "source": ANY, "dest": S.FAILED,
     "after": "record_live_unsupported"},
    {"trigger": T.RELEASE, "source": ANY, "dest": S.MIGRATING,
     "conditions": "wants_running", "after": ["consume_restart", "record_release"]},
    {"trigger": T.RELEASE, "source": ANY, "dest": S.DISABLED,
     "conditions": "wants_disabled", "after": ["consume_restart", "record_release"]},
    {"trigger": T.RELEASE, "source": ANY, "dest": S.STOPPED,
     "after": ["consume_restart", "record_release"]},
    # -- deleted, or nothing here -----------------------------------------------------------
    {"trigger": T.DELETED, "source": ANY, "dest": S.STOPPING, "after": "record_destroy"},
    {"trigger": T.UNDEFINE, "source": ANY, "dest": S.STOPPED, "after": "record_undefine"},
    {"trigger": T.NOT_HERE, "source": ANY, "dest": SAME, "after": "record_nothing"},
)  # fmt: skip

STATES: tuple[VMState, ...] = tuple(VMState)
TRIGGERS: tuple[Trigger, ...] = tuple(Trigger)


def _seconds(value: float) -> str:
    return f"{value:.0f}s" if value >= 1 or value == 0 else f"{value:.1f}s"


class Lifecycle:
    """The machine's model: the inputs of one reconcile, and the step its callbacks record.

    It starts at `recorded.state`; `fire` runs one trigger, `step` returns what it recorded.
    """

    state: VMState  # maintained by `transitions`

    def __init__(
        self, desired: Desired, observed: Observed, *, recorded: Recorded, now: float
    ) -> None:
        self.machine = _MACHINE
        with _MACHINE_LOCK:
            _MACHINE.add_model(self, initial=recorded.state)
        self.reset(desired, observed, recorded=recorded, now=now)

    def reset(
        self, desired: Desired, observed: Observed, *, recorded: Recorded, now: float
    ) -> None:
        """Start over at `recorded.state` with new inputs (a model is reused across plans:
        attaching one to the machine costs more than the plan itself)."""
        self.desired = desired
        self.observed = observed
        self.recorded = recorded
        self.now = now
        self.action = Action.NONE
        self.deadline = recorded.shutdown_deadline
        self.observed_restart = recorded.observed_restart
        self.requeue_after: float | None = None
        self.reason = ""
        self.fired = ""
        with _MACHINE_LOCK:
            _MACHINE.set_state(recorded.state, model=self)

    def fire(self, trigger: Trigger) -> None:
        """Run `trigger`; raises `transitions.MachineError` if invalid from the state."""
        with _MACHINE_LOCK:
            self.machine.events[trigger].trigger(self)
        self.fired = trigger.value

    def close(self) -> None:
        """Detach from the shared machine (which would otherwise keep this model alive)."""
        with _MACHINE_LOCK:
            _MACHINE.remove_model(self)

    def __enter__(self) -> Lifecycle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def step(self) -> Step:
        """What the callbacks recorded, with the state the machine reached."""
        return Step(
            action=self.action,
            state=self.state,
            shutdown_deadline=self.deadline,
            observed_restart=self.observed_restart,
            requeue_after=self.requeue_after,
            reason=self.reason,
            trigger=self.fired,
        )

    # -- data the callbacks and conditions read ---------------------------------------------

    @property
    def source(self) -> VMState:
        """The state the one trigger is fired from."""
        return self.recorded.state

    @property
    def live_deadline(self) -> float | None:
        """The deadline of a shutdown in progress, or None when there is none."""
        if self.recorded.state in TIMED_STATES:
            return self.recorded.shutdown_deadline
        return None

    # -- conditions ---------------------------------------------------------------------------

    def wants_running(self) -> bool:
        return self.desired.target == DesiredState.RUNNING

    def wants_disabled(self) -> bool:
        return self.desired.target == DesiredState.DISABLED

    # -- callbacks: they only record --------------------------------------------------------

    def _record(
        self, action: Action, reason: str, *, deadline: float | None, requeue: float | None = None
    ) -> None:
        self.action = action
        self.reason = reason
        self.deadline = deadline
        self.requeue_after = requeue

    def consume_restart(self) -> None:
        """The domain is off: any restart requested so far is done."""
        self.observed_restart = self.desired.restart_request

    def record_running(self) -> None:
        if self.source == S.MIGRATING:
            reason = "running (migration ended)"
        elif self.source in SHUTDOWN_PHASES:
            reason = f"{self.source.value} aborted: desired state is running, the VM stays up"
        elif self.source in (S.RUNNING, S.STARTING):
            reason = "running"
        else:
            reason = "adopted the running domain"
        if self.observed.domain == RunState.PAUSED:
            reason += " (domain is paused)"
        self._record(Action.NONE, reason, deadline=None)

    def record_start(self) -> None:
        if self.observed.domain == RunState.CRASHED:
            reason = "domain crashed; starting it again"
        elif self.source == S.RESTARTING:
            reason = "restart: the domain is off; starting it"
        else:
            reason = f"starting (domain {self.observed.domain})"
        self._record(Action.START, reason, deadline=None)

    def record_shutdown(self) -> None:
        """Begin a graceful shutdown, or keep the deadline of the one in progress."""
        purpose = self._shutdown_purpose()
        deadline = self.live_deadline
        if deadline is None:
            timeout = self.desired.shutdown_timeout
            reason = f"{purpose}: ACPI shutdown sent, forcing off after {_seconds(timeout)}"
            self._record(Action.SHUTDOWN, reason, deadline=self.now + timeout, requeue=timeout)
            return
        left = max(0.0, deadline - self.now)
        reason = f"{purpose}: shutdown in progress, forcing off in {_seconds(left)}"
        self._record(Action.NONE, reason, deadline=deadline, requeue=left)

    def _shutdown_purpose(self) -> str:
        if self.state == S.RESTARTING:
            return "restart"
        if self.state == S.MIGRATING:
            return "migration by shutdown (placed on another node)"
        return "disable" if self.wants_disabled() else "shutdown"

    def record_wait(self) -> None:
        deadline = self.live_deadline
        left = 0.0 if deadline is None else max(0.0, deadline - self.now)
        reason = f"{self.source.value}: waiting for the guest to power off ({_seconds(left)} left)"
        self._record(Action.NONE, reason, deadline=deadline, requeue=left)

    def record_timeout(self) -> None:
        timeout = _seconds(self.desired.shutdown_timeout)
        reason = f"shutdown timed out after {timeout}, forcing off"
        self._record(Action.DESTROY, reason, deadline=self.live_deadline)

    def record_destroy(self) -> None:
        if not self.desired.exists:
            reason = "VM deleted: forcing off"
        elif self.source in SHUTDOWN_PHASES:
            reason = f"forced stop: {self.source.value} cut short, forcing off now"
        else:
            reason = "forced stop: forcing off now"
        self._record(Action.DESTROY, reason, deadline=None)

    def record_off(self) -> None:
        self._record(Action.NONE, f"{self.state.value} (domain {self.observed.domain})",
                     deadline=None)  # fmt: skip

    def record_migrate_live(self) -> None:
        reason = "live-migrating to the placement's node"
        if self.source in SHUTDOWN_PHASES and self.source != S.MIGRATING:
            reason = f"{self.source.value} cancelled: {reason}"
        self._record(Action.MIGRATE_LIVE, reason, deadline=None)

    def record_migration_wait(self) -> None:
        self._record(Action.NONE, "live migration in progress", deadline=None,
                     requeue=MIGRATION_POLL_SECONDS)  # fmt: skip

    def record_live_unsupported(self) -> None:
        reason = (
            "live migration not supported by this hypervisor driver; "
            "set migrationMethod to shutdown or any"
        )
        self._record(Action.NONE, reason, deadline=None)

    def record_release(self) -> None:
        reason = "placed on another node and off here: undefining it and releasing ownership"
        self._record(Action.RELEASE, reason, deadline=None)

    def record_undefine(self) -> None:
        self._record(Action.UNDEFINE, "VM deleted: undefining the domain", deadline=None)

    def record_nothing(self) -> None:
        reason = "VM deleted" if not self.desired.exists else "another node is responsible"
        self._record(Action.NONE, f"{reason}; no domain on this node", deadline=self.deadline)


# One machine for every model: building it (about 190 Transition objects) for each plan
# cost more than everything else a reconcile does on the loop. Models are added for one
# plan and removed after it; the lock keeps concurrent plans (threads) apart.
_MACHINE = Machine(
    model=None,
    states=VMState,
    initial=VMState.STOPPED,
    transitions=TRANSITIONS,
    auto_transitions=False,
    ignore_invalid_triggers=False,
)
_MACHINE_LOCK = threading.RLock()
