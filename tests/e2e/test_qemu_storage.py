"""Disks that move with their VMs (issue #15), on a 3-node cluster of real QEMU hosts
(`herdctl dev up --hypervisor qemu`), with real qcow2 images whose data is a known pattern
written by `qemu-io` before the guest starts, and checked by `qemu-img compare` against a
reference image after the guest stops. `tests.support.hostwatch` watches every host from
outside Herd.

- Live migration of a guest with a 256 MiB volume on a `local` pool: the data is copied
  along (status shows the bytes while it runs), the guest keeps one continuous run, the
  volume lives on the target (same data), the source's copy is gone.
- A move by shutdown (migration method `shutdown`): the guest stops on its host, the target
  copies its volumes (a qcow2 with the pattern, a sparse 1 GiB raw one that stays sparse)
  from that host's libvirtd, then starts it; same data, old copies gone.
- A flush of a host running two local-disk guests: both move live with their data; ready
  brings them back, data and all.
- A `shared` pool (one directory bind-mounted at the same path into every host, as an NFS
  mount would be): live migration copies nothing; the fence of the guest's host recovers
  it elsewhere with its data. A local-disk guest on that fenced host is not recovered (its
  disk went with the host; the reason says so) and, with autorestart, starts there again
  once the host is back and ready.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from ctl.dev.guest import guest_xml, with_volume_disks
from tests.support.qemucluster import WAIT, Cluster, one_continuous_run

pytestmark = pytest.mark.qemu

MIB = 1 << 20
PATTERN = (("0x5a", 0, 48), ("0xc3", 100, 96), ("0x3c", 240, 16))  # (byte, offset MiB, length MiB)


@pytest.fixture
def cluster(storage_cluster: Cluster) -> Cluster:
    return storage_cluster  # tests/e2e/conftest.py: pools local and shared


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A raw image holding the pattern every test volume gets."""
    path = tmp_path_factory.mktemp("reference") / "pattern.raw"
    _run("qemu-img", "create", "-q", "-f", "raw", str(path), "256M")
    _write_pattern(path, fmt="raw")
    return path


# --- live migration with storage copy ------------------------------------------------------

def test_live_migration_takes_a_local_volume_along(cluster: Cluster, reference: Path) -> None:
    _volume(cluster, "local", "data1", node="hv1", size="256M")
    _write_pattern(_image(cluster, "hv1", "local", "data1"))
    _guest(cluster, "mover", ("local", "data1"))
    assert cluster.vm("mover")["status"]["node"] == "hv1"  # the scheduler followed the disk
    since, version = time.time(), cluster.client.get("/vm")["resourceVersion"]
    cluster.place("mover", "migrate", "hv2")
    one_continuous_run(cluster, "mover", since=since, on="hv2")
    assert _volume_spec(cluster, "local", "data1")["node"] == "hv2"
    assert _copy_total(cluster, "mover", since=version) == 256 * MIB  # shown while it ran
    _until_leftovers_gone(cluster, "local", "data1")
    assert not _image(cluster, "hv1", "local", "data1").exists()
    cluster.state("mover", "stop")
    _same_data(_image(cluster, "hv2", "local", "data1"), reference)
    cluster.client.call("DELETE", "/vm/mover", query={"delete_volumes": "true"})


def test_a_flush_moves_local_disk_guests_with_their_data(cluster: Cluster,
                                                         reference: Path) -> None:
    names = ("fl1", "fl2")
    for name in names:
        _volume(cluster, "local", name, node="hv3", size="64M")
        _write_pattern(_image(cluster, "hv3", "local", name), upto_mib=64)
        _guest(cluster, name, ("local", name))
    since = time.time()
    cluster.client.post("/node/hv3/domain-state", {"state": "flush", "wait": True,
                                                   "timeout": WAIT}, timeout=WAIT + 10)
    for name in names:
        vm = cluster.until(name, lambda v: (v["status"] or {}).get("state") == "running"
                           and v["status"]["node"] != "hv3")
        node = vm["status"]["node"]
        one_continuous_run(cluster, name, since=since, on=node)
        assert _volume_spec(cluster, "local", name)["node"] == node
        _until_leftovers_gone(cluster, "local", name)
        assert not _image(cluster, "hv3", "local", name).exists()
    cluster.client.post("/node/hv3/domain-state", {"state": "ready", "wait": True,
                                                   "timeout": WAIT}, timeout=WAIT + 10)
    for name in names:
        cluster.until(name, lambda v: (v["status"] or {}).get("node") == "hv3"
                      and v["status"]["state"] == "running")
        one_continuous_run(cluster, name, since=since, on="hv3")
        assert _volume_spec(cluster, "local", name)["node"] == "hv3"
        cluster.state(name, "stop")
        _same_data(_image(cluster, "hv3", "local", name), reference, upto_mib=64)
        cluster.client.call("DELETE", f"/vm/{name}", query={"delete_volumes": "true"})


def test_a_move_by_shutdown_copies_a_local_volume_before_the_start(
        cluster: Cluster, reference: Path) -> None:
    _volume(cluster, "local", "cold1", node="hv1", size="256M")
    source = _image(cluster, "hv1", "local", "cold1")
    _write_pattern(source)
    cluster.ctl("volume", "create", "local", "cold2", "--size", "1G", "--format", "raw",
                "--node", "hv1")  # sparse: 1 GiB of holes but 16 MiB of pattern
    _volume_until(cluster, "local", "cold2", lambda v: (v.get("status") or {}).get("state")
                  == "ready")
    _run("qemu-io", "-f", "raw", "-c", "write -P 0x77 512M 16M",
         str(_image(cluster, "hv1", "local", "cold2")))
    assert _image(cluster, "hv1", "local", "cold2").stat().st_blocks * 512 < 64 * MIB  # thin
    size = source.stat().st_size + (1 << 30)  # the image files: what the copy covers
    _guest(cluster, "cold", ("local", "cold1"), ("local", "cold2", "raw"), method="shutdown")
    assert cluster.vm("cold")["status"]["node"] == "hv1"
    cluster.place("cold", "move", "hv3")  # off on hv1, copied, started on hv3
    cluster.until("cold", lambda v: (v["status"] or {}).get("state") == "running"
                  and v["status"]["node"] == "hv3")
    assert "cold" in cluster.hosts["hv3"].guest_pids()
    assert "cold" not in cluster.hosts["hv1"].guest_pids()
    assert _volume_spec(cluster, "local", "cold1")["node"] == "hv3"
    copied = cluster.client.get("/event", vm="cold", kind="volumes-copied")
    assert [(e["source"], e["target"], e["bytes"]) for e in copied["items"]] == \
        [("hv1", "hv3", size)]
    _until_leftovers_gone(cluster, "local", "cold1")  # once it runs on hv3
    assert not source.exists()
    raw = _image(cluster, "hv3", "local", "cold2")
    assert raw.stat().st_size == 1 << 30 and raw.stat().st_blocks * 512 < 64 * MIB  # holes
    cluster.state("cold", "stop")
    _same_data(_image(cluster, "hv3", "local", "cold1"), reference)
    _run("qemu-io", "-r", "-f", "raw", "-c", "read -P 0x77 512M 16M", "-c",
         "read -P 0 0 512M", str(raw))
    cluster.client.call("DELETE", "/vm/cold", query={"delete_volumes": "true"})


# --- a shared pool; a fence ------------------------------------------------------------------

def test_a_shared_volume_moves_without_a_copy_and_survives_a_fence(
        cluster: Cluster, reference: Path) -> None:
    _volume(cluster, "shared", "sh1", node="hv1", size="256M")
    image = cluster.hosts.dir / "shared" / "sh1"
    _write_pattern(image)
    _guest(cluster, "roamer", ("shared", "sh1"), node="hv1")
    since, version = time.time(), cluster.client.get("/vm")["resourceVersion"]
    cluster.place("roamer", "migrate", "hv2")
    one_continuous_run(cluster, "roamer", since=since, on="hv2")  # live, no fallback
    assert _copy_total(cluster, "roamer", since=version) == 0  # nothing to copy: one image
    assert _volume_spec(cluster, "shared", "sh1")["node"] == "hv1"  # its maker; any node
    _volume(cluster, "local", "pinned1", node="hv2", size="64M")
    _guest(cluster, "pinned", ("local", "pinned1"), autorestart=True)
    assert cluster.vm("pinned")["status"]["node"] == "hv2"
    os.kill(cluster.node_pid("hv2"), signal.SIGSTOP)  # hangs: fenced, the host powered off
    vm = cluster.until("roamer", lambda v: (v["status"] or {}).get("state") == "running"
                       and v["status"]["node"] in ("hv1", "hv3"), timeout=90)
    stopped = cluster.until("pinned", lambda v: v["spec"]["state"] == "stopped")
    assert "volumes on local pools are on hv2, which was fenced" in \
        stopped["placement"]["reason"]
    assert "pinned" not in cluster.hosts["hv1"].guest_pids() | cluster.hosts["hv3"].guest_pids()
    cluster.herdctl("dev", "start-node", "hv2")  # boots the host, then its daemon
    cluster.until("hv2", lambda n: n["alive"] and (n["status"] or {}).get("daemonState")
                  == "run", kind="Node")
    cluster.client.post("/node/hv2/domain-state", {"state": "ready"})  # fenced: flushed
    cluster.until("pinned", lambda v: (v["status"] or {}).get("state") == "running"
                  and v["status"]["node"] == "hv2", timeout=90)
    cluster.state("roamer", "stop")
    _same_data(image, reference)
    assert vm["status"]["node"] != "hv2"
    for name in ("roamer", "pinned"):
        cluster.client.call("DELETE", f"/vm/{name}",
                            query={"force": "true", "delete_volumes": "true"})


# --- helpers ------------------------------------------------------------------------------------

def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{argv}: {done.stdout}{done.stderr}"
    return done


def _write_pattern(path: Path, *, fmt: str = "qcow2", upto_mib: int = 256) -> None:
    writes = [f"write -P {byte} {offset}M {length}M" for byte, offset, length in PATTERN
              if offset + length <= upto_mib]
    _run("qemu-io", "-f", fmt, *(arg for w in writes for arg in ("-c", w)), str(path))


def _same_data(image: Path, reference: Path, *, upto_mib: int = 256) -> None:
    """`image` (qcow2) holds the reference's data over its size."""
    done = subprocess.run(["qemu-img", "compare", "-f", "qcow2", "-F", "raw", str(image),
                           str(reference)], capture_output=True, text=True, timeout=120)
    if upto_mib == 256:
        assert done.returncode == 0, done.stdout + done.stderr
        return
    for byte, offset, length in PATTERN:  # a smaller volume: read its part back
        if offset + length <= upto_mib:
            _run("qemu-io", "-r", "-f", "qcow2", "-c",
                 f"read -P {byte} {offset}M {length}M", str(image))


def _image(cluster: Cluster, host: str, pool: str, volume: str) -> Path:
    return cluster.hosts[host].dir / "lib" / "herd-pools" / pool / volume


def _volume(cluster: Cluster, pool: str, name: str, *, node: str, size: str) -> None:
    cluster.ctl("volume", "create", pool, name, "--size", size, "--node", node)
    _volume_until(cluster, pool, name, lambda v: (v.get("status") or {}).get("state")
                  == "ready")


def _volume_spec(cluster: Cluster, pool: str, name: str) -> dict[str, Any]:
    return dict(cluster.client.get(f"/volume/{pool}/{name}")["spec"])


def _until_leftovers_gone(cluster: Cluster, pool: str, name: str) -> None:
    _volume_until(cluster, pool, name, lambda v: not v.get("leftovers"))


def _volume_until(cluster: Cluster, pool: str, name: str, check: Any) -> None:
    """Follow the volume's watch events until `check(volume)` holds."""
    version = cluster.client.get("/vm")["resourceVersion"]  # the cache's, for every kind
    if check(cluster.client.get(f"/volume/{pool}/{name}")):
        return
    for event in cluster.client.watch(timeout=WAIT, kind="Volume", resourceVersion=version):
        if event.get("name") == f"{pool}/{name}" and check(event.get("object") or {}):
            return
    raise AssertionError(f"volume {pool}/{name} never got there")


def _guest(cluster: Cluster, name: str, *volumes: tuple[str, ...], node: str | None = None,
           autorestart: bool = False, method: str = "any") -> None:
    """Define and start a guest with the volumes as its disks (its node: the scheduler's,
    which follows local volumes, unless given)."""
    body: dict[str, Any] = {"xml": with_volume_disks(guest_xml(name), *volumes),
                            "shutdown_timeout": 1, "autorestart": autorestart,
                            "migration_method": method}
    cluster.client.post("/vm", {**body, **({"node": node} if node else {})})
    cluster.state(name, "start")


def _copy_total(cluster: Cluster, vm: str, *, since: str) -> int:
    """The disk bytes to copy that the VM's status showed while it migrated (its events
    since then; 0: none shown)."""
    most = 0
    for event in cluster.client.watch(timeout=2.0, kind="VM", name=vm, resourceVersion=since):
        moving = ((event.get("object") or {}).get("status") or {}).get("migration") or {}
        most = max(most, int(moving.get("diskTotal", 0)))
    return most
