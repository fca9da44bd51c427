"""Fixtures of the e2e tests that need the real hypervisor: the system libvirtd (QEMU).

`libvirtd` (session) starts libvirtd and virtlogd through `tests.support.libvirtd` unless
they already run, and skips the requesting tests with the reason when that is impossible
here (not root, packages missing, the daemon fails). At the end it stops what test sessions
started, once no other test session uses them (see `LibvirtDaemon.stop`). CI runs as root
on Debian 12 with the packages installed: there these tests must run, not skip.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.libvirtd import LibvirtDaemon, LibvirtUnavailable


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
