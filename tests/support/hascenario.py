"""The HA scenario runner (issue #17): one scenario file (tests/scenarios/*.yaml, loaded and
checked by `tests.support.hascenario_spec`) played on a real cluster.

The cluster is the scenario's nodes as coordinator daemons in this process, each on a
libvirt test-driver node file of its memory and CPUs (as in
tests/integration/test_controllers.py), against the test's ZooKeeper root. The first
node is started alone and becomes the primary before the others start, so the primary
and the order of succession are the order of `nodes`. Each node's fence agent is a
`command` that records the node and exits 0 (`fence: ok`, in `<dir>/fenced`) or 1
(`fence: fail`). The config gets a fence timeout of 1 s unless the scenario sets one.

Then the rules and the VMs are written (the VMs in one transaction, as `apply` does); the
VMs placed on a node and desired running must run there before step 1. Steps run in
order: an action writes what herd-api would (node spec, VM spec, a rule, the config) or
acts on a daemon (`crash`: it dies without the clean stop; `boot`: a new daemon for that
node); an expectation waits until it holds (`tests.support.hascenario_world`). A failure
names the scenario, the step and what the cluster looked like. Called by
tests/integration/test_ha_scenarios.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from reconciler.config import NodeConfig
from store import txn, vms
from store.client import Store
from store.codec import Doc
from store.objects import with_spec
from tests.integration.test_controllers import set_node
from tests.integration.test_ha_rules import rule
from tests.support.daemons import RunningDaemon
from tests.support.hascenario_spec import Scenario, VMSpec, load, vm_spec
from tests.support.hascenario_world import (
    CHECKS,
    NotMet,
    Watching,
    World,
    depends,
    read_world,
    wait_for,
)
from tests.support.libvirt_nodes import simple_domain_xml, write_node_file

__all__ = ["ScenarioRun", "load", "run_scenario"]

FENCE_TIMEOUT = 1.0  # seconds; the scenario's config may say otherwise
FENCE_AGENT = "#!/bin/sh\necho \"$HERD_NODE\" >> {log}\nexit {code}\n"
# The spec change of each state verb, as herd-api's POST /vm/{vm}/state makes it.
VERBS = {"start": {"state": "running"}, "stop": {"state": "stopped", "stopMode": "force"},
         "disable": {"state": "disabled", "stopMode": "graceful"}}


def fence_agent(directory: Path, *, ok: bool) -> str:
    """A fence agent that appends the node to `fenced` (ok) or `fence-failed` and exits
    0 or 1."""
    script = directory / ("fence-ok" if ok else "fence-fail")
    log = directory / ("fenced" if ok else "fence-failed")
    script.write_text(FENCE_AGENT.format(log=log, code=0 if ok else 1))
    script.chmod(0o755)
    return str(script)


def vm_doc(vm: VMSpec) -> Doc:
    """The VM object as herd-api stores it (see test_controllers.define)."""
    return {"apiVersion": "herd/v1", "kind": "VM",
            "metadata": {"name": vm.name, "generation": 1},
            "spec": {"state": vm.state, "node": vm.node, "shutdownTimeout": 5,
                     "meta": {"limits": list(vm.limits), "selector": vm.selector,
                              "autorestart": vm.autorestart, "migrationMethod": "any"},
                     "xml": simple_domain_xml(vm.name, memory_mib=vm.memory, vcpus=vm.vcpus)}}


class ScenarioRun:
    """One scenario on its own cluster: `start`, `run`, then always `close`."""

    def __init__(self, scenario: Scenario, *, store: Store, zk_hosts: str, zk_root: str,
                 directory: Path) -> None:
        self.sc, self.store, self.dir = scenario, store, directory
        self.fence_log = directory / "fenced"
        self.configs = self._configs(zk_hosts, zk_root)
        self.daemons: dict[str, RunningDaemon] = {}
        self.retired: list[RunningDaemon] = []  # crashed daemons, closed at the end
        self.vm_names = [v.name for v in scenario.vms] + [
            s.args["vm"]["name"] for s in scenario.steps if s.action == "define"]
        self.actions: dict[str, Callable[[dict[str, Any]], Awaitable[None]]] = {
            "flush": self._flush, "ready": self._ready, "crash": self._crash,
            "boot": self._boot, "maintenance": self._maintenance, "config": self._config,
            "rule-add": self._rule_add, "rule-delete": self._rule_delete,
            "define": self._define,
            **{verb: partial(self._verb, verb) for verb in VERBS}}

    def _configs(self, zk_hosts: str, zk_root: str) -> dict[str, NodeConfig]:
        ok, fail = fence_agent(self.dir, ok=True), fence_agent(self.dir, ok=False)
        fence = {"default": {"agent": "command", "command": ok},
                 "nodes": {n.name: {"agent": "command", "command": fail}
                           for n in self.sc.nodes if n.fence == "fail"}}
        base = NodeConfig(name="", zk_hosts=zk_hosts, zk_root=zk_root, zk_timeout=4.0,
                          libvirt_uri="", coordinator=True, address=None,
                          initial_domain_state="ready", status_interval=0.5,
                          resync_interval=30.0, workers=4, log_level="INFO", fence=fence)
        return {n.name: replace(base, name=n.name, libvirt_uri=write_node_file(
            self.dir, n.name, cpus=n.cpus, memory_mib=n.memory)) for n in self.sc.nodes}

    # --- the cluster --------------------------------------------------------------------

    async def start(self) -> None:
        """Config, daemons (the first one primary), rules, VMs, and their initial state."""
        config = {"fenceTimeout": FENCE_TIMEOUT, **self.sc.config}
        await self._write(self.store.update, self.store.paths.config,
                          lambda d: {**d, **config})
        first, *rest = self.configs
        await self._start_daemon(first)
        await self._expect("the first node is primary", "expect-primary", first)
        for name in rest:
            await self._start_daemon(name)
        await self._expect("every node is up and ready", "expect-node", {
            n: {"daemonState": "run", "domainState": "ready"} for n in self.configs})
        for r in self.sc.rules:
            await self._write(rule, self.store, r.name, r.kind, *r.vms, strict=r.strict)
        # All in one transaction, as `herdctl apply -f` writes them: the primary places
        # them as one batch (one at a time, a VM placed before its partner was defined
        # would decide the node for both).
        await self._write(txn.commit, self.store, [
            op for vm in self.sc.vms for op in vms.define_ops(self.store.paths, vm_doc(vm))])
        await self._expect("the VMs placed on a node run there", "expect", {
            v.name: {"node": v.node, "state": "running"} for v in self.sc.vms
            if v.node is not None and v.state == "running"})

    async def _start_daemon(self, name: str) -> None:
        daemon = RunningDaemon(self.configs[name])
        self.daemons[name] = daemon
        await daemon.start()

    async def close(self) -> None:
        """Every daemon stopped and closed, newest first: the primary (started first)
        stops last, so no other takes office meanwhile. The first failure is raised."""
        failures: list[BaseException] = []
        for daemon in [*reversed(self.daemons.values()), *self.retired]:
            try:
                await daemon.stop()
                await daemon.close()
            except Exception as e:
                failures.append(e)
        if failures:
            raise failures[0]

    async def run(self) -> None:
        for step in self.sc.steps:
            if step.action in CHECKS:
                await self._expect(f"step {step.number}: {step.text}", step.action, step.args,
                                   timeout=step.timeout)
            else:
                await self.actions[step.action](step.args)

    # --- expectations -------------------------------------------------------------------

    async def _expect(self, what: str, kind: str, value: Any, *, timeout: float = 20.0
                      ) -> World:
        docs, folders = depends(self.store, kind, value, self.vm_names)
        watching = Watching(self.store, asyncio.Event())
        watching.watch(docs, folders)
        nodes, check = list(self.configs), CHECKS[kind]

        def read() -> World:
            return read_world(self.store, self.vm_names, nodes, self.fence_log)
        try:
            return await wait_for(lambda world: check(value, world), read, watching, timeout)
        except NotMet as e:
            raise AssertionError(f"scenario {self.sc.name}, {what}: did not hold within "
                                 f"{timeout:g} s: {e}") from None

    # --- actions (what herd-api or the world would do) ------------------------------------

    async def _write(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        await asyncio.to_thread(fn, *args, **kwargs)

    async def _flush(self, args: dict[str, Any]) -> None:
        await self._write(set_node, self.store, args["node"], "flushed")

    async def _ready(self, args: dict[str, Any]) -> None:
        await self._write(set_node, self.store, args["node"], "ready")

    async def _crash(self, args: dict[str, Any]) -> None:
        daemon = self.daemons.pop(args["node"])
        self.retired.append(daemon)
        await daemon.crash()

    async def _boot(self, args: dict[str, Any]) -> None:
        """A new daemon for the node (after a crash: its guests are gone with the old one)."""
        await self._start_daemon(args["node"])

    async def _maintenance(self, args: dict[str, Any]) -> None:
        await self._config({"set": {"maintenance": args["enabled"]}})

    async def _config(self, args: dict[str, Any]) -> None:
        await self._write(self.store.update, self.store.paths.config,
                          lambda d: {**d, **args["set"]})

    async def _rule_add(self, args: dict[str, Any]) -> None:
        await self._write(rule, self.store, args["name"], args["kind"], *args["vms"],
                          strict=args.get("strict", True))

    async def _rule_delete(self, args: dict[str, Any]) -> None:
        await self._write(self.store.delete, self.store.paths.rule(args["name"]))

    async def _define(self, args: dict[str, Any]) -> None:
        doc = vm_doc(vm_spec("define", args["vm"]))
        await self._write(txn.commit, self.store, vms.define_ops(self.store.paths, doc))

    async def _verb(self, verb: str, args: dict[str, Any]) -> None:
        def modify(doc: Doc) -> Doc | None:
            return with_spec(doc, **VERBS[verb])
        await self._write(self.store.update, self.store.paths.vm(args["vm"]), modify)


async def run_scenario(scenario: Scenario, *, store: Store, zk_hosts: str, zk_root: str,
                       directory: Path) -> None:
    """Play `scenario` on a cluster of its own; AssertionError at the first step that fails."""
    run = ScenarioRun(scenario, store=store, zk_hosts=zk_hosts, zk_root=zk_root,
                      directory=directory)
    try:
        await run.start()
        await run.run()
    finally:
        await run.close()
