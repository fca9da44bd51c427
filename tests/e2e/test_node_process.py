"""The `herd-node` program as a real process: configuration errors, SIGTERM, kill -9."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from store.client import Store
from tests.support.libvirt_nodes import write_node_file
from tests.support.waits import wait_doc

HERD_NODE = str(Path(sys.executable).with_name("herd-node"))


class NodeProcess:
    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen([HERD_NODE, *args], stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def signal(self, sig: int) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)

    def reap(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def processes() -> Iterator[list[NodeProcess]]:
    started: list[NodeProcess] = []
    yield started
    for p in started:
        p.reap()


def node_args(zk_hosts: str, zk_root: str, tmp_path: Path, *, timeout: float = 10.0) -> list[str]:
    return ["--name", "hv1", "--zk-hosts", zk_hosts, "--zk-root", zk_root,
            "--zk-timeout", str(timeout), "--initial-domain-state", "ready",
            "--libvirt-uri", write_node_file(tmp_path, "hv1"), "--status-interval", "1"]


def test_bad_configuration_exits_2_naming_the_key_and_writes_nothing(
        tmp_path: Path, zk_hosts: str, zk_root: str, store: Store) -> None:
    config = tmp_path / "node.yaml"
    config.write_text(f"name: hv1\nzk_hosts: {zk_hosts}\nzk_root: {zk_root}-bad\nworkers: -3\n")
    done = subprocess.run([HERD_NODE, "--config", str(config)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith("herd-node: config: workers: "), done.stderr
    assert store.exists(f"{zk_root}-bad") is None


async def test_sigterm_stops_cleanly(tmp_path: Path, zk_hosts: str, zk_root: str,
                                     store: Store, processes: list[NodeProcess]) -> None:
    node = NodeProcess(node_args(zk_hosts, zk_root, tmp_path), tmp_path / "hv1.log")
    processes.append(node)
    await wait_doc(store, store.paths.node_status("hv1"),
                   lambda d: bool(d and d.get("daemonState") == "run"), timeout=30)
    assert node.signal(signal.SIGTERM) == 0
    assert store.get(store.paths.node_status("hv1")).doc["daemonState"] == "stop"
    assert store.exists(store.paths.node_alive("hv1")) is None


async def test_a_restart_after_kill_9_waits_out_the_old_session(
        tmp_path: Path, zk_hosts: str, zk_root: str, store: Store,
        processes: list[NodeProcess]) -> None:
    args = node_args(zk_hosts, zk_root, tmp_path, timeout=3.0)
    first = NodeProcess(args, tmp_path / "first.log")
    processes.append(first)
    await wait_doc(store, store.paths.node_status("hv1"),
                   lambda d: bool(d and d.get("daemonState") == "run"), timeout=30)
    first.signal(signal.SIGKILL)
    killed_at = time.monotonic()
    stale = store.get(store.paths.node_alive("hv1")).doc
    assert stale["pid"] == first.proc.pid  # the killed daemon's session lives on a while
    second = NodeProcess(args, tmp_path / "second.log")
    processes.append(second)
    await wait_doc(store, store.paths.node_alive("hv1"),
                   lambda d: bool(d and d["pid"] == second.proc.pid), timeout=30)
    assert time.monotonic() - killed_at >= 2.0, "the stale registration was not waited out"
    assert second.signal(signal.SIGTERM) == 0
    assert "registered by another session" in (tmp_path / "second.log").read_text()
