"""Randomized properties of `statemachine.plan` over seeded random inputs (no hypothesis).

Role: checks that `plan` is total (never raises, whatever the recorded status) and never
does what it must not: start a VM placed elsewhere, fake a live migration, extend a
shutdown deadline. No I/O; the seed makes every run the same.
"""

from __future__ import annotations

import itertools
import random

from statemachine import (
    TIMED_STATES,
    TRIGGERS,
    Action,
    Desired,
    Lifecycle,
    Observed,
    Recorded,
    Step,
    derive_trigger,
    plan,
)
from vocabulary import DesiredState, MigrationMethod, RunState, StopMode, VMState

TARGETS = tuple(DesiredState)
STOP_MODES = tuple(StopMode)
DOMAIN_STATES = tuple(RunState)
MIGRATION_METHODS = tuple(MigrationMethod)
NOW = 10_000.0
CASES = 1500


def _inputs(rng: random.Random) -> tuple[Desired, Observed, Recorded]:
    desired = Desired(
        target=rng.choice(TARGETS),
        stop_mode=rng.choice(STOP_MODES),
        restart_request=rng.randint(0, 3),
        placed_here=rng.random() < 0.5,
        migration_method=rng.choice(MIGRATION_METHODS),
        live_supported=rng.random() < 0.5,
        shutdown_timeout=rng.choice([0.0, 30.0, 180.0]),
        exists=rng.random() < 0.85,
    )
    observed = Observed(domain=rng.choice(DOMAIN_STATES), migrating_out=rng.random() < 0.15)
    recorded = Recorded(
        state=rng.choice(list(VMState)),
        shutdown_deadline=rng.choice([None, NOW - 50.0, NOW, NOW + 50.0]),
        observed_restart=rng.randint(0, 3),
        since=NOW - 100.0,
    )
    return desired, observed, recorded


def _check(desired: Desired, observed: Observed, recorded: Recorded, step: Step) -> None:
    if not desired.placed_here or not desired.exists:
        assert step.action is not Action.START
    if step.action is Action.MIGRATE_LIVE:
        assert desired.live_supported and not desired.placed_here and observed.up
    if step.action in (Action.SHUTDOWN, Action.DESTROY, Action.MIGRATE_LIVE):
        assert observed.up
    if step.action in (Action.START, Action.RELEASE, Action.UNDEFINE):
        assert not observed.up
    if not desired.exists:
        assert step.action in (Action.NONE, Action.DESTROY, Action.UNDEFINE)
    if step.action is Action.SHUTDOWN:
        assert step.shutdown_deadline == NOW + desired.shutdown_timeout
        assert step.requeue_after == desired.shutdown_timeout
    assert step.requeue_after is None or step.requeue_after >= 0
    assert step.reason


def _check_deadline_kept(recorded: Recorded, step: Step) -> None:
    """A shutdown in progress keeps its deadline: never moved, only cleared."""
    live = recorded.shutdown_deadline if recorded.state in TIMED_STATES else None
    if live is not None and step.shutdown_deadline is not None:
        assert step.shutdown_deadline == live
        assert step.action is not Action.SHUTDOWN


def _check_not_here(desired: Desired, observed: Observed, recorded: Recorded, step: Step) -> None:
    if observed.domain == "absent" and (not desired.placed_here or not desired.exists):
        assert step.action is Action.NONE
        assert not step.changes(recorded)


def test_plan_is_total_and_safe() -> None:
    rng = random.Random(20240601)
    seen: set[Action] = set()
    for _ in range(CASES):
        desired, observed, recorded = _inputs(rng)
        step = plan(desired, observed, recorded, now=NOW)
        context = (desired, observed, recorded, step)
        try:
            _check(desired, observed, recorded, step)
            _check_deadline_kept(recorded, step)
            _check_not_here(desired, observed, recorded, step)
        except AssertionError as error:
            raise AssertionError(context) from error
        seen.add(step.action)
    assert seen == set(Action)  # the sample reaches every action


def test_live_unsupported_never_migrates_live() -> None:
    rng = random.Random(7)
    for _ in range(CASES // 3):
        desired, observed, recorded = _inputs(rng)
        no_live = Desired(
            target=desired.target,
            stop_mode=desired.stop_mode,
            placed_here=False,
            migration_method=desired.migration_method,
            live_supported=False,
            exists=desired.exists,
        )
        step = plan(no_live, observed, recorded, now=NOW)
        assert step.action not in (Action.MIGRATE_LIVE, Action.START), (no_live, observed, step)


def _valid_pairs() -> set[tuple[str, str]]:
    """(trigger, source state name) pairs the machine accepts, read from a built machine."""
    machine = Lifecycle(
        Desired(target=DesiredState.RUNNING),
        Observed(domain=RunState.ABSENT),
        recorded=Recorded(state=VMState.STOPPED),
        now=NOW,
    ).machine
    return {
        (trigger.value, source)
        for trigger in TRIGGERS
        for source in machine.events[trigger].transitions
    }


def test_derived_trigger_is_valid_for_every_input() -> None:
    """Exhaustive over the input space: `plan` never fires an invalid trigger."""
    valid = _valid_pairs()
    desireds = [
        Desired(
            target=target,
            stop_mode=mode,
            restart_request=restart,
            placed_here=here,
            migration_method=method,
            live_supported=live,
            exists=exists,
        )
        for target, mode, restart, here, method, live, exists in itertools.product(
            TARGETS, STOP_MODES, (0, 1), (True, False), MIGRATION_METHODS, (True, False),
            (True, False),
        )
    ]  # fmt: skip
    observeds = [
        Observed(domain=domain, migrating_out=out)
        for domain, out in itertools.product(DOMAIN_STATES, (False, True))
    ]
    recordeds = [
        Recorded(state=state, shutdown_deadline=deadline)
        for state, deadline in itertools.product(VMState, (None, NOW - 1.0, NOW + 1.0))
    ]
    count = 0
    for desired, observed, recorded in itertools.product(desireds, observeds, recordeds):
        trigger = derive_trigger(desired, observed, recorded, now=NOW)
        assert (trigger.value, recorded.state.name) in valid, (desired, observed, recorded)
        count += 1
    assert count == 86_400
