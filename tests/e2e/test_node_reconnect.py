"""Regression (found by the fault suite, issue #8, seed 6): when a ZooKeeper member dies,
herd-node reconnects to another with its session intact; it then "re-registered" and
found its own `alive` znode, took it for another session's ("node hv1 is registered by
another session; waiting for it to end") and waited up to two minutes for it to vanish.
A SIGTERM in that time hung the process (the waiting thread kept it alive) until it was
killed. A node whose own session holds `alive` is registered: nothing to wait for.

A `herd-node` process on a 3-member ensemble of the test's own; the member it is
connected to is killed.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from store.client import Store
from tests.support.libvirt_nodes import write_node_file
from tests.support.waits import poll_until, wait_doc
from tests.support.zkserver import ZooKeeperCluster

HERD_NODE = str(Path(sys.executable).with_name("herd-node"))
CONNECTED = "Zookeeper connection established"


def spawn(hosts: str, root: str, *, tmp_path: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [HERD_NODE, "--name", "hv1", "--zk-hosts", hosts, "--zk-root", root,
             "--zk-timeout", "6", "--initial-domain-state", "ready", "--status-interval", "1",
             "--libvirt-uri", write_node_file(tmp_path, "hv1")],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


@pytest.mark.ensemble
async def test_a_node_that_kept_its_session_through_a_member_loss_stops_promptly(
        tmp_path: Path, zk_ensemble: ZooKeeperCluster, zk_root: str) -> None:
    log = tmp_path / "hv1.log"
    proc = spawn(zk_ensemble.dsn, zk_root, tmp_path=tmp_path, log=log)
    store = Store(zk_ensemble.dsn, zk_root, timeout=5.0)
    try:
        store.start()
        await wait_doc(store, store.paths.node_status("hv1"),
                       lambda d: bool(d and d.get("daemonState") == "run"), timeout=30)
        alive = store.exists(store.paths.node_alive("hv1"))
        assert alive is not None
        session = alive.ephemeralOwner
        port = int(re.findall(r"Connecting to [^:]+:(\d+)", log.read_text())[-1])
        zk_ensemble.kill(next(i for i, m in enumerate(zk_ensemble.members)
                              if port in (m.client_port, m.secure_port)))
        poll_until(lambda: log.read_text().count(CONNECTED) >= 2, timeout=30,
                   what="herd-node connected to another member")
        since = time.time()
        await wait_doc(store, store.paths.node_status("hv1"),  # it works on after that
                       lambda d: bool(d and d.get("heartbeat", 0) > since + 1), timeout=30)
        alive = store.exists(store.paths.node_alive("hv1"))
        assert alive is not None and alive.ephemeralOwner == session
        assert "registered by another session" not in log.read_text()
        stopping = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert time.monotonic() - stopping < 10
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        store.stop()
