"""Scenario tests of `statemachine.plan`: the lifecycle semantics, one reconcile at a time.

Role: walks VMs through shutdowns, aborts, restarts, disables, migrations and deletions the
way the node reconciler would: each step's status is written back (`_write`) and the next
`plan` call starts from it with a fresh `Lifecycle`, as after a daemon restart. No I/O.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from statemachine import (
    MIGRATION_POLL_SECONDS,
    Action,
    Desired,
    Observed,
    Recorded,
    Step,
    derive_trigger,
    plan,
)
from vocabulary import RunState, VMState

S = VMState
A = Action
T0 = 1000.0
TIMEOUT = 180.0
LIVE_UNSUPPORTED = (
    "live migration not supported by this hypervisor driver; set migrationMethod to shutdown or any"
)


def _desired(**fields: Any) -> Desired:
    base: dict[str, Any] = {"target": "running", "shutdown_timeout": TIMEOUT}
    return Desired(**(base | fields))


def _plan(
    desired: Desired,
    domain: str,
    status: Recorded,
    *,
    now: float,
    migrating_out: bool = False,
) -> Step:
    observed = Observed(domain=RunState(domain), migrating_out=migrating_out)
    return plan(desired, observed, status, now=now)


def _write(status: Recorded, step: Step, *, now: float) -> Recorded:
    """What the reconciler persists in the status znode after a step."""
    since = now if step.state != status.state else status.since
    return Recorded(
        state=step.state,
        shutdown_deadline=step.shutdown_deadline,
        observed_restart=step.observed_restart,
        since=since,
    )


def _at(state: VMState, deadline: float | None = None, restart: int = 0) -> Recorded:
    return Recorded(state=state, shutdown_deadline=deadline, observed_restart=restart, since=1.0)


def _check(step: Step, action: Action, state: VMState, deadline: float | None) -> None:
    assert (step.action, step.state, step.shutdown_deadline) == (action, state, deadline), step


# -- running here ------------------------------------------------------------------------------


@pytest.mark.parametrize("domain", ["absent", "defined"])
def test_start_defines_and_starts(domain: str) -> None:
    step = _plan(_desired(), domain, _at(S.STOPPED), now=T0)
    _check(step, A.START, S.STARTING, None)
    step = _plan(_desired(), "running", _write(_at(S.STOPPED), step, now=T0), now=T0 + 1)
    _check(step, A.NONE, S.RUNNING, None)
    assert step.requeue_after is None


@pytest.mark.parametrize("recorded", [S.STOPPED, S.UNKNOWN, S.FAILED, S.STARTING, S.DISABLED])
def test_running_domain_is_adopted_not_restarted(recorded: VMState) -> None:
    step = _plan(_desired(), "running", _at(recorded), now=T0)
    _check(step, A.NONE, S.RUNNING, None)
    if recorded is not S.STARTING:
        assert "adopted" in step.reason


def test_crashed_domain_is_started_again() -> None:
    step = _plan(_desired(), "crashed", _at(S.RUNNING), now=T0)
    _check(step, A.START, S.STARTING, None)
    assert "crash" in step.reason


def test_paused_domain_counts_as_up() -> None:
    step = _plan(_desired(), "paused", _at(S.RUNNING), now=T0)
    _check(step, A.NONE, S.RUNNING, None)
    assert "paused" in step.reason


# -- graceful shutdown and its timer -----------------------------------------------------------


def test_shutdown_times_out_and_forces_off() -> None:
    stop = _desired(target="stopped")
    status = _at(S.RUNNING)
    step = _plan(stop, "running", status, now=T0)
    _check(step, A.SHUTDOWN, S.SHUTTING_DOWN, T0 + TIMEOUT)
    assert step.requeue_after == TIMEOUT
    status = _write(status, step, now=T0)

    step = _plan(stop, "running", status, now=T0 + 100)
    _check(step, A.NONE, S.SHUTTING_DOWN, T0 + TIMEOUT)  # same deadline, not extended
    assert step.requeue_after == pytest.approx(80.0)
    assert step.trigger == "tick"
    status = _write(status, step, now=T0 + 100)

    step = _plan(stop, "running", status, now=T0 + TIMEOUT)
    _check(step, A.DESTROY, S.STOPPING, T0 + TIMEOUT)
    assert step.reason == "shutdown timed out after 180s, forcing off"
    status = _write(status, step, now=T0 + TIMEOUT)

    step = _plan(stop, "running", status, now=T0 + TIMEOUT + 1)  # destroy not done yet
    _check(step, A.DESTROY, S.STOPPING, T0 + TIMEOUT)
    status = _write(status, step, now=T0 + TIMEOUT + 1)

    step = _plan(stop, "defined", status, now=T0 + TIMEOUT + 2)
    _check(step, A.NONE, S.STOPPED, None)
    assert step.requeue_after is None


def test_shutdown_completes_before_the_deadline() -> None:
    stop = _desired(target="stopped")
    step = _plan(stop, "running", _at(S.RUNNING), now=T0)
    status = _write(_at(S.RUNNING), step, now=T0)
    _check(_plan(stop, "defined", status, now=T0 + 5), A.NONE, S.STOPPED, None)
    _check(_plan(stop, "absent", status, now=T0 + 5), A.NONE, S.STOPPED, None)


def test_deadline_survives_a_daemon_restart() -> None:
    stop = _desired(target="stopped")
    step = _plan(stop, "running", _at(S.RUNNING), now=T0)
    persisted = _write(_at(S.RUNNING), step, now=T0)
    # A new daemon: only the status znode is left; the timeout in the spec changed meanwhile.
    fresh = Recorded(
        state=VMState(persisted.state.value),
        shutdown_deadline=persisted.shutdown_deadline,
        observed_restart=persisted.observed_restart,
        since=persisted.since,
    )
    longer = _desired(target="stopped", shutdown_timeout=600.0)
    step = _plan(longer, "running", fresh, now=T0 + 170)
    _check(step, A.NONE, S.SHUTTING_DOWN, T0 + TIMEOUT)
    assert step.requeue_after == pytest.approx(10.0)
    step = _plan(longer, "running", fresh, now=T0 + 181)
    _check(step, A.DESTROY, S.STOPPING, T0 + TIMEOUT)


def test_zero_timeout_forces_off_on_the_next_look() -> None:
    stop = _desired(target="stopped", shutdown_timeout=0.0)
    step = _plan(stop, "running", _at(S.RUNNING), now=T0)
    _check(step, A.SHUTDOWN, S.SHUTTING_DOWN, T0)
    assert step.requeue_after == 0.0
    step = _plan(stop, "running", _write(_at(S.RUNNING), step, now=T0), now=T0)
    _check(step, A.DESTROY, S.STOPPING, T0)


def test_force_stop_destroys_now() -> None:
    step = _plan(_desired(target="stopped", stop_mode="force"), "running", _at(S.RUNNING), now=T0)
    _check(step, A.DESTROY, S.STOPPING, None)
    step = _plan(_desired(target="stopped", stop_mode="force"), "defined", _at(S.STOPPING), now=T0)
    _check(step, A.NONE, S.STOPPED, None)


# -- a shutdown in progress is aborted by any new target state --------------------------------


def _shutting_down() -> Recorded:
    step = _plan(_desired(target="stopped"), "running", _at(S.RUNNING), now=T0)
    return _write(_at(S.RUNNING), step, now=T0)


def test_abort_by_start_keeps_the_vm_up() -> None:
    status = _shutting_down()
    step = _plan(_desired(), "running", status, now=T0 + 10)
    _check(step, A.NONE, S.RUNNING, None)
    assert "aborted" in step.reason
    status = _write(status, step, now=T0 + 10)
    # Long after the old deadline: still running, nothing forced.
    step = _plan(_desired(), "running", status, now=T0 + 10 * TIMEOUT)
    _check(step, A.NONE, S.RUNNING, None)


def test_abort_by_start_after_the_deadline_passed_still_aborts() -> None:
    step = _plan(_desired(), "running", _shutting_down(), now=T0 + 2 * TIMEOUT)
    _check(step, A.NONE, S.RUNNING, None)


def test_abort_by_start_when_already_off_starts_it() -> None:
    step = _plan(_desired(), "defined", _shutting_down(), now=T0 + 10)
    _check(step, A.START, S.STARTING, None)


def test_abort_by_force_stop_destroys_now() -> None:
    force = _desired(target="stopped", stop_mode="force")
    step = _plan(force, "running", _shutting_down(), now=T0 + 10)
    _check(step, A.DESTROY, S.STOPPING, None)
    assert "forc" in step.reason


def test_abort_by_live_migration_cancels_the_shutdown() -> None:
    # The API's side of the abort wants it running again with the new placement.
    away = _desired(target="running", placed_here=False, live_supported=True)
    status = _shutting_down()
    step = _plan(away, "running", status, now=T0 + 10)
    _check(step, A.MIGRATE_LIVE, S.MIGRATING, None)
    assert "cancelled" in step.reason
    status = _write(status, step, now=T0 + 10)
    step = _plan(away, "running", status, now=T0 + 11, migrating_out=True)
    _check(step, A.NONE, S.MIGRATING, None)
    assert step.requeue_after == MIGRATION_POLL_SECONDS
    step = _plan(away, "absent", status, now=T0 + 13)  # migrated: the other node reports
    _check(step, A.NONE, S.MIGRATING, None)


def test_restart_during_a_shutdown_keeps_shutting_down() -> None:
    restart = _desired(restart_request=1)
    status = _shutting_down()
    step = _plan(restart, "running", status, now=T0 + 30)
    _check(step, A.NONE, S.RESTARTING, T0 + TIMEOUT)
    assert step.requeue_after == pytest.approx(150.0)
    status = _write(status, step, now=T0 + 30)
    _check(_plan(restart, "running", status, now=T0 + 60), A.NONE, S.RESTARTING, T0 + TIMEOUT)
    step = _plan(restart, "defined", status, now=T0 + 90)
    _check(step, A.START, S.STARTING, None)
    assert step.observed_restart == 1


def test_disable_during_a_shutdown_keeps_shutting_down() -> None:
    disable = _desired(target="disabled")
    status = _shutting_down()
    step = _plan(disable, "running", status, now=T0 + 30)
    _check(step, A.NONE, S.SHUTTING_DOWN, T0 + TIMEOUT)
    status = _write(status, step, now=T0 + 30)
    _check(_plan(disable, "defined", status, now=T0 + 40), A.NONE, S.DISABLED, None)


# -- restart ---------------------------------------------------------------------------------------


def test_restart_sequence_records_observed_restart() -> None:
    restart = _desired(restart_request=3)
    status = _at(S.RUNNING, restart=2)
    step = _plan(restart, "running", status, now=T0)
    _check(step, A.SHUTDOWN, S.RESTARTING, T0 + TIMEOUT)
    assert step.observed_restart == 2
    status = _write(status, step, now=T0)

    step = _plan(restart, "running", status, now=T0 + 20)
    _check(step, A.NONE, S.RESTARTING, T0 + TIMEOUT)
    status = _write(status, step, now=T0 + 20)

    step = _plan(restart, "defined", status, now=T0 + 30)
    _check(step, A.START, S.STARTING, None)
    assert step.observed_restart == 3
    status = _write(status, step, now=T0 + 30)

    step = _plan(restart, "running", status, now=T0 + 31)
    _check(step, A.NONE, S.RUNNING, None)  # no second restart
    assert step.observed_restart == 3


def test_restart_timeout_destroys_and_stays_restarting() -> None:
    restart = _desired(restart_request=1)
    step = _plan(restart, "running", _at(S.RUNNING), now=T0)
    status = _write(_at(S.RUNNING), step, now=T0)
    step = _plan(restart, "running", status, now=T0 + TIMEOUT + 1)
    _check(step, A.DESTROY, S.RESTARTING, T0 + TIMEOUT)
    assert "timed out" in step.reason
    status = _write(status, step, now=T0 + TIMEOUT + 1)
    _check(_plan(restart, "running", status, now=T0 + 200), A.DESTROY, S.RESTARTING, T0 + TIMEOUT)
    step = _plan(restart, "defined", status, now=T0 + 201)
    _check(step, A.START, S.STARTING, None)
    assert step.observed_restart == 1


def test_restart_requested_while_stopped_is_just_recorded() -> None:
    step = _plan(_desired(target="stopped", restart_request=4), "defined", _at(S.STOPPED), now=T0)
    _check(step, A.NONE, S.STOPPED, None)
    assert step.observed_restart == 4
    step = _plan(_desired(restart_request=5), "defined", _at(S.STOPPED, restart=4), now=T0)
    _check(step, A.START, S.STARTING, None)  # follows the target: one start, no restart
    assert step.observed_restart == 5


# -- disable -----------------------------------------------------------------------------------


def test_disable_shuts_down_and_ends_disabled() -> None:
    disable = _desired(target="disabled")
    step = _plan(disable, "running", _at(S.RUNNING), now=T0)
    _check(step, A.SHUTDOWN, S.SHUTTING_DOWN, T0 + TIMEOUT)
    assert step.reason.startswith("disable")
    status = _write(_at(S.RUNNING), step, now=T0)
    step = _plan(disable, "running", status, now=T0 + TIMEOUT)
    _check(step, A.DESTROY, S.STOPPING, T0 + TIMEOUT)
    status = _write(status, step, now=T0 + TIMEOUT)
    _check(_plan(disable, "defined", status, now=T0 + 190), A.NONE, S.DISABLED, None)


def test_disable_while_off_is_disabled_and_force_disable_destroys() -> None:
    _check(_plan(_desired(target="disabled"), "defined", _at(S.STOPPED), now=T0),
           A.NONE, S.DISABLED, None)  # fmt: skip
    force = _desired(target="disabled", stop_mode="force")
    _check(_plan(force, "running", _at(S.RUNNING), now=T0), A.DESTROY, S.STOPPING, None)


# -- migration -----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["live", "any"])
def test_live_migration(method: str) -> None:
    away = _desired(placed_here=False, live_supported=True, migration_method=method)
    step = _plan(away, "running", _at(S.RUNNING), now=T0)
    _check(step, A.MIGRATE_LIVE, S.MIGRATING, None)
    step = _plan(away, "running", _at(S.MIGRATING), now=T0 + 1, migrating_out=True)
    _check(step, A.NONE, S.MIGRATING, None)
    assert step.requeue_after == MIGRATION_POLL_SECONDS


def test_live_migration_arrives_running_on_the_destination() -> None:
    step = _plan(_desired(), "running", _at(S.MIGRATING), now=T0)
    _check(step, A.NONE, S.RUNNING, None)


@pytest.mark.parametrize(
    ("method", "live"), [("shutdown", True), ("shutdown", False), ("any", False)]
)
def test_migration_by_shutdown(method: str, live: bool) -> None:
    away = _desired(placed_here=False, live_supported=live, migration_method=method)
    status = _at(S.RUNNING)
    step = _plan(away, "running", status, now=T0)
    _check(step, A.SHUTDOWN, S.MIGRATING, T0 + TIMEOUT)
    status = _write(status, step, now=T0)
    _check(_plan(away, "running", status, now=T0 + 50), A.NONE, S.MIGRATING, T0 + TIMEOUT)
    step = _plan(away, "running", status, now=T0 + TIMEOUT)
    _check(step, A.DESTROY, S.MIGRATING, T0 + TIMEOUT)
    status = _write(status, step, now=T0 + TIMEOUT)
    step = _plan(away, "defined", status, now=T0 + TIMEOUT + 2)
    _check(step, A.RELEASE, S.MIGRATING, None)
    # Once released, the domain is gone here and the placement's node is responsible.
    _check(_plan(away, "absent", status, now=T0 + 200), A.NONE, S.MIGRATING, T0 + TIMEOUT)


def test_migration_by_shutdown_during_a_shutdown_keeps_the_deadline() -> None:
    away = _desired(placed_here=False, migration_method="shutdown")
    step = _plan(away, "running", _shutting_down(), now=T0 + 40)
    _check(step, A.NONE, S.MIGRATING, T0 + TIMEOUT)


def test_live_unsupported_fails_and_never_fakes_it() -> None:
    away = _desired(placed_here=False, live_supported=False, migration_method="live")
    for status in (_at(S.RUNNING), _shutting_down(), _at(S.FAILED)):
        step = _plan(away, "running", status, now=T0 + 10)
        _check(step, A.NONE, S.FAILED, None)
        assert step.reason == LIVE_UNSUPPORTED


@pytest.mark.parametrize("live", [True, False])
def test_vm_not_wanted_running_is_shut_down_where_it_runs_then_released(live: bool) -> None:
    # Never moved first (the fault suite's seed 14: a VM the primary stopped, still up on
    # the node it had not left yet, went there and back by live migration).
    away = _desired(target="stopped", placed_here=False, migration_method="live",
                    live_supported=live)
    step = _plan(away, "running", _at(S.RUNNING), now=T0)
    _check(step, A.SHUTDOWN, S.SHUTTING_DOWN, T0 + TIMEOUT)
    status = _write(_at(S.RUNNING), step, now=T0)
    _check(_plan(away, "running", status, now=T0 + 1), A.NONE, S.SHUTTING_DOWN, T0 + TIMEOUT)
    step = _plan(away, "defined", status, now=T0 + 5)
    _check(step, A.RELEASE, S.STOPPED, None)


def test_placed_elsewhere_during_a_shutdown_keeps_shutting_down_here() -> None:
    away = _desired(target="stopped", placed_here=False, live_supported=True)
    step = _plan(away, "running", _shutting_down(), now=T0 + 10)
    _check(step, A.NONE, S.SHUTTING_DOWN, _shutting_down().shutdown_deadline)


@pytest.mark.parametrize(
    ("target", "state"),
    [("running", S.MIGRATING), ("stopped", S.STOPPED), ("disabled", S.DISABLED)],
)
def test_off_here_and_placed_elsewhere_is_released(target: str, state: VMState) -> None:
    away = _desired(target=target, placed_here=False)
    _check(_plan(away, "defined", _at(S.STOPPED), now=T0), A.RELEASE, state, None)
    _check(_plan(away, "crashed", _at(S.RUNNING), now=T0), A.RELEASE, state, None)


@pytest.mark.parametrize("state", list(VMState))
def test_absent_here_and_placed_elsewhere_changes_nothing(state: VMState) -> None:
    status = _at(state, deadline=T0 + 5, restart=2)
    step = _plan(_desired(placed_here=False, restart_request=3), "absent", status, now=T0)
    _check(step, A.NONE, state, T0 + 5)
    assert step.observed_restart == 2
    assert not step.changes(status)
    assert step.requeue_after is None


def test_force_stop_beats_migration() -> None:
    away = _desired(target="stopped", stop_mode="force", placed_here=False, live_supported=True)
    _check(_plan(away, "running", _at(S.RUNNING), now=T0), A.DESTROY, S.STOPPING, None)


# -- deletion --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("domain", "action", "state"),
    [
        ("running", A.DESTROY, S.STOPPING),
        ("paused", A.DESTROY, S.STOPPING),
        ("defined", A.UNDEFINE, S.STOPPED),
        ("crashed", A.UNDEFINE, S.STOPPED),
        ("absent", A.NONE, S.RUNNING),
    ],
)
def test_deleted_vm(domain: str, action: Action, state: VMState) -> None:
    gone = _desired(exists=False)
    step = _plan(gone, domain, _at(S.RUNNING), now=T0)
    _check(step, action, state, None)
    assert "deleted" in step.reason


def test_deleted_vm_sequence() -> None:
    gone = _desired(exists=False)
    status = _at(S.RUNNING)
    step = _plan(gone, "running", status, now=T0)
    status = _write(status, step, now=T0)
    step = _plan(gone, "defined", status, now=T0 + 1)
    _check(step, A.UNDEFINE, S.STOPPED, None)
    _check(_plan(gone, "absent", _write(status, step, now=T0 + 1), now=T0 + 2),
           A.NONE, S.STOPPED, None)  # fmt: skip


def test_deleted_during_a_migration_is_destroyed() -> None:
    gone = _desired(exists=False, placed_here=False, live_supported=True)
    step = _plan(gone, "running", _at(S.MIGRATING), now=T0, migrating_out=True)
    _check(step, A.DESTROY, S.STOPPING, None)


# -- unknown, stale and odd records -----------------------------------------------------------


def test_unknown_is_rederived_from_what_is_observed() -> None:
    _check(_plan(_desired(), "running", _at(S.UNKNOWN), now=T0), A.NONE, S.RUNNING, None)
    _check(_plan(_desired(), "absent", _at(S.UNKNOWN), now=T0), A.START, S.STARTING, None)
    stop = _desired(target="stopped")
    _check(_plan(stop, "defined", _at(S.UNKNOWN), now=T0), A.NONE, S.STOPPED, None)
    # A deadline left on an `unknown` status is not a shutdown in progress here.
    step = _plan(stop, "running", _at(S.UNKNOWN, deadline=T0 - 500), now=T0)
    _check(step, A.SHUTDOWN, S.SHUTTING_DOWN, T0 + TIMEOUT)


def test_stale_deadline_outside_a_shutdown_is_ignored() -> None:
    stop = _desired(target="stopped")
    step = _plan(stop, "running", _at(S.RUNNING, deadline=T0 - 500), now=T0)
    _check(step, A.SHUTDOWN, S.SHUTTING_DOWN, T0 + TIMEOUT)


def test_shutting_down_without_a_deadline_starts_a_fresh_one() -> None:
    step = _plan(_desired(target="stopped"), "running", _at(S.SHUTTING_DOWN), now=T0)
    _check(step, A.SHUTDOWN, S.SHUTTING_DOWN, T0 + TIMEOUT)


def test_derive_trigger_names_the_event() -> None:
    observed = Observed(domain=RunState.RUNNING)
    assert derive_trigger(_desired(), observed, _at(S.RUNNING), now=T0) == "observed_running"
    status = _shutting_down()
    stop = _desired(target="stopped")
    assert derive_trigger(stop, observed, status, now=T0 + 1) == "tick"
    assert derive_trigger(stop, observed, status, now=T0 + 999) == "deadline_passed"


def test_step_changes_compares_the_status_fields() -> None:
    status = _at(S.RUNNING)
    step = _plan(_desired(), "running", status, now=T0)
    assert not step.changes(status)
    assert step.changes(replace(status, state=S.STARTING))


@pytest.mark.parametrize(
    "fields",
    [
        {"target": "paused"},
        {"stop_mode": "gentle"},
        {"migration_method": "teleport"},
        {"shutdown_timeout": -1.0},
    ],
)
def test_desired_rejects_bad_values(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        _desired(**fields)


def test_observed_rejects_bad_domain_state() -> None:
    with pytest.raises(ValueError):
        Observed(domain="sleeping")  # type: ignore[arg-type]
