"""Volume clone and resize on real hypervisors (issue #15): a 3-node cluster of QEMU hosts
(`herdctl dev up --hypervisor qemu`), checked from outside Herd: the images with
qemu-img on the host's own directory, the guests' disks by asking the host's libvirtd.

A qcow2 volume with a known pattern (written with qemu-io) is cloned into three volumes
(`herdctl volume clone`): each is a full qcow2 copy (no backing file) with the same data.
Three guests start, each with one clone; one clone is grown while its guest runs
(online: the guest's disk and the volume's status show the new size, the guest keeps
running), and the unattached source is grown offline (the image's virtual size).
The cluster's processes are started by `herdctl` and stopped by `herdctl dev down`;
skipped only where the hosts cannot be made here (says why).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import libvirt
import pytest

from ctl.dev.guest import guest_xml
from tests.e2e.test_qemu_cluster import volume_until
from tests.support import hostwatch
from tests.support.qemucluster import Cluster

pytestmark = pytest.mark.qemu

MiB = 1 << 20


@pytest.fixture
def cluster(storage_cluster: Cluster) -> Cluster:
    return storage_cluster  # tests/e2e/conftest.py: pools local and shared


def qemu_img(*args: str) -> str:
    done = subprocess.run(["qemu-img", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def image_info(path: Path) -> dict[str, object]:
    info: dict[str, object] = json.loads(qemu_img("info", "--output=json", "-U", str(path)))
    return info


def disk_capacity(cluster: Cluster, host: str, vm: str, target: str) -> int:
    """The capacity of the guest's disk as the host's libvirtd says (virsh domblkinfo)."""
    conn = libvirt.open(cluster.hosts[host].uri)
    try:
        capacity, _allocation, _physical = conn.lookupByName(vm).blockInfo(target)
        return int(capacity)
    finally:
        conn.close()


def with_volume(name: str, volume: str) -> str:
    return guest_xml(name).replace(
        "<memballoon model='none'/>", "<memballoon model='none'/><disk type='volume' "
        "device='disk'><driver name='qemu' type='qcow2'/><source pool='local' "
        f"volume='{volume}'/><target dev='vda' bus='virtio'/></disk>")


def ready_with(cluster: Cluster, name: str, capacity: int) -> None:
    volume_until(cluster, name, lambda v: (v.get("status") or {}).get("state") == "ready"
                 and v["status"].get("capacity") == capacity)


def test_clones_are_copies_and_volumes_grow_online_and_offline(cluster: Cluster) -> None:
    cluster.ctl("volume", "create", "local", "base", "--size", "64M", "--node", "hv2")
    ready_with(cluster, "base", 64 * MiB)
    images = cluster.hosts["hv2"].dir / "lib" / "herd-pools" / "local"
    done = subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0xa5 0 8M",
                           str(images / "base")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    clones = ("c1", "c2", "c3")
    for clone in clones:
        said = cluster.ctl("volume", "clone", "local", "base", clone)
        assert said.strip() == f"volume/local/{clone} created on hv2 from local/base"
    for clone in clones:
        ready_with(cluster, clone, 64 * MiB)
        info = image_info(images / clone)
        assert info["format"] == "qcow2" and "backing-filename" not in info
        qemu_img("compare", "-f", "qcow2", "-F", "qcow2", str(images / "base"),
                 str(images / clone))  # exit 0: the same data
    for i, clone in enumerate(clones, 1):
        cluster.client.post("/vm", {"xml": with_volume(f"g{i}", clone)})
        cluster.state(f"g{i}", "start")
        assert cluster.vm(f"g{i}")["status"]["node"] == "hv2"  # where its volume is
    assert [v["metadata"]["name"] for v in cluster.client.get(
        "/volume", vm="g1")["items"]] == ["c1"]

    cluster.ctl("volume", "resize", "local", "c1", "96M")  # online: g1 runs
    ready_with(cluster, "c1", 96 * MiB)
    assert disk_capacity(cluster, "hv2", "g1", "vda") == 96 * MiB
    assert image_info(images / "c1")["virtual-size"] == 96 * MiB
    assert hostwatch.restarts(cluster.history(), "g1") == []
    assert (cluster.vm("g1")["status"] or {}).get("state") == "running"
    assert disk_capacity(cluster, "hv2", "g2", "vda") == 64 * MiB  # the others: as they were

    cluster.ctl("volume", "resize", "local", "base", "128M")  # offline: no VM holds it
    ready_with(cluster, "base", 128 * MiB)
    assert image_info(images / "base")["virtual-size"] == 128 * MiB

    cluster.delete("g1", "g2", "g3")
    for name in ("base", *clones):
        cluster.client.call("DELETE", f"/volume/local/{name}")
