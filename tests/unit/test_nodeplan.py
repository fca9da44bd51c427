"""`statemachine.nodeplan`: the gate table and the plan, enumerated (no I/O).

Every combination of owner, status node, run state, placement, existence and migration
history is planned: each lands on exactly one row of `GATES`, every row is reached, and
the invariants of ownership hold for all of them (nothing is started, moved or released
unless the owner znode is, or becomes, this session's). The destination's rules for a
guest arriving by live migration (moved here from the reconciler's former `_incoming`)
are spelled out case by case.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from statemachine import Action, Desired, Observed, Recorded
from statemachine.nodeplan import (
    GATES,
    HANDOVER_LOOK,
    OWNER_WAIT,
    Gate,
    Owner,
    OwnerOp,
    Situation,
    VMPlan,
    Where,
    gate,
    plan_vm,
)
from vocabulary import UP_RUN_STATES, DesiredState, RunState, VMState

RUN_STATES = (RunState.ABSENT, RunState.DEFINED, RunState.RUNNING, RunState.PAUSED)


def situation(*, owner: Owner = Owner.NONE, domain: RunState = RunState.RUNNING,
              placed_here: bool = True, **fields: Any) -> Situation:
    desired = fields.pop("desired", None) or Desired(
        target=DesiredState.RUNNING, placed_here=placed_here, live_supported=True)
    base: dict[str, Any] = {
        "desired": desired, "observed": Observed(domain=domain),
        "recorded": Recorded(state=VMState.RUNNING), "owner": owner,
        "status_node": Where.NOBODY, "known": True}
    return Situation(**(base | fields))


def every_situation() -> Iterator[Situation]:
    wants = (DesiredState.RUNNING, DesiredState.STOPPED)
    for owner, where, domain, target in itertools.product(Owner, Where, RUN_STATES, wants):
        for placed, exists, known, migrating_in, left, underway, held in itertools.product(
                (True, False), repeat=7):
            yield situation(
                owner=owner, status_node=where, domain=domain, known=known,
                migrating_in=migrating_in and domain in UP_RUN_STATES, left_here=left,
                live_underway=underway, failed_for_good=held,
                desired=Desired(target=target, placed_here=placed, exists=exists,
                                live_supported=True))


ALL = tuple(every_situation())


def test_each_situation_lands_on_the_first_row_that_holds_and_every_row_is_reached() -> None:
    reached = set()
    for s in ALL:
        name = gate(s)[0]
        first = next(row[0] for row in GATES if row[1](s))
        assert name == first
        reached.add(name)
    assert reached == {row[0] for row in GATES}


def ownership_violation(s: Situation) -> str | None:
    """What the plan of `s` breaks of the ownership rules (None: nothing)."""
    p = plan_vm(s, now=0.0)
    if p.gate != Gate.STEP:
        return None if p.step is None and p.owner == OwnerOp.NONE else "a gate with a step"
    if not s.up and s.owner == Owner.OTHER:
        return "a step for a guest another node owns and that is not up here"
    if p.step is None:  # waiting for another session's owner
        ok = s.owner in (Owner.OTHER, Owner.STALE) and p.requeue_after == OWNER_WAIT
        return None if ok else "a wait without another session's owner"
    if (p.step.action == Action.START or not p.execute) and not (
            p.owner == OwnerOp.CLAIM and s.owner in (Owner.NONE, Owner.OURS)):
        return "a start or a recorded migration without claiming a free owner"
    if p.step.action == Action.MIGRATE_LIVE and p.execute and not (
            s.owner == Owner.OURS and s.live_underway):
        return "a live migration not first recorded with the guest owned here"
    if p.step.action in (Action.START, Action.SHUTDOWN) and not s.desired.exists:
        return "a start or shutdown of a deleted VM"
    return None


def test_no_situation_breaks_the_ownership_rules() -> None:
    broken = [(s, why) for s in ALL if (why := ownership_violation(s)) is not None]
    assert broken == []


def test_a_name_zookeeper_never_had_is_left_alone() -> None:
    s = situation(known=False, desired=Desired(target=DesiredState.RUNNING, exists=False))
    assert plan_vm(s, now=0.0) == VMPlan(gate=Gate.IGNORE, rule="unknown-name")


# --- the destination of a live migration (formerly `VMReconciler._incoming`) ------------------

def test_paused_for_an_incoming_migration_is_not_ours_even_unowned() -> None:
    for owner in (Owner.NONE, Owner.OTHER):
        s = situation(owner=owner, domain=RunState.PAUSED, migrating_in=True)
        assert plan_vm(s, now=0.0).gate == Gate.INCOMING


def test_running_here_while_the_source_owns_it_is_still_incoming() -> None:
    plan = plan_vm(situation(owner=Owner.OTHER), now=0.0)
    assert (plan.gate, plan.requeue_after) == (Gate.INCOMING, OWNER_WAIT)


def test_running_and_released_is_ours_to_claim() -> None:
    plan = plan_vm(situation(owner=Owner.NONE), now=0.0)
    assert (plan.gate, plan.owner) == (Gate.STEP, OwnerOp.HOLD)
    assert plan_vm(situation(owner=Owner.NONE, placed_here=False), now=0.0).gate == Gate.STEP
    absent = situation(owner=Owner.OTHER, domain=RunState.ABSENT)
    assert plan_vm(absent, now=0.0).gate == Gate.TIDY


# --- the source of a live migration -----------------------------------------------------------

def moving(**fields: Any) -> Situation:
    return situation(placed_here=False, status_node=Where.HERE, **fields)


def test_a_live_migration_is_recorded_with_the_guest_owned_before_it_moves() -> None:
    first = plan_vm(moving(owner=Owner.NONE), now=0.0)
    assert first.step is not None and first.step.action == Action.MIGRATE_LIVE
    assert (first.execute, first.owner, first.requeue_after) == (False, OwnerOp.CLAIM, 0.0)
    second = plan_vm(moving(owner=Owner.OURS, live_underway=True), now=0.0)
    assert second.execute and second.step is not None
    assert second.step.action == Action.MIGRATE_LIVE and second.owner == OwnerOp.NONE


def test_over_the_slot_limit_a_migration_waits_and_says_so() -> None:
    plan = plan_vm(moving(owner=Owner.OURS, live_underway=True, outbound=2), now=0.0)
    assert plan.wants_slot and plan.step is not None and plan.step.action == Action.NONE
    assert plan.step.reason.startswith("waiting for a migration slot (2 in flight")


def test_after_a_failed_live_migration_status_says_shutdown_and_start() -> None:
    plan = plan_vm(moving(owner=Owner.OURS, live_failed=True), now=0.0)
    assert plan.step is not None and plan.step.action == Action.SHUTDOWN
    assert plan.step.state == VMState.MIGRATING


def test_migrated_away_but_still_listed_waits_then_hands_over() -> None:
    listed = plan_vm(moving(owner=Owner.OURS, left_here=True), now=0.0)
    assert (listed.gate, listed.requeue_after) == (Gate.HANDOVER_WAIT, HANDOVER_LOOK)
    # Gone here, placed back here meanwhile: not started here; the owner is let go.
    gone = plan_vm(moving(owner=Owner.OURS, left_here=True, domain=RunState.ABSENT,
                          desired=Desired(target=DesiredState.RUNNING, placed_here=True)), now=0.0)
    assert gone.step is not None and gone.step.action == Action.NONE
    assert gone.owner == OwnerOp.HOLD and gone.gate == Gate.STEP


def test_a_vm_failed_for_good_is_held_until_its_spec_changes() -> None:
    held = plan_vm(situation(domain=RunState.ABSENT, failed_for_good=True), now=0.0)
    assert (held.gate, held.step, held.requeue_after) == (Gate.HELD, None, None)
    # Running here after all (say, started by hand): reconciled as usual.
    assert plan_vm(situation(failed_for_good=True), now=0.0).gate == Gate.STEP
    # Placed elsewhere meanwhile: not ours; tidied, not held.
    moved = situation(domain=RunState.ABSENT, failed_for_good=True, placed_here=False)
    assert plan_vm(moved, now=0.0).gate == Gate.TIDY
