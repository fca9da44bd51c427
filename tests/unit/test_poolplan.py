"""The storage-pool planner (issue #15): every combination of a pool's kind and what
libvirt has lands on the row its first fault calls for, every row is reached, and a
simulation of the steps converges; removal touches only Herd's pools; the libvirt XML."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
from defusedxml import ElementTree

from reconciler.libvirt.pools import pool_xml
from statemachine.poolplan import (
    ROWS,
    LibvirtPool,
    PoolAction,
    PoolSpec,
    plan_pool,
    plan_removal,
    pool_uuid,
)
from vocabulary import PoolKind

SPECS = {
    PoolKind.LOCAL: PoolSpec(name="p", kind=PoolKind.LOCAL, path="/srv/p"),
    PoolKind.SHARED: PoolSpec(name="p", kind=PoolKind.SHARED, path="/mnt/nfs/p"),
    PoolKind.RBD: PoolSpec(name="p", kind=PoolKind.RBD, monitors=("mon1:6789", "mon2"),
                           rbd_pool="vms", user="herd", has_key=True),
}


def observed(spec: PoolSpec, *, herds: bool, type_ok: bool, path_ok: bool, active: bool,
             autostart: bool) -> LibvirtPool:
    where = spec.rbd_pool if spec.kind == PoolKind.RBD else spec.path
    return LibvirtPool(name=spec.name, uuid=pool_uuid(spec.name) if herds else "x",
                       type=spec.libvirt_type if type_ok else "logical",
                       path=where if path_ok else "/elsewhere", active=active,
                       autostart=autostart)


def expected(spec: PoolSpec, o: LibvirtPool | None) -> PoolAction:
    if spec.kind == PoolKind.RBD and not spec.has_key:
        return PoolAction.BLOCKED
    if o is None:
        return PoolAction.DEFINE
    if not o.herds:
        return PoolAction.BLOCKED
    if o.type != spec.libvirt_type or o.path != (spec.rbd_pool or spec.path):
        return PoolAction.UNDEFINE
    if not o.active:
        return PoolAction.START
    return PoolAction.AUTOSTART if not o.autostart else PoolAction.REFRESH


@pytest.mark.parametrize("kind", list(PoolKind))
@pytest.mark.parametrize("has_key", [True, False])
def test_every_combination_plans_its_first_fault(kind: PoolKind, has_key: bool) -> None:
    spec = replace(SPECS[kind], has_key=has_key)
    cases: list[LibvirtPool | None] = [None]
    cases += [observed(spec, herds=a, type_ok=b, path_ok=c, active=d, autostart=e)
              for a, b, c, d, e in itertools.product([True, False], repeat=5)]
    for case in cases:
        assert plan_pool(spec, case).action == expected(spec, case), case


def act(action: PoolAction, state: LibvirtPool | None) -> LibvirtPool | None:
    """What the actuator does to libvirt, simulated."""
    if action == PoolAction.UNDEFINE:
        return None
    if action == PoolAction.DEFINE:
        return LibvirtPool(name="p", uuid=pool_uuid("p"), type="dir", path="/srv/p")
    assert state is not None
    return replace(state, active=True) if action == PoolAction.START else \
        replace(state, autostart=True)


def test_every_row_is_reached_and_the_steps_converge() -> None:
    labels = set()
    spec = SPECS[PoolKind.LOCAL]
    for case in [None, observed(spec, herds=False, type_ok=True, path_ok=True, active=True,
                                autostart=True)]:
        step = plan_pool(spec, case)
        labels.add(step.action)
    state: LibvirtPool | None = observed(spec, herds=True, type_ok=False, path_ok=True,
                                         active=True, autostart=False)
    for _ in range(6):
        step = plan_pool(spec, state)
        labels.add(step.action)
        if step.final:
            break
        state = act(step.action, state)
    assert step.action == PoolAction.REFRESH
    labels.add(plan_pool(replace(SPECS[PoolKind.RBD], has_key=False), None).action)
    assert labels == {row[2] for row in ROWS}


def test_removal_takes_only_herds_pools() -> None:
    mine = LibvirtPool(name="old", uuid=pool_uuid("old"), type="dir")
    theirs = LibvirtPool(name="default", uuid="abc", type="dir")
    kept = LibvirtPool(name="p", uuid=pool_uuid("p"), type="dir")
    found = {p.name: p for p in (mine, theirs, kept)}
    step = plan_removal(["p"], found)
    assert step is not None and step.pool == "old"
    assert plan_removal(["p", "old"], found) is None


def test_libvirt_xml() -> None:
    local = ElementTree.fromstring(pool_xml(SPECS[PoolKind.LOCAL]))
    assert local.get("type") == "dir" and local.findtext("target/path") == "/srv/p"
    rbd = ElementTree.fromstring(pool_xml(SPECS[PoolKind.RBD]))
    assert rbd.get("type") == "rbd" and rbd.findtext("source/name") == "vms"
    assert [(h.get("name"), h.get("port")) for h in rbd.findall("source/host")] == [
        ("mon1", "6789"), ("mon2", None)]
    auth = rbd.find("source/auth")
    assert auth is not None and auth.get("username") == "herd"
