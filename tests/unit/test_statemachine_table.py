"""Every (state, trigger) pair of the lifecycle machine against a table written out here.

Role: pins the transition table of `statemachine.lifecycle`; a change to the machine must
change this file too. No I/O.
"""

from __future__ import annotations

import pytest
from transitions import MachineError

from statemachine import (
    STATES,
    TRANSITIONS,
    TRIGGERS,
    Action,
    Desired,
    Lifecycle,
    Observed,
    Recorded,
    Trigger,
)
from vocabulary import RunState, VMState

# Columns, in this order (checked against STATES below).
COLUMNS = (
    "stopped", "starting", "running", "shutting-down", "stopping",
    "restarting", "migrating", "failed", "disabled", "unknown",
)  # fmt: skip

ST, SG, RU, SD, SP = "stopped", "starting", "running", "shutting-down", "stopping"
RS, MG, FA, DI, UN = "restarting", "migrating", "failed", "disabled", "unknown"
XX = "invalid"  # the trigger raises transitions.MachineError from that state

# Destination per source state, with desired.target == "running". Columns: ST stopped,
# SG starting, RU running, SD shutting-down, SP stopping, RS restarting, MG migrating,
# FA failed, DI disabled, UN unknown.
EXPECTED: dict[str, tuple[str, ...]] = {
    #                          ST  SG  RU  SD  SP  RS  MG  FA  DI  UN
    "observed_running":       (RU, RU, RU, RU, RU, RU, RU, RU, RU, RU),
    "want_running":           (SG, SG, SG, SG, SG, SG, SG, SG, SG, SG),
    "want_restart":           (RS, RS, RS, RS, RS, RS, RS, RS, RS, RS),
    "want_stopped_graceful":  (SD, SD, SD, SD, SD, SD, SD, SD, SD, SD),
    "want_stopped_force":     (SP, SP, SP, SP, SP, SP, SP, SP, SP, SP),
    "want_disable":           (SD, SD, SD, SD, SD, SD, SD, SD, SD, SD),
    "tick":                   (XX, XX, XX, SD, XX, RS, MG, XX, XX, XX),
    "deadline_passed":        (XX, XX, XX, SP, SP, RS, MG, XX, XX, XX),
    "observed_off":           (ST, ST, ST, ST, ST, ST, ST, ST, ST, ST),
    "want_migrate_live":      (MG, MG, MG, MG, MG, MG, MG, MG, MG, MG),
    "want_migrate_shutdown":  (MG, MG, MG, MG, MG, MG, MG, MG, MG, MG),
    "migration_in_flight":    (MG, MG, MG, MG, MG, MG, MG, MG, MG, MG),
    "live_unsupported":       (FA, FA, FA, FA, FA, FA, FA, FA, FA, FA),
    "release":                (MG, MG, MG, MG, MG, MG, MG, MG, MG, MG),
    "deleted":                (SP, SP, SP, SP, SP, SP, SP, SP, SP, SP),
    "undefine":               (ST, ST, ST, ST, ST, ST, ST, ST, ST, ST),
    "not_here":               (ST, SG, RU, SD, SP, RS, MG, FA, DI, UN),
}  # fmt: skip

# The guarded triggers under the other targets (rows that differ from EXPECTED only).
EXPECTED_BY_TARGET: dict[tuple[str, str], tuple[str, ...]] = {
    ("stopped", "observed_off"):  (ST, ST, ST, ST, ST, ST, ST, ST, ST, ST),
    ("stopped", "release"):       (ST, ST, ST, ST, ST, ST, ST, ST, ST, ST),
    ("disabled", "observed_off"): (DI, DI, DI, DI, DI, DI, DI, DI, DI, DI),
    ("disabled", "release"):      (DI, DI, DI, DI, DI, DI, DI, DI, DI, DI),
}  # fmt: skip


def _cases(target: str) -> list[tuple[str, str, str]]:
    table = dict(EXPECTED)
    for (row_target, trigger), row in EXPECTED_BY_TARGET.items():
        if row_target == target:
            table[trigger] = row
    return [
        (trigger, source, dest)
        for trigger, row in table.items()
        for source, dest in zip(COLUMNS, row, strict=True)
    ]


def _lifecycle(target: str, source: str, deadline: float | None) -> Lifecycle:
    return Lifecycle(
        Desired(target=target, restart_request=1),  # type: ignore[arg-type]
        Observed(domain=RunState.RUNNING),
        recorded=Recorded(state=VMState(source), shutdown_deadline=deadline, since=1.0),
        now=100.0,
    )


def _names(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    assert isinstance(value, list)
    assert all(isinstance(name, str) for name in value)
    return [str(name) for name in value]


def test_the_expected_table_covers_every_state_and_trigger() -> None:
    assert tuple(state.value for state in STATES) == COLUMNS
    assert set(EXPECTED) == {trigger.value for trigger in TRIGGERS}
    assert len(EXPECTED) * len(COLUMNS) == 170


@pytest.mark.parametrize("deadline", [None, 250.0, 50.0])
@pytest.mark.parametrize("target", ["running", "stopped", "disabled"])
def test_every_state_and_trigger(target: str, deadline: float | None) -> None:
    for trigger, source, dest in _cases(target):
        machine = _lifecycle(target, source, deadline)
        if dest == XX:
            with pytest.raises(MachineError):
                machine.fire(Trigger(trigger))
            assert machine.state == VMState(source), (trigger, source)
            continue
        machine.fire(Trigger(trigger))
        assert machine.state == VMState(dest), (target, trigger, source)
        step = machine.step()
        assert step.state == VMState(dest)
        assert step.trigger == trigger
        assert step.reason, (trigger, source)


def test_invalid_pairs_are_only_the_shutdown_timer_outside_a_shutdown() -> None:
    invalid = {(t, s) for t, s, d in _cases("running") if d == XX}
    timed = {SD, RS, MG, SP}
    assert invalid == {
        *(("tick", s) for s in COLUMNS if s not in {SD, RS, MG}),
        *(("deadline_passed", s) for s in COLUMNS if s not in timed),
    }


def test_table_rows_name_existing_callbacks_and_conditions() -> None:
    for row in TRANSITIONS:
        assert Trigger(row["trigger"]) in TRIGGERS
        for names in (row.get("after"), row.get("conditions"), row.get("unless")):
            for name in _names(names):
                assert callable(getattr(Lifecycle, name)), (row, name)


def test_each_trigger_has_a_fallback_row_without_conditions() -> None:
    # Conditions only pick among destinations: the last row of every trigger always fires.
    last: dict[str, dict[str, object]] = {}
    for row in TRANSITIONS:
        last[row["trigger"]] = dict(row)
    assert set(last) == {trigger.value for trigger in TRIGGERS}
    assert all("conditions" not in row and "unless" not in row for row in last.values())


def test_machine_is_built_without_auto_transitions() -> None:
    machine = _lifecycle("running", "running", None)
    assert not hasattr(machine, "to_stopped")
    assert not hasattr(machine, "to_STOPPED")
    assert machine.machine.auto_transitions is False
    assert machine.machine.ignore_invalid_triggers is False


def test_fresh_lifecycle_records_nothing_until_fired() -> None:
    machine = _lifecycle("running", "shutting-down", 250.0)
    step = machine.step()
    assert (step.action, step.state, step.shutdown_deadline) == (
        Action.NONE,
        VMState.SHUTTING_DOWN,
        250.0,
    )


def test_the_observed_states_match_the_schemas() -> None:
    """`schemas` and `statemachine` may not import each other; their state lists agree."""
    from schemas.common import Choice
    from schemas.vm import VMStatusSchema

    field = VMStatusSchema().fields["state"]
    assert isinstance(field, Choice)
    assert list(field.choices) == [s.value for s in VMState]
