"""Fixtures of the e2e tests that need the real hypervisor: the system libvirtd (QEMU),
and the storage cluster.

`libvirtd` (session) starts libvirtd and virtlogd through `tests.support.libvirtd` unless
they already run, and skips the requesting tests with the reason when that is impossible
here (not root, packages missing, the daemon fails). At the end it stops what test sessions
started, once no other test session uses them (see `LibvirtDaemon.stop`). CI runs as root
on Debian 12 with the packages installed: there these tests must run, not skip.

`storage_cluster` (package: made once for the storage modules, `test_qemu_storage`,
`test_qemu_volume_data`, `test_qemu_volume_ops`, which run one after another, and taken
down after the last e2e test) is a 3-host QEMU dev cluster with a `local` pool (each
host's own directory) and a `shared` pool (one directory every host mounts) usable on
every host.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ctl.dev.qemu import SHARED_PATH
from tests.support.libvirtd import LibvirtDaemon, LibvirtUnavailable
from tests.support.qemucluster import Cluster, running_cluster

STORAGE_NODES = ("hv1", "hv2", "hv3")
LOCAL_PATH = "/var/lib/libvirt/herd-pools/local"  # /var/lib/libvirt: each host's own


@pytest.fixture(scope="session")
def libvirtd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LibvirtDaemon]:
    """The system libvirtd answering `qemu:///system`, or a skip saying why not."""
    daemon = LibvirtDaemon(tmp_path_factory.mktemp("libvirtd"))
    try:
        daemon.start()
    except LibvirtUnavailable as e:
        pytest.skip(f"no usable system libvirtd: {e}")
    yield daemon
    daemon.stop()


@pytest.fixture(scope="package")
def storage_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("qemu-storage"), STORAGE_NODES) as made:
        made.ctl("pool", "add", "local", "--type", "local", "--path", LOCAL_PATH)
        made.ctl("pool", "add", "shared", "--type", "shared", "--path", SHARED_PATH)
        for node in STORAGE_NODES:
            made.until(node, lambda n: all(
                ((n["status"] or {}).get("pools") or {}).get(p, {}).get("usable")
                for p in ("local", "shared")), kind="Node")
        yield made
