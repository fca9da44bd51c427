"""Act: carry out one `VMPlan` of `statemachine.nodeplan`, then record it once.

`Actuator.carry_out(observation, plan)` does what the plan says and nothing else:
- a wait (handover, incoming migration, another session's owner): nothing, look again;
- a tidy (not ours to run): remove a shut-off definition left here, and say off a VM that
  status still places here although it is gone and unowned;
- a step: start (status `starting` with the owner claimed, in one transaction, BEFORE
  libvirt starts it: never two nodes; volumes of another node's local pool are copied
  here first, `reconciler.vm.fetch`), shutdown, destroy, undefine (then status with the
  owner released), or any other step (act, then status with the owner held or released);
  a live migration goes to `reconciler.vm.migration`.
A libvirt failure is recorded in status (state failed, the error as reason) and raised
again, so the work queue retries with capped backoff; a permanent one (invalid XML, an
unsupported configuration) is recorded once and is terminal (see `act`). Returns the
work queue's `Result`. Called by `reconciler.vm.reconcile.VMReconciler`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from reconciler.libvirt import Hypervisor, HypervisorError
from reconciler.libvirt.consolexml import console_log_path, with_console_log
from reconciler.runtime.workqueue import Result, TerminalError, brief
from reconciler.vm.fetch import DiskFetcher
from reconciler.vm.migration import Migrator
from reconciler.vm.observe import Observation
from reconciler.vm.record import StatusWriter
from statemachine import Action, Step
from statemachine.nodeplan import OWNER_WAIT, Gate, OwnerOp, VMPlan
from store import restarts, txn
from store.codec import Doc
from store.errors import AlreadyExists
from vocabulary import UP_RUN_STATES as UP

log = logging.getLogger(__name__)


class Actuator:
    """Carries out the plans of one node's VM reconciler."""

    def __init__(self, writer: StatusWriter, hv: Hypervisor, *, migrator: Migrator,
                 fetcher: DiskFetcher, console_log_dir: str | None = None,
                 departed: Callable[[str, str], None] = lambda _vm, _node: None) -> None:
        self.writer = writer
        self.console_log_dir = console_log_dir  # None: the XML's serial devices as given
        self.departed = departed
        self.hv = hv
        self.migrator = migrator
        self.fetcher = fetcher
        self.node = writer.node

    async def carry_out(self, obs: Observation, plan: VMPlan) -> Result:
        if plan.gate == Gate.TIDY:
            await self._tidy(obs)
            return Result.done()
        step = plan.step
        if plan.gate != Gate.STEP or step is None:
            return _after(plan.requeue_after)  # ignore, or wait: nothing to do now
        if plan.wants_slot:
            self.migrator.wait_for_slot(obs.name)
        if step.action == Action.START or not plan.execute:
            return await self._claim_then_act(obs, plan, step)
        if step.action == Action.MIGRATE_LIVE:
            return await self.migrator.migrate(obs, step)
        return await self._act_then_record(obs, plan, step)

    async def _claim_then_act(self, obs: Observation, plan: VMPlan, step: Step) -> Result:
        """Own it and record the step in one transaction, then act (a start) or leave the
        action to the next reconcile (the first phase of a live migration)."""
        doc = self.writer.doc_after(obs, step)
        if step.action == Action.START and plan.execute:
            counted = await self._count_restart(obs, doc)
            if counted is None:
                return Result.done()  # given up here: the primary relocates it
            doc = counted
        claim = self.writer.owner_ops(obs, OwnerOp.CLAIM, up=True)
        try:
            await self.writer.write(obs, doc, with_ops=claim)
        except AlreadyExists:
            return Result.after(OWNER_WAIT)
        if plan.execute:
            await self.act(obs, step)
        return _after(plan.requeue_after if not plan.execute else step.requeue_after)

    async def _count_restart(self, obs: Observation, doc: Doc) -> Doc | None:
        """A start's status with the restart counted, if it follows a failure here of the
        same spec generation (a user's start, a new desired state, forgets the old ones);
        None when `maxRestart` is used up: the VM is given up here (failed for this
        generation, `relocate` set, owner let go)."""
        vm, now = obs.vm, self.writer.clock()
        same_spec = vm.status_doc.get("observedGeneration") == vm.generation
        if not same_spec or not restarts.is_restart(
                vm.state, obs.domain.state if obs.domain else None,
                status_here=vm.status_node == self.node):
            return {**doc, "restarts": [], "relocate": None}
        if restarts.budget_left(vm.status_doc, max_restart=vm.max_restart, now=now):
            return {**restarts.with_restart(doc, now=now), "relocate": None}
        used = len(restarts.recent(vm.status_doc.get("restarts") or [], now=now))
        reason, relocate = restarts.gave_up(self.node, used)
        await self.writer.failed_for_good(obs, reason, relocate=relocate, node=self.node)
        log.warning("%s: %s", obs.name, reason)
        return None

    async def _act_then_record(self, obs: Observation, plan: VMPlan, step: Step) -> Result:
        """Act, then write status with the owner claimed (running here, unowned: adopted, or
        arrived by live migration) or released (off here) in the same transaction."""
        up = obs.domain is not None and obs.domain.state in UP
        ops = self.writer.owner_ops(obs, plan.owner, up=up)
        await self.act(obs, step)
        try:
            if not await self.writer.write(obs, self.writer.doc_after(obs, step), with_ops=ops,
                                           also=await self.writer.volume_handover(obs)):
                ops = []  # the owner change was ours already
        except AlreadyExists:  # another session owns it
            return Result.after(OWNER_WAIT)
        if ops:
            log.info("%s: %s the owner znode (domain %s here; %s)", obs.name,
                     "claimed" if isinstance(ops[0], txn.Create) else "released",
                     obs.domain.state if obs.domain else "absent", step.reason)
        if any(isinstance(op, txn.Create) for op in ops):
            await self.migrator.record_arrival(obs)
        return _after(step.requeue_after)

    async def act(self, obs: Observation, step: Step) -> None:
        """The step's libvirt action; a failure is recorded in status and raised again. A
        permanent one (libvirt refuses the VM as such) is recorded once, with the owner let
        go, and raised as terminal: the plan holds the VM until its spec changes."""
        try:
            await self._do(obs, step)
        except HypervisorError as e:
            if not obs.vm.exists:
                raise
            if not e.permanent:
                await self.writer.failed(obs.name, step, e)
                raise
            await self.writer.failed_for_good(obs, f"{step.action} failed: {e}")
            raise TerminalError(f"{obs.name}: {step.action} refused: {brief(e)}") from None

    async def _do(self, obs: Observation, step: Step) -> None:
        name = obs.name
        if step.action == Action.START:
            await self.fetcher.fetch(obs)  # its volumes on another node's local pool
            await self.hv.define(self._with_console_log(obs.vm.xml, name))
            await self.hv.start(name)
        elif step.action == Action.SHUTDOWN:
            await self.hv.shutdown(name)
        elif step.action == Action.DESTROY:
            await self.hv.destroy(name)
        elif step.action in (Action.RELEASE, Action.UNDEFINE):
            await self.hv.undefine(name)
        if step.action != Action.NONE:
            log.info("%s: %s (%s)", name, step.action, step.reason)

    def _with_console_log(self, xml: str, name: str) -> str:
        if self.console_log_dir is None:
            return xml
        return with_console_log(xml, console_log_path(self.console_log_dir, name))

    async def _tidy(self, obs: Observation) -> None:
        """Not ours to run: a shut-off leftover definition here is removed; a VM that status
        still places here, gone and unowned (lost with a restart), is said off."""
        vm = obs.vm
        if obs.domain is not None and obs.target != self.node:
            await self.hv.undefine(vm.name)
            log.info("%s: removed the shut-off definition left here", vm.name)
            if obs.target is not None:
                self.departed(vm.name, str(obs.target))
        if vm.exists and vm.owner is None and vm.status_node == self.node:
            await self.writer.say_off_here(vm)


def _after(seconds: float | None) -> Result:
    return Result.done() if seconds is None else Result.after(seconds)
