"""herd-watchdog's server with real processes petting it over its Unix socket and a
libvirt test-driver host: a petting process that goes silent is killed and the guests are
powered off; one that keeps petting, hands over to its successor, or disarms, is not.
(The whole of self-fencing, with herd-node, ZooKeeper and QEMU hosts, is in
tests/e2e/test_qemu_selffence.py.)"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import libvirt
import pytest

from reconciler.libvirt.poweroff import power_off_domains
from reconciler.watchdog.mux import Firing, WatchdogMux

PETTER = """
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rw")
for line in sys.argv[2:]:
    f.write(line + "\\n"); f.flush()
    print(f.readline().strip(), flush=True)
time.sleep(60)
"""


@pytest.fixture
def host() -> libvirt.virConnect:
    conn = libvirt.open("test:///default")  # one running guest, "test"
    yield conn
    conn.close()


@pytest.fixture
async def mux(tmp_path: Path, host: libvirt.virConnect) -> AsyncIterator[WatchdogMux]:
    mux = WatchdogMux(tmp_path / "wd.sock", Firing(lambda: power_off_domains(host)))
    task = asyncio.create_task(mux.serve())
    await mux.serving.wait()
    yield mux
    mux.stop()
    await task


async def _petter(mux: WatchdogMux, *lines: str) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", PETTER, str(mux.socket_path), *lines,
        stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    for _ in lines:
        assert (await proc.stdout.readline()).startswith(b"ok")
    return proc


def _running(host: libvirt.virConnect) -> list[str]:
    return [d.name() for d in host.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)]


async def _until_fired(mux: WatchdogMux) -> None:
    async with asyncio.timeout(10):
        await mux.has_fired.wait()


async def test_a_silent_daemon_is_killed_and_the_guests_powered_off(
        mux: WatchdogMux, host: libvirt.virConnect) -> None:
    proc = await _petter(mux, "pet hv1 1.5")
    assert _running(host) == ["test"]
    await _until_fired(mux)
    assert await asyncio.wait_for(proc.wait(), 5) == -9
    assert _running(host) == []
    [fired] = mux.firing.fired
    assert (fired.name, fired.killed, fired.guests) == ("hv1", proc.pid, ["test"])
    assert mux.status()["watches"] == {} and mux.reset_host


async def test_a_restarted_daemon_takes_the_watch_over_in_time(
        mux: WatchdogMux, host: libvirt.virConnect) -> None:
    first = await _petter(mux, "pet hv1 2")
    first.kill()  # kill -9 of herd-node: its watch stays armed
    await first.wait()
    second = await _petter(mux, "pet hv1 2")
    try:
        await _until_fired(mux)  # the second one also goes silent: it alone is killed
        assert mux.firing.fired[0].killed == second.pid
        assert await asyncio.wait_for(second.wait(), 5) == -9
    finally:
        if second.returncode is None:
            second.kill()
            await second.wait()


async def test_a_disarmed_watch_never_fires(mux: WatchdogMux, host: libvirt.virConnect) -> None:
    proc = await _petter(mux, "pet hv1 1", "disarm hv1")
    try:
        assert mux.deadlines.next_deadline() is None  # nothing is left to expire
        assert mux.firing.fired == [] and _running(host) == ["test"]
        assert proc.returncode is None
    finally:
        proc.kill()
        await proc.wait()
