"""Shared fixtures: real ZooKeeper (one server per session, an ensemble on demand), a fresh
cluster root per test, and guards that fail any test leaking asyncio tasks or processes.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from store.client import Store
from store.layout import ensure_layout
from tests.support.zkserver import ZooKeeperCluster


@pytest.fixture(scope="session")
def zk_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZooKeeperCluster]:
    """One ZooKeeper server for the whole session (Debian's package, a free loopback port)."""
    cluster = ZooKeeperCluster(tmp_path_factory.mktemp("zk"), members=1)
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def zk_hosts(zk_cluster: ZooKeeperCluster) -> str:
    """Herd's connection string: the server with Herd's digest identity (every test runs
    with ZooKeeper auth and ACLs on)."""
    return zk_cluster.dsn


@pytest.fixture
def zk_root(request: pytest.FixtureRequest) -> str:
    """A cluster root of this test's own, so tests never see each other's znodes."""
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40]
    return f"/t-{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def store(zk_hosts: str, zk_root: str) -> Iterator[Store]:
    """A started store under this test's root, with the layout created."""
    s = Store(zk_hosts, zk_root, timeout=5.0)
    s.start()
    ensure_layout(s)
    yield s
    s.stop()


@pytest.fixture
def zk_ensemble(tmp_path: Path) -> Iterator[ZooKeeperCluster]:
    """A 3-member ensemble of this test's own, for fault tests (members can be killed)."""
    cluster = ZooKeeperCluster(tmp_path / "ensemble", members=3)
    cluster.start()
    yield cluster
    cluster.stop()


# --- leak guards ----------------------------------------------------------------------------

def _children() -> set[int]:
    me = str(os.getpid())
    out = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me and fields[0] != "Z":
            out.add(int(entry))
    return out


@pytest.fixture(autouse=True)
def no_leaked_processes() -> Iterator[None]:
    """Fail a test that leaves a child process running (and kill what it left)."""
    before = _children()
    yield
    leaked = _children() - before
    for pid in leaked:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not leaked, f"test leaked child processes: {sorted(leaked)}"


@pytest_asyncio.fixture
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fail an async test that leaves asyncio tasks running (and cancel them)."""
    before = asyncio.all_tasks()
    yield
    await asyncio.sleep(0)
    leaked = [t for t in asyncio.all_tasks() - before
              if t is not asyncio.current_task() and not t.done()]
    for t in leaked:
        t.cancel()
    assert not leaked, f"test leaked asyncio tasks: {leaked}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fn = getattr(item, "function", None)
        if fn is not None and inspect.iscoroutinefunction(fn):
            # First in, last out: checked after every other fixture's teardown.
            item.fixturenames.insert(0, "no_leaked_tasks")  # type: ignore[attr-defined]
