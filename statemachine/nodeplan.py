"""`plan_vm`: the whole decision of one reconcile of a VM on one node, pure.

Role: the node reconciler (`reconciler.vm.observe`) reduces what it read (the cache, libvirt,
its own migration jobs) to a `Situation`; `plan_vm` answers with ONE `VMPlan`, which the
actuator (`reconciler.vm.act`) carries out and records. Two tables decide:
- `GATES` (below): whether this node speaks for the VM at all (ownership: the owner znode,
  the node status names, a live migration in or out) and what it does when it does not;
- the lifecycle table (`statemachine.lifecycle`, through `statemachine.planner.plan`): the
  step itself, when the gate lets it through. `_settle` then adds the ownership operation
  the step needs, the live-migration slot, and the two-phase live migration (record the
  move with the owner claimed, then migrate).
The history that decides a step lives in the VM's status, not in the daemon's memory:
`left_here` (this node finished migrating the guest away, status not yet handed over),
`live_failed` (a live migration to the current target failed: fall back to shutdown) and
`failed_for_good` (libvirt refused the VM as such at this spec generation: held, with
nothing tried and nothing written, until the spec changes).
Tests enumerate the gate table over every owner, status node and run state.

Pure: no I/O, no clock reads; imports nothing of the project but `statemachine` and
`vocabulary`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum

from statemachine.data import Action, Desired, Observed, Recorded, Step
from statemachine.planner import plan
from vocabulary import RunState

OWNER_WAIT = 2.0  # look again this soon while another session holds the owner znode
HANDOVER_LOOK = 0.2  # a migrated domain still listed here: look again this soon


class Owner(StrEnum):
    """Who holds the VM's ephemeral owner znode, seen from this node."""

    NONE = "none"
    OURS = "ours"  # this node, created by this very session
    STALE = "stale"  # names this node, but another session (before a restart or reconnect)
    OTHER = "other"  # another node's


class Where(StrEnum):
    """The node the VM's status names as having it."""

    NOBODY = "nobody"
    HERE = "here"
    ELSEWHERE = "elsewhere"


class Gate(StrEnum):
    """What a reconcile does before (or instead of) a lifecycle step."""

    IGNORE = "ignore"  # a name ZooKeeper never had while we watched: not Herd's
    HANDOVER_WAIT = "handover-wait"  # migrated away; libvirt still lists it here
    TIDY = "tidy"  # not ours to run: remove a leftover definition, correct status
    INCOMING = "incoming"  # a live migration into here not finished: the source speaks
    HELD = "held"  # failed for good at this spec generation: nothing until the spec changes
    STEP = "step"  # ours: one lifecycle step


class OwnerOp(StrEnum):
    """The change to the owner znode that goes in one transaction with status."""

    NONE = "none"
    CLAIM = "claim"  # must be ours before the action (create it when free)
    RELEASE = "release"  # delete it when it is ours
    HOLD = "hold"  # up here: create it when free; off here: release it


@dataclass(frozen=True, kw_only=True)
class Situation:
    """Everything one reconcile decides on, reduced to values."""

    desired: Desired  # placed_here: placement names this node; live_supported: the driver can
    observed: Observed
    recorded: Recorded
    owner: Owner
    status_node: Where
    known: bool  # ZooKeeper has had the name while this daemon watched
    migrating_in: bool = False  # libvirt holds the domain paused for an incoming migration
    left_here: bool = False  # status: this node migrated it away live, not yet handed over
    live_failed: bool = False  # status: a live migration to the current target failed
    live_underway: bool = False  # status: this node moves it live to the current target
    failed_for_good: bool = False  # status: failed here, permanently, at this generation
    outbound: int = 0  # outgoing live migrations of this node in flight now
    slot_limit: int = 2  # at most this many at once

    @property
    def up(self) -> bool:
        return self.observed.up


@dataclass(frozen=True, kw_only=True)
class VMPlan:
    """The one thing to do: the gate, and for STEP the step and its owner change."""

    gate: Gate
    rule: str  # the row of the table that decided (for logs and tests)
    step: Step | None = None
    owner: OwnerOp = OwnerOp.NONE
    execute: bool = True  # False: record the step (status, owner) but do not act yet
    wants_slot: bool = False  # waits for an outgoing migration slot (woken when one ends)
    requeue_after: float | None = None


def _responsible(s: Situation) -> bool:
    """Running here; else never while status names another node; else owned by us; else
    placed here, existing, and not another node's."""
    if s.up:
        return True
    if s.status_node == Where.ELSEWHERE:
        return False
    if s.owner == Owner.OURS:
        return True
    if not s.desired.placed_here or not s.desired.exists:
        return False
    # An owner gone with its session is no release (a stopped daemon's guests run on):
    # status names the node that has it until that node says it is off.
    return s.owner in (Owner.NONE, Owner.STALE)


def _incoming(s: Situation) -> bool:
    """Up here and placed here, but the source still speaks for it: libvirt holds it paused
    for the migration (and the owner is not ours), or another node's session owns it."""
    if not s.up or not s.desired.exists or not s.desired.placed_here:
        return False
    return (s.migrating_in and s.owner != Owner.OURS) or s.owner == Owner.OTHER


Rule = tuple[str, Callable[[Situation], bool], Gate, float | None]

# The gate table: the first row whose condition holds decides (the last has none).
GATES: tuple[Rule, ...] = (
    ("unknown-name", lambda s: not s.desired.exists and not s.known, Gate.IGNORE, None),
    ("migrated-away-still-listed",
     lambda s: s.left_here and s.status_node == Where.HERE
     and s.observed.domain != RunState.ABSENT, Gate.HANDOVER_WAIT, HANDOVER_LOOK),
    ("not-responsible", lambda s: not _responsible(s), Gate.TIDY, None),
    ("incoming-migration", _incoming, Gate.INCOMING, OWNER_WAIT),
    ("failed-for-good", lambda s: s.failed_for_good and not s.up, Gate.HELD, None),
    ("responsible", lambda s: True, Gate.STEP, None),
)  # fmt: skip


def gate(s: Situation) -> Rule:
    """The row of `GATES` that decides `s`."""
    return next(row for row in GATES if row[1](s))


def plan_vm(s: Situation, *, now: float) -> VMPlan:
    """The one thing to do for one VM on this node now."""
    name, _, chosen, after = gate(s)
    if chosen != Gate.STEP:
        return VMPlan(gate=chosen, rule=name, requeue_after=after)
    desired = s.desired
    # Just migrated away: not ours to run here, whatever the placement says now (placed
    # back mid-migration), until handed over to the node that runs it.
    handing_over = s.left_here and s.status_node == Where.HERE
    if (handing_over and desired.placed_here) or (s.live_failed and desired.live_supported):
        desired = replace(desired, placed_here=desired.placed_here and not handing_over,
                          live_supported=desired.live_supported and not s.live_failed)
    step = plan(desired, s.observed, s.recorded, now=now)
    return _settle(s, step)


def _settle(s: Situation, step: Step) -> VMPlan:
    """The owner change the step needs; live migration in two phases, within the slots."""
    if step.action == Action.START:
        return _claiming(s, step, rule="start")
    if step.action == Action.MIGRATE_LIVE:
        if s.owner != Owner.OURS or not s.live_underway:
            # Phase one: say `migrating` (live, to the target) with the guest owned here.
            plan_ = _claiming(s, step, rule="migrate-record")
            return replace(plan_, execute=False, requeue_after=0.0) if plan_.step else plan_
        if s.outbound >= s.slot_limit:
            waiting = replace(step, action=Action.NONE, requeue_after=None,
                              reason=f"waiting for a migration slot ({s.outbound} in flight)")
            return VMPlan(gate=Gate.STEP, rule="migrate-slot-wait", step=waiting,
                          wants_slot=True)
        return VMPlan(gate=Gate.STEP, rule="migrate", step=step)
    if step.action in (Action.RELEASE, Action.UNDEFINE):
        return VMPlan(gate=Gate.STEP, rule="release", step=step, owner=OwnerOp.RELEASE)
    return VMPlan(gate=Gate.STEP, rule="settle", step=step, owner=OwnerOp.HOLD)


def _claiming(s: Situation, step: Step, *, rule: str) -> VMPlan:
    """A step that needs the guest owned here first: wait while another session owns it."""
    if s.owner in (Owner.OTHER, Owner.STALE):
        return VMPlan(gate=Gate.STEP, rule=f"{rule}-owner-wait", requeue_after=OWNER_WAIT)
    return VMPlan(gate=Gate.STEP, rule=rule, step=step, owner=OwnerOp.CLAIM)

