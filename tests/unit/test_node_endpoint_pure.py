"""The pure parts of the node endpoint (issue #16): tickets (`store.nodekeys`), the serial
console log in a domain definition (`reconciler.libvirt.consolexml`), rates from two stats
samples (`reconciler.endpoint.figures`), the console log files (`ConsoleLogs`: history,
rotation, the limit), and herdctl's raw terminal, restored on any exit."""

from __future__ import annotations

import os
import pty
import termios
from pathlib import Path

import pytest
from defusedxml import ElementTree

from ctl.views import figures_text
from ctl.wsclient import raw_terminal
from reconciler.endpoint.consolelogs import ConsoleLogs
from reconciler.endpoint.figures import Sample, rates
from reconciler.libvirt.consolexml import console_log_path, with_console_log
from reconciler.libvirt.interface import DiskStats, DomainStats, InterfaceStats
from store.nodekeys import TICKET_TTL, TicketCheck, sign
from vocabulary import RunState

KEY = "k" * 64


def test_a_ticket_admits_one_request_to_its_path_once_before_it_expires() -> None:
    check = TicketCheck(KEY)
    ticket = sign(KEY, "GET", "/vm/web1/console?force=1", now=1000.0)
    assert check.refusal(ticket, "GET", "/vm/web1/console?force=1", now=1001.0) is None
    assert check.refusal(ticket, "GET", "/vm/web1/console?force=1", now=1001.0) == \
        "the ticket was used already"
    fresh = sign(KEY, "GET", "/vm/web1/console", now=1000.0)
    assert "signature" in str(check.refusal(fresh, "GET", "/vm/web1/console?force=1",
                                            now=1001.0))
    assert "signature" in str(check.refusal(fresh, "PUT", "/vm/web1/console", now=1001.0))
    assert "expired" in str(check.refusal(fresh, "GET", "/vm/web1/console",
                                          now=1000.0 + TICKET_TTL + 1))
    other = sign("x" * 64, "GET", "/vm/web1/log", now=1000.0)
    assert "signature" in str(check.refusal(other, "GET", "/vm/web1/log", now=1001.0))
    for header in (None, "", "Bearer abc", "Herd-Node 12.ab", "Herd-Node x.y.z"):
        assert check.refusal(header, "GET", "/", now=1001.0) == \
            "a Herd-Node ticket is required"


def test_used_nonces_are_forgotten_once_their_tickets_expired() -> None:
    check = TicketCheck(KEY)
    for i in range(3):
        assert check.refusal(sign(KEY, "GET", f"/vm/v{i}/log", now=0.0), "GET",
                             f"/vm/v{i}/log", now=1.0) is None
    assert len(check.seen) == 3
    assert check.refusal(sign(KEY, "GET", "/figures", now=500.0), "GET", "/figures",
                         now=501.0) is None
    assert len(check.seen) == 1


def _serials(xml: str) -> list[tuple[str | None, list[tuple[str | None, str | None]]]]:
    root = ElementTree.fromstring(xml)
    return [(s.get("type"), [(log.get("file"), log.get("append")) for log in s.findall("log")])
            for s in root.iter("serial")]


def test_the_serial_device_logs_to_the_vms_file_and_one_is_added_if_missing() -> None:
    path = console_log_path("/var/log/herd/console/", "web1")
    assert path == "/var/log/herd/console/web1.log"
    bare = "<domain type='kvm'><name>web1</name></domain>"
    added = with_console_log(bare, path)
    assert _serials(added) == [("pty", [(path, "on")])]
    console = ElementTree.fromstring(added).find("devices/console")
    assert console is not None and console.get("type") == "pty"
    given = ("<domain><name>web1</name><devices><serial type='pty'><log file='/old'/>"
             "<target port='0'/></serial><serial type='pty'/></devices></domain>")
    assert _serials(with_console_log(given, path)) == [("pty", [(path, "on")]), ("pty", [])]
    spice = "<domain><devices><serial type='spicevmc'/></devices></domain>"
    assert with_console_log(spice, path) == spice


def _stats(name: str, cpu: float, *, read: int = 0, rx: int = 0) -> DomainStats:
    return DomainStats(name=name, state=RunState.RUNNING, cpu_seconds=cpu,
                       balloon_current_bytes=64 << 20,
                       disks=(DiskStats("vda", read_bytes=read, read_requests=read // 4096),),
                       interfaces=(InterfaceStats("vnet0", rx_bytes=rx),))


def test_rates_are_counter_deltas_over_the_window() -> None:
    before = Sample(10.0, {"a": _stats("a", 5.0, read=0, rx=1000)})
    after = Sample(12.0, {"a": _stats("a", 6.0, read=8192, rx=3000), "b": _stats("b", 1.0)})
    found = rates(before, after)
    assert found["a"].cpuPercent == 50.0  # 1 CPU-second in 2 s
    assert found["a"].diskReadBytesPerSecond == 4096.0
    assert found["a"].diskReadsPerSecond == 1.0
    assert found["a"].networkReceiveBytesPerSecond == 1000.0
    assert found["b"].cpuPercent == 0.0  # new since the first sample: no rate yet
    assert found["a"].memoryBytes == 64 << 20
    restarted = Sample(14.0, {"a": _stats("a", 0.5)})  # counters went back: never negative
    assert rates(after, restarted)["a"].cpuPercent == 0.0
    text = figures_text({"cpuPercent": 50.0, "memoryBytes": 64 << 20,
                         "diskReadBytesPerSecond": 4096.0})
    assert text.startswith("CPU 50.0 %, memory 64 MiB") and "read 4.0 KiB/s" in text


def test_a_console_log_is_history_then_rotated_files_then_the_current_one(
        tmp_path: Path) -> None:
    logs = ConsoleLogs(str(tmp_path), limit=20)
    assert logs.tail("web1") == b""
    (tmp_path / "web1.log.1").write_bytes(b"older-")
    (tmp_path / "web1.log.0").write_bytes(b"old-")
    (tmp_path / "web1.log").write_bytes(b"now")
    logs.store_history("web1", b"x" * 30 + b"before-")
    assert (tmp_path / "web1.history").read_bytes() == b"x" * 13 + b"before-"  # the limit
    assert logs.tail("web1") == b"before-older-old-now"  # the last 20 bytes of all
    logs.forget("web1")
    assert list(tmp_path.iterdir()) == []


def test_the_raw_terminal_is_restored_on_any_exit() -> None:
    leader, follower = pty.openpty()
    try:
        cooked = termios.tcgetattr(follower)
        with pytest.raises(RuntimeError), raw_terminal(follower):
            assert termios.tcgetattr(follower)[3] & termios.ECHO == 0  # raw: no echo
            raise RuntimeError("the session failed")
        assert termios.tcgetattr(follower) == cooked
    finally:
        os.close(leader)
        os.close(follower)
