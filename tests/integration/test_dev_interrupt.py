"""A Ctrl-C that lands while `herdctl dev up` starts a process (the race behind a stray
cluster process on a user's laptop): the process is recorded before KeyboardInterrupt
unwinds, so the cleanup stops it; and `herdctl dev down` stops a cluster program that
names its directory even when no state file is left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ctl.dev import cluster, processes, state
from ctl.dev.processes import ProcessRecord


@pytest.fixture
def ctrl_c_raises() -> Iterator[None]:
    """SIGINT as a terminal's herdctl has it (a background job inherits it ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def fake_node(directory: Path) -> tuple[subprocess.Popen[bytes], ProcessRecord]:
    """A process that looks like the dev cluster's herd-node of `directory` to
    `processes.strays` (program name and directory in its arguments) and waits for a
    signal."""
    program = directory / "herd-node"
    program.write_text("import signal\nsignal.pause()\n")
    return processes.spawn("node/hv1", [sys.executable, str(program), str(directory)],
                           log=directory / "fake.log")


def test_a_ctrl_c_while_a_process_starts_is_raised_once_it_is_recorded(
        tmp_path: Path, ctrl_c_raises: None) -> None:
    launch = cluster.Launch(tmp_path, nodes=1, say=lambda _line: None, hypervisor="test")

    def spawn_and_interrupted() -> tuple[subprocess.Popen[bytes], ProcessRecord]:
        started = fake_node(tmp_path)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C before the caller has recorded it
        return started

    try:
        with pytest.raises(KeyboardInterrupt):
            launch.start(spawn_and_interrupted)
        recorded = state.load(tmp_path)
        assert recorded is not None and len(recorded.processes) == 1
        assert processes.alive(recorded.processes[0])
    finally:
        cluster.stop_all(launch.state, children=launch.children, say=lambda _line: None)
    assert not processes.alive(launch.state.processes[0])


def test_dev_down_without_a_state_file_stops_a_stray(tmp_path: Path) -> None:
    proc, record = fake_node(tmp_path)
    try:
        assert state.load(tmp_path) is None
        outcome = cluster.down(tmp_path, say=lambda _line: None)
        assert outcome == [("stray", record.pid, "stopped")]
        assert not processes.alive(record)
    finally:
        proc.kill()
        proc.wait(timeout=10)
