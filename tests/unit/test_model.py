"""The typed model (`store.model`): VM and Node snapshots read by one codec from the
documents the writers store (`store.vms`, `store.objects`, `store.nodestatus`), and the
values of their derived properties (no I/O)."""

from __future__ import annotations

from typing import Any

import pytest
from kazoo.protocol.states import ZnodeStat

from schemas.requests import VMDefineRequest, define_request_to_vm
from statemachine import Action, Step
from store import nodestatus, txn, vms, vmstatus
from store.client import Versioned
from store.model import Missing, Node, node_paths, read_node, read_vm, vm_paths
from store.objects import new_object, node_patch, with_spec
from store.paths import Paths
from store.placement import NodeView, VMNeeds
from vocabulary import (
    DesiredDomainState,
    DesiredState,
    FenceMode,
    MigrationMethod,
    StopMode,
    VMState,
)

PATHS = Paths("/herd")
XML = ("<domain type='kvm'><name>web1</name><memory unit='MiB'>512</memory>"
       "<vcpu>2</vcpu></domain>")


def versioned(doc: dict[str, Any], *, mzxid: int = 10) -> Versioned:
    return Versioned(doc, ZnodeStat(1, mzxid, 1000, 2000, 3, 0, 0, 0, 10, 0, 1))


def defined(**request: Any) -> dict[str, Versioned]:
    """The znodes of a VM just defined by the API, by path (what a cache would hold)."""
    loaded = VMDefineRequest().load({"xml": XML, **request})
    ops = vms.define_ops(PATHS, new_object(define_request_to_vm(loaded)))
    return {op.path: versioned(op.doc) for op in ops if isinstance(op, txn.Create)}


def test_a_vm_just_defined_reads_as_stopped_unplaced_and_unowned() -> None:
    vm = read_vm("web1", defined().get, PATHS)
    assert vm.exists and vm.name == "web1"
    assert (vm.want, vm.stop_mode, vm.generation, vm.restart_request) == \
        (DesiredState.STOPPED, StopMode.GRACEFUL, 1, 0)
    assert (vm.home, vm.last_node, vm.restart_home, vm.autorestart_pending) == \
        (None, None, None, False)
    assert (vm.state, vm.status_node, vm.owner_node, vm.running_on) == \
        ("stopped", None, None, None)
    assert vm.api_version == "herd/v1" and vm.mzxid == 10
    assert "<vcpu>2</vcpu>" in vm.xml
    assert not vm.runs_on("hv1")


def test_needs_come_from_the_domain_xml_and_the_meta() -> None:
    vm = read_vm("web1", defined(limits=["hv1", "hv2"], selector="vms").get, PATHS)
    assert vm.needs == VMNeeds("web1", 512, 2, ("hv1", "hv2"), "vms")
    assert vm.limits == ("hv1", "hv2") and vm.selector == "vms"


def test_a_vm_without_xml_or_meta_needs_nothing_and_takes_the_default_selector() -> None:
    vm = read_vm("bare", {PATHS.vm("bare"): versioned({"spec": {"state": "running"}})}.get,
                 PATHS)
    assert vm.needs == VMNeeds("bare", 0, 1, (), "none")
    assert vm.want == DesiredState.RUNNING and vm.meta == {} and not vm.autorestart


def test_the_requested_node_is_the_vms_home_and_the_spec_changes_are_read() -> None:
    znodes = defined(node="hv1", autorestart=True)
    spec = with_spec(znodes[PATHS.vm("web1")].doc, state="running", restartRequest=3)
    assert spec is not None
    znodes[PATHS.vm("web1")] = versioned(spec, mzxid=11)
    vm = read_vm("web1", znodes.get, PATHS)
    assert (vm.home, vm.want, vm.restart_request, vm.generation, vm.mzxid) == \
        ("hv1", DesiredState.RUNNING, 3, 2, 11)
    assert vm.autorestart


def test_a_vm_runs_where_its_owner_is_or_where_its_up_status_says() -> None:
    znodes = defined(node="hv1")
    znodes[PATHS.vm_status("web1")] = versioned(
        {**vms.initial_status(), "state": "running", "node": "hv2", "observedRestart": 4})
    vm = read_vm("web1", znodes.get, PATHS)
    assert vm.runs_on("hv2") and not vm.runs_on("hv1")
    assert (vm.state, vm.status_node, vm.running_on, vm.observed_restart) == \
        ("running", "hv2", "hv2", 4)
    znodes[PATHS.vm_owner("web1")] = versioned({"node": "hv3"})
    owned = read_vm("web1", znodes.get, PATHS)
    assert owned.owner_node == "hv3" and owned.running_on == "hv3"
    assert owned.runs_on("hv3") and owned.runs_on("hv2")


def test_a_stopped_status_naming_a_node_runs_nowhere() -> None:
    znodes = defined()
    znodes[PATHS.vm_status("web1")] = versioned({**vms.initial_status(), "node": "hv2"})
    vm = read_vm("web1", znodes.get, PATHS)
    assert vm.status_node == "hv2" and vm.running_on is None and not vm.runs_on("hv2")


def test_a_placement_after_a_flush_names_the_node_to_return_to() -> None:
    znodes = defined(node="hv1")
    znodes[PATHS.vm_placement("web1")] = versioned(
        {**vms.initial_placement({}), "node": "hv2", "lastNode": "hv1",
         "autorestartPending": True, "home": "hv1"})
    vm = read_vm("web1", znodes.get, PATHS)
    assert (vm.home, vm.last_node, vm.autorestart_pending, vm.restart_home) == \
        ("hv2", "hv1", True, "hv1")


def test_a_vm_that_is_not_there_reads_as_absent() -> None:
    nothing: dict[str, Versioned] = {}
    vm = read_vm("gone", nothing.get, PATHS)
    assert not vm.exists
    assert (vm.mzxid, vm.spec_doc, vm.placement_doc, vm.status_doc, vm.state) == \
        (0, {}, {}, {}, None)
    with pytest.raises(Missing):
        vm.spec_znode  # noqa: B018
    with pytest.raises(Missing):
        vm.placement_znode  # noqa: B018


def test_the_codec_reads_a_multi_read_result_like_a_cache() -> None:
    znodes = defined()
    found = {path: znodes[path] for path in vm_paths(PATHS, "web1") if path in znodes}
    assert read_vm("web1", found.get, PATHS) == read_vm("web1", znodes.get, PATHS)
    assert vm_paths(PATHS, "web1") == ["/herd/vms/web1", "/herd/vms/web1/placement",
                                       "/herd/vms/web1/status", "/herd/vms/web1/owner"]


def registered(*, alive: bool = True, **report: Any) -> dict[str, Versioned]:
    """The znodes of a node as its daemon registers it (spec, status, alive), by path."""
    spec = new_object({"apiVersion": "herd/v1", "kind": "Node", "metadata": {"name": "hv1"},
                       "spec": {"domainState": "ready", "fence": "none"}})
    status = nodestatus.reported({}, {"daemonState": "run", **report},
                                 seed_domain_state="ready", now=1234.5)
    znodes = {PATHS.node("hv1"): versioned(spec, mzxid=20),
              PATHS.node_status("hv1"): versioned(status)}
    if alive:
        znodes[PATHS.node_alive("hv1")] = versioned({})
    return znodes


def test_a_registered_node_reads_its_states_heartbeat_and_placement_view() -> None:
    resources = {"memTotal": 4096, "memFree": 3000, "memProv": 512, "vcpuAlloc": 2,
                 "load": 0.5, "vms": 1}
    node = read_node("hv1", registered(resources=resources).get, PATHS)
    assert node.exists and node.alive and node.mzxid == 20
    assert (node.want, node.fence, node.domain_state, node.daemon_state, node.heartbeat) == \
        (DesiredDomainState.READY, FenceMode.NONE, "ready", "run", 1234.5)
    assert node.view == NodeView("hv1", True, "run", "ready", mem_total=4096, mem_free=3000,
                                 mem_prov=512, vcpu_alloc=2, load=0.5, vms=1)
    assert node.view.usable


def test_a_flushed_dead_node_and_the_primarys_fields() -> None:
    znodes = registered(alive=False)
    spec = node_patch(znodes[PATHS.node("hv1")].doc, {"domainState": "flushed"})
    assert spec is not None
    znodes[PATHS.node("hv1")] = versioned(spec)
    status = nodestatus.with_domain_state(znodes[PATHS.node_status("hv1")].doc, "flushed",
                                          daemonState="fenced")
    znodes[PATHS.node_status("hv1")] = versioned(status)
    node = read_node("hv1", znodes.get, PATHS)
    assert (node.alive, node.want, node.domain_state, node.daemon_state) == \
        (False, DesiredDomainState.FLUSHED, "flushed", "fenced")
    assert not node.view.usable


def test_a_node_without_status_or_spec_fields_takes_the_defaults() -> None:
    node = read_node("hv9", {PATHS.node("hv9"): versioned({"spec": {}})}.get, PATHS)
    assert (node.want, node.fence, node.domain_state, node.daemon_state, node.heartbeat) == \
        (None, FenceMode.AUTO, None, None, 0.0)
    assert node.view == NodeView("hv9", False, "", "")
    assert node_paths(PATHS, "hv9") == ["/herd/nodes/hv9", "/herd/nodes/hv9/status",
                                        "/herd/nodes/hv9/alive"]
    with pytest.raises(Missing):
        Node("hv8", None).spec_znode  # noqa: B018


def test_a_move_reads_from_the_status_the_source_writes() -> None:
    znodes = defined()
    status = znodes[PATHS.vm_status("web1")].doc
    step = Step(action=Action.MIGRATE_LIVE, state=VMState.MIGRATING, shutdown_deadline=None,
                observed_restart=0, requeue_after=None, reason="to hv2", trigger="t")
    moving = vmstatus.after_step(status, step, vmstatus.StepFacts(
        node="hv1", up=True, spec_xml=XML, generation=1, placed_on="hv2", moved_to=None,
        now=5.0))
    vm = read_vm("web1", {**znodes, PATHS.vm_status("web1"): versioned(moving)}.get, PATHS)
    assert vm.migration is not None
    assert (vm.migration.source, vm.migration.target, vm.migration.method) == \
        ("hv1", "hv2", MigrationMethod.LIVE)
    assert (vm.migration.handed_over, vm.migration.live_failed, vm.migration.call_ms) == \
        (False, False, None)
    done = vmstatus.migrated_out(moving, call_ms=812)
    vm = read_vm("web1", {**znodes, PATHS.vm_status("web1"): versioned(done)}.get, PATHS)
    assert vm.migration is not None and vm.migration.handed_over
    assert vm.migration.call_ms == 812 and vm.migration.started == 5.0
    failed = vmstatus.live_failed(moving, reason="link down")
    vm = read_vm("web1", {**znodes, PATHS.vm_status("web1"): versioned(failed)}.get, PATHS)
    assert vm.migration is not None and vm.migration.live_failed
    assert read_vm("web1", znodes.get, PATHS).migration is None


@pytest.mark.parametrize("root", ["/herd", "/"])
def test_the_vm_znodes_read_together_are_the_paths_of_each_one(root: str) -> None:
    paths = Paths(root)
    assert paths.vm_znodes("web1") == (paths.vm("web1"), paths.vm_placement("web1"),
                                       paths.vm_status("web1"), paths.vm_owner("web1"))
