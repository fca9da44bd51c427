"""Real hypervisors: a 3-node cluster of QEMU hosts (`herdctl dev up --hypervisor qemu`,
each node a libvirtd in namespaces of its own) driven through the API, and checked from
OUTSIDE Herd: `tests.support.hostwatch` asks every host's libvirtd directly, subscribing
to lifecycle events and sampling every 50 ms, for the whole module.

- Live migrate, unmigrate, move, and a flush of a node with 3 guests: every guest keeps
  one continuous run (no boot after the first, no stop but the end of a migration, active
  on some host in every sampling round), ends on the right host, and never runs (unpaused)
  on two hosts at once.
- A live migration that cannot reach the target: method any falls back to
  shutdown-and-start, method live fails and is retried until it can migrate live.
- The stubborn guest (SeaBIOS ignores ACPI): shutdown forced at the timeout; a shutdown
  aborted by start, and by migrate (it migrates live and keeps running).
- A managed network: a TCG guest on another host than the primary boots iPXE and leases
  its reserved address from the primary's dnsmasq over the VXLAN (issue #14).
- A local storage pool: a qcow2 volume made in one host's own directory; a guest with it is
  placed on that host, runs there, cannot be moved away while stopped; removed with its
  volume, the image goes (issue #15; moving with the volume: test_qemu_storage).
- kill -9 of a node's herd-node: its guests keep running on that host (a daemon crash is
  no host crash) and the restarted daemon adopts them; a node that stops answering is
  fenced (the agent powers the host off: its guests, libvirtd and herd-node die) and its
  guests run elsewhere.
The cluster's processes are started by `herdctl` (not children of pytest) and stopped by
`herdctl dev down`; skipped only where the hosts cannot be made here (says why).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ctl.dev.guest import guest_xml, pxe_guest_xml
from tests.support import hostwatch
from tests.support.qemucluster import WAIT, Cluster, one_continuous_run, running_cluster

pytestmark = pytest.mark.qemu

NODES = ("hv1", "hv2", "hv3")
PXE_MAC = "52:54:00:a0:00:10"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("qemu-cluster"), NODES) as made:
        yield made


# --- placement: every move live, one continuous run ----------------------------------------

def test_migrate_unmigrate_and_move_keep_one_continuous_run(cluster: Cluster) -> None:
    cluster.define("live1", "hv1", migration_max_downtime=100)
    cluster.state("live1", "start")
    since = time.time()
    cluster.place("live1", "migrate", "hv2")
    # The owner znode and status change in one transaction; the API's cache may apply the
    # two watch events a moment apart.
    vm = cluster.until("live1", lambda v: v["owner"] == "hv2")
    assert vm["status"]["node"] == "hv2"
    assert vm["placement"]["lastNode"] == "hv1"
    cluster.place("live1", "unmigrate")
    assert cluster.vm("live1")["status"]["node"] == "hv1"
    cluster.place("live1", "move", "hv3")
    vm = cluster.vm("live1")
    assert vm["status"]["node"] == "hv3" and vm["placement"]["lastNode"] is None
    one_continuous_run(cluster, "live1", since=since, on="hv3")
    moves = cluster.vm_events("live1", "migrated")
    assert [(e["source"], e["target"]) for e in moves] == [("hv1", "hv2"), ("hv2", "hv1"),
                                                           ("hv1", "hv3")]
    assert all(e["duration"] > 0 and 0 <= e["downtimeMs"] < 1000 for e in moves)
    cluster.delete("live1")


def test_flush_moves_three_guests_live_and_ready_brings_them_back(cluster: Cluster) -> None:
    names = ("flush1", "flush2", "flush3")
    for name in names:
        cluster.define(name, "hv2")
        cluster.state(name, "start")
    since = time.time()
    version = cluster.client.get("/vm")["resourceVersion"]
    cluster.client.post("/node/hv2/domain-state", {"state": "flush", "wait": True,
                                                   "timeout": WAIT}, timeout=WAIT + 10)
    try:
        placed = {n: cluster.until(n, lambda v: (v["status"] or {}).get("state") == "running"
                                   and v["status"]["node"] != "hv2") for n in names}
        reasons = {str((e["object"]["status"] or {}).get("reason")) for e in cluster.client.watch(
            timeout=1.0, kind="VM", resourceVersion=version)
            if e["name"] in names and e["object"]}
        # Three at once, two outbound migrations at a time (the default): one waited its turn.
        assert any(r.startswith("waiting for a migration slot (2 in flight") for r in reasons)
        for name, vm in placed.items():
            one_continuous_run(cluster, name, since=since, on=vm["status"]["node"])
    except BaseException:  # the module's next tests need hv2 back, whatever failed here
        cluster.client.post("/node/hv2/domain-state", {"state": "ready"})
        raise
    cluster.client.post("/node/hv2/domain-state", {"state": "ready", "wait": True,
                                                   "timeout": WAIT}, timeout=WAIT + 10)
    for name in names:
        cluster.until(name, lambda v: (v["status"] or {}).get("node") == "hv2"
                      and v["status"]["state"] == "running")
        one_continuous_run(cluster, name, since=since, on="hv2")
    cluster.delete(*names)


def test_a_failed_live_migration_falls_back_for_any_and_is_retried_for_live(
        cluster: Cluster) -> None:
    for name, method in (("fb1", "any"), ("fb2", "live")):
        cluster.define(name, "hv1", migration_method=method, shutdown_timeout=2)
        cluster.state(name, "start")
    since = time.time()
    # hv1 cannot reach hv2's libvirtd for migrations: connections fail at once (a link
    # taken down instead leaves a connect hanging until TCP gives up, minutes later).
    route = ["ip", "-n", cluster.hosts["hv1"].netns, "route"]
    blocked = ["prohibit", f"{cluster.hosts['hv2'].address}/32"]
    subprocess.run([*route, "add", *blocked], check=True)
    try:
        for name in ("fb1", "fb2"):
            cluster.client.post(f"/vm/{name}/node", {"action": "migrate", "node": "hv2"})
        failed = cluster.until("fb2", lambda v: (v["status"] or {}).get("state") == "failed")
        assert "migrate" in failed["status"]["reason"]
        cluster.until("fb1", lambda v: (v["status"] or {}).get("node") == "hv2"
                      and v["status"]["state"] == "running")
    finally:
        subprocess.run([*route, "del", *blocked], check=True)
    cluster.until("fb2", lambda v: (v["status"] or {}).get("node") == "hv2"
                  and v["status"]["state"] == "running", timeout=90)  # backoff <= 30 s
    one_continuous_run(cluster, "fb2", since=since, on="hv2")  # live, once it could
    history = cluster.history()
    fb1 = [(e["node"], e["event"], e["detail"]) for e in history if e["kind"] == "event"
           and e["vm"] == "fb1" and e["t"] > since and e["event"] in ("started", "stopped")]
    assert fb1 == [("hv1", "stopped", "destroyed"), ("hv2", "started", "booted")]
    assert not hostwatch.double_runs(hostwatch.running_from_events(history, end=time.time()))
    assert [e["fallback"] for e in cluster.events_of("fb1", "migration-failed")] == ["shutdown"]
    cluster.delete("fb1", "fb2")


# --- the stubborn guest --------------------------------------------------------------------

def test_stubborn_shutdown_is_forced_at_the_timeout(cluster: Cluster) -> None:
    cluster.define("stub1", "hv1", shutdown_timeout=3)
    cluster.state("stub1", "start")
    asked = time.time()
    cluster.state("stub1", "shutdown", wait=False)
    vm = cluster.until("stub1", lambda v: (v["status"] or {}).get("state") == "stopped")
    stops = [e for e in cluster.history() if e["kind"] == "event" and e["vm"] == "stub1"
             and e["event"] == "stopped"]
    assert len(stops) == 1 and stops[0]["detail"] == "destroyed"  # it ignored ACPI
    assert stops[0]["t"] >= asked + 3.0 - 0.5  # forced at the deadline, not before
    assert hostwatch.where(cluster.history(), "stub1") == []
    assert vm["status"]["node"] is None
    cluster.delete("stub1")


def shutting_down(cluster: Cluster, name: str, node: str) -> float:
    """A running stubborn guest in a graceful shutdown (30 s timeout); when it began."""
    cluster.define(name, node, shutdown_timeout=30)
    cluster.state(name, "start")
    since = time.time()
    cluster.state(name, "shutdown", wait=False)
    cluster.until(name, lambda v: (v["status"] or {}).get("state") == "shutting-down")
    return since


def test_shutdown_is_aborted_by_start(cluster: Cluster) -> None:
    since = shutting_down(cluster, "stub2", "hv2")
    cluster.state("stub2", "start")
    vm = cluster.vm("stub2")
    assert vm["status"]["state"] == "running" and vm["status"]["shutdownDeadline"] is None
    one_continuous_run(cluster, "stub2", since=since, on="hv2")
    cluster.delete("stub2")


def test_shutdown_is_aborted_by_migrate_and_the_guest_moves_live(cluster: Cluster) -> None:
    since = shutting_down(cluster, "stub3", "hv3")
    cluster.place("stub3", "migrate", "hv1")  # a new target: the shutdown is aborted
    vm = cluster.vm("stub3")
    assert vm["status"]["state"] == "running" and vm["status"]["node"] == "hv1"
    assert vm["spec"]["state"] == "running"
    one_continuous_run(cluster, "stub3", since=since, on="hv1")
    cluster.delete("stub3")


# --- a managed network: VXLAN between the hosts, DHCP by the primary's dnsmasq ---------------

def test_a_guest_boots_from_a_managed_network_and_gets_its_reserved_address(
        cluster: Cluster) -> None:
    cluster.ctl("network", "add", "lan", "--type", "managed", "--vni", "160",
                    "--ipv4", "10.160.0.0/24", "--gateway4", "10.160.0.1",
                    "--dhcp4", "10.160.0.100-10.160.0.150", "--domain", "lan.herd.internal")
    cluster.ctl("network", "reservation", "add", "lan", PXE_MAC, "10.160.0.10",
                    "--hostname", "pxe1")
    for node in NODES:
        cluster.until(node, lambda n: ((n["status"] or {}).get("networks") or {})
                      .get("lan", {}).get("up") is True, kind="Node")
    primary = next(n["metadata"]["name"] for n in cluster.client.get("/node")["items"]
                   if n["primary"])
    elsewhere = next(n for n in NODES if n != primary)  # DHCP crosses the VXLAN
    cluster.client.post("/vm", {"xml": pxe_guest_xml("pxe1", network="lan", mac=PXE_MAC),
                                "node": elsewhere})
    cluster.state("pxe1", "start")
    lease = cluster.lease("lan", PXE_MAC, timeout=60)  # iPXE under TCG: ~10 s
    assert lease["ip"] == "10.160.0.10" and lease["hostname"] == "pxe1"
    cluster.delete("pxe1")
    cluster.ctl("network", "remove", "lan")


# --- storage: a local pool, a qcow2 volume, a guest pinned to its volume's host -------------

def test_a_guest_with_a_local_volume_runs_only_where_the_volume_is(cluster: Cluster) -> None:
    cluster.ctl("pool", "add", "local", "--type", "local", "--path",
                "/var/lib/libvirt/herd-pools/local")  # /var/lib/libvirt: each host's own
    for node in NODES:
        cluster.until(node, lambda n: ((n["status"] or {}).get("pools") or {})
                      .get("local", {}).get("usable") is True, kind="Node")
    cluster.ctl("volume", "create", "local", "vol1", "--size", "256M", "--node", "hv3")
    volume_until(cluster, "vol1", lambda v: (v.get("status") or {}).get("state") == "ready")
    image = cluster.hosts["hv3"].dir / "lib" / "herd-pools" / "local" / "vol1"
    assert image.exists() and not (cluster.hosts["hv1"].dir / "lib" / "herd-pools" /
                                   "local" / "vol1").exists()  # the host's own directory
    xml = guest_xml("disk1").replace(
        "<memballoon model='none'/>", "<memballoon model='none'/><disk type='volume' "
        "device='disk'><driver name='qemu' type='qcow2'/><source pool='local' "
        "volume='vol1'/><target dev='vda' bus='virtio'/></disk>")
    cluster.client.post("/vm", {"xml": xml})  # no node: the scheduler follows the volume
    cluster.state("disk1", "start")
    assert cluster.vm("disk1")["status"]["node"] == "hv3"
    assert "disk1" in cluster.hosts["hv3"].guest_pids()
    cluster.state("disk1", "stop")
    cluster.client.post("/vm/disk1/node", {"action": "move", "node": "hv1"})  # while off
    assert cluster.client.get("/volume/local/vol1")["spec"]["node"] == "hv3"  # nothing yet
    cluster.state("disk1", "start")  # hv1 copies the volume from hv3 first
    assert cluster.vm("disk1")["status"]["node"] == "hv1"
    assert cluster.client.get("/volume/local/vol1")["spec"]["node"] == "hv1"
    volume_until(cluster, "vol1", lambda v: not v.get("leftovers"))
    assert not image.exists()  # hv3's copy goes once the guest runs on hv1
    image = cluster.hosts["hv1"].dir / "lib" / "herd-pools" / "local" / "vol1"
    cluster.state("disk1", "stop")
    since = cluster.client.get("/vm")["resourceVersion"]  # events from here are replayed
    cluster.client.call("DELETE", "/vm/disk1", query={"delete_volumes": "true"})
    volume_until(cluster, "vol1", lambda v: v.get("type") == "DELETED", since=since)
    assert not image.exists()
    cluster.ctl("pool", "remove", "local")


def volume_until(cluster: Cluster, name: str, check: Callable[[dict[str, Any]], bool], *,
                 since: str | None = None) -> None:
    """Follow the Volume events of `local/<name>` (GET /watch; from resourceVersion `since`
    when given, else from what exists now) until `check(event)`, where an event is the
    object (with `type`: ADDED, MODIFIED, DELETED)."""
    for event in cluster.client.watch(timeout=WAIT, kind="Volume", resourceVersion=since):
        if event.get("name") == f"local/{name}" and check(
                {**(event.get("object") or {}), "type": event.get("type")}):
            return
    raise AssertionError(f"volume local/{name} never got there")


# --- daemon crash, host failure --------------------------------------------------------------

def test_a_daemon_crash_is_not_a_host_crash(cluster: Cluster) -> None:
    cluster.define("keep1", "hv1")
    cluster.state("keep1", "start")
    since = time.time()
    os.kill(cluster.node_pid("hv1"), signal.SIGKILL)
    cluster.herdctl("dev", "start-node", "hv1")  # waits out the old session, adopts
    new = cluster.node_pid("hv1")
    cluster.until("keep1", lambda v: v["owner"] == "hv1" and cluster.owned_by_daemon(
        "keep1", new) and (v["status"] or {}).get("state") == "running")
    node = cluster.client.get("/node/hv1")
    assert node["alive"] and node["status"]["daemonState"] == "run"
    one_continuous_run(cluster, "keep1", since=since, on="hv1")
    assert "hv1" not in _fenced(cluster)
    cluster.delete("keep1")


def test_a_daemon_restarted_mid_migration_finishes_it(cluster: Cluster) -> None:
    cluster.define("mid1", "hv2")
    cluster.state("mid1", "start")
    since = time.time()
    cluster.client.post("/vm/mid1/node", {"action": "migrate", "node": "hv3"})
    cluster.until("mid1", lambda v: (v["status"] or {}).get("state") == "migrating")
    os.kill(cluster.node_pid("hv2"), signal.SIGKILL)  # the source, mid-migration
    cluster.herdctl("dev", "start-node", "hv2")
    vm = cluster.until("mid1", lambda v: (v["status"] or {}).get("node") == "hv3"
                       and v["status"]["state"] == "running")
    assert vm["owner"] == "hv3" and cluster.owned_by_daemon("mid1", cluster.node_pid("hv3"))
    one_continuous_run(cluster, "mid1", since=since, on="hv3")
    assert "hv2" not in _fenced(cluster)
    cluster.delete("mid1")


def test_a_fenced_host_is_powered_off_and_its_guests_run_elsewhere(cluster: Cluster) -> None:
    cluster.define("rec1", "hv3")
    cluster.state("rec1", "start")
    os.kill(cluster.node_pid("hv3"), signal.SIGSTOP)  # hangs: no heartbeat, no session
    vm = cluster.until("rec1", lambda v: (v["status"] or {}).get("state") == "running"
                       and v["status"]["node"] in ("hv1", "hv2"), timeout=90)
    assert _fenced(cluster) == ["hv3"]
    assert cluster.hosts["hv3"].daemon_pid("libvirtd") is None  # powered off
    history = cluster.history()
    assert hostwatch.where(history, "rec1") == [vm["status"]["node"]]
    assert not hostwatch.double_runs(hostwatch.running_from_events(history, end=time.time()))
    assert not hostwatch.double_runs(hostwatch.running_from_samples(history))
    cluster.herdctl("dev", "start-node", "hv3")  # boots the host, then its daemon
    cluster.until("hv3", lambda n: n["alive"] and (n["status"] or {}).get("daemonState")
                  == "run", kind="Node")
    cluster.delete("rec1")


def _fenced(cluster: Cluster) -> list[str]:
    log = cluster.dir / "nodes" / "fenced.log"
    return [line.split()[0] for line in log.read_text().splitlines()] if log.exists() else []
