"""`herdctl dev up` that does not finish: interrupted (Ctrl-C) it stops what it started
itself; killed outright half-way, `herdctl dev down` stops what the state file recorded.
Either way no process of the cluster is left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ctl.dev import processes, state
from ctl.dev.state import DevState

HERDCTL = str(Path(sys.executable).with_name("herdctl"))


# herdctl as a user's terminal runs it: with Ctrl-C's default effect, even when this test
# runs in a background job (whose shell has SIGINT ignored, and ignored stays across exec).
INTERACTIVE_HERDCTL = [sys.executable, "-c", "import signal; "
                       "signal.signal(signal.SIGINT, signal.default_int_handler); "
                       "from ctl.main import main; main()"]


def start_dev_up(directory: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HERD_DEV_DIR": str(directory)}
    return subprocess.Popen([*INTERACTIVE_HERDCTL, "dev", "up", "--nodes", "2"], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)


def recorded_at_least(directory: Path, count: int, proc: subprocess.Popen[bytes]) -> DevState:
    """The state file once it records `count` processes (dev up writes it as it goes)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = state.load(directory)
        if found is not None and len(found.processes) >= count:
            return found
        assert proc.poll() is None, "dev up ended before it got there"
        time.sleep(0.02)  # polling a child's state file: there is no event to wait on
    raise AssertionError(f"dev up never recorded {count} processes")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
def test_an_unfinished_dev_up_leaves_nothing_running(tmp_path: Path, sig: int) -> None:
    proc = start_dev_up(tmp_path)
    try:
        found = recorded_at_least(tmp_path, 2, proc)
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode != 0
        if sig == signal.SIGINT:
            assert b"dev up failed: stopping what it started" in out
            assert state.load(tmp_path) is None
        else:
            assert state.load(tmp_path) is not None  # left for dev down
    finally:  # whatever happened, nothing of the cluster outlives the test
        proc.kill()
        proc.communicate(timeout=60)
        down = subprocess.run([HERDCTL, "dev", "down", "--dir", str(tmp_path)],
                              capture_output=True, text=True, timeout=60)
    assert down.returncode == 0, down.stderr
    recorded = state.load(tmp_path)
    assert recorded is None
    everything = {p.pid: p for p in found.processes}
    assert not [p for p in everything.values() if processes.alive(p)]
    # nor one that dev up started but was killed before recording
    assert processes.strays(tmp_path, known=set()) == []


def test_dev_up_refuses_a_directory_that_is_not_its_own(tmp_path: Path) -> None:
    (tmp_path / "precious").write_text("keep me")
    done = subprocess.run([HERDCTL, "dev", "up", "--dir", str(tmp_path)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1 and "is no herdctl dev directory" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious"]
