"""Benchmark: a serial console's round trip (issue #16), through Herd vs `virsh console`
on the same QEMU host, in the same run, on the same guest.

A one-host real-QEMU dev cluster (`herdctl dev up --hypervisor qemu` machinery,
in-process) runs the console guest (`console_guest_xml`: TCG, SeaBIOS on the serial
port, whose boot menu starts iPXE; Ctrl-B at iPXE's prompt gives its shell, which echoes
what is typed). Measured: the time from sending one printable character (a-z in turn)
to seeing it come back, the shell idle; a line is entered every 50 keys, untimed.
- Herd: a WebSocket client (aiohttp, no herdctl) on `GET /api/v1/vm/<vm>/console` ->
  herd-api -> the node endpoint's WebSocket -> libvirt's console stream -> QEMU's pty.
- virsh: `virsh -c <host uri> console <vm> --force` in a pseudo-terminal (pexpect, no
  send or read delays) -> libvirtd's console stream -> QEMU's pty.
The two take turns in blocks of 50 keys, each block on a fresh session (`force` on both
sides), so a load from elsewhere on the machine falls on both.

The guest sets the pace: iPXE waits for keys halted (`hlt`) and polls the serial port
only when its 18.2 Hz timer (the PIT, TICK = 54.9 ms) wakes it, and (as measured here)
the echo comes one tick after the tick that found the key. A key sent as soon as the last
echo showed is echoed exactly 2 ticks (109.85 ms) after that echo, whatever the path's
own time (below a tick). So each key is sent after a pause spread evenly over one tick
(the same shuffled pauses on both sides): the key -> echo figures then spread over 1 to 2
ticks, and a key misses the next tick (its echo comes 3 ticks after the last, not 2) when
pause + the path's own round trip > TICK. The path's round trip is read off that
boundary: TICK minus the pause that separates the keys that made the tick from those that
missed it (to TICK / rounds: 0.27 ms at 200).
Goal: Herd's own round trip (two WebSocket hops and two asyncio relays on top of the same
libvirt stream) within +5 ms of virsh's; either way the guest's tick dominates.
Run: `.venv/bin/python -m bench.console_bench [--rounds N]` (root). Writes
bench/results/console.*.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import pexpect

from bench.common import percentile, save
from ctl.client import Client
from ctl.dev import cluster
from ctl.dev.guest import console_guest_xml
from ctl.wsclient import connect

NAME = "console-bench"
NODE = "hv1"
BLOCK = 50  # timed keys per line and session (+1 untimed: iPXE's line stays < 80 columns)
TICK = 65536 / 1_193_182  # the guest's timer tick (PIT at 18.2 Hz), seconds
PROMPT = re.compile(rb"iPXE> ")
TIMEOUT = 10.0  # seconds for one echo
Socket = aiohttp.ClientWebSocketResponse
Sample = tuple[float, float]  # (key sent -> echo seen, last echo seen -> echo seen), s


def key(i: int) -> bytes:
    return bytes([ord("a") + i % 26])


def spread_pauses(rounds: int, seed: int = 16) -> list[float]:
    """`rounds` pauses spread evenly over one tick, in a shuffled order."""
    rng = random.Random(seed)
    offset = rng.random()
    pauses = [TICK * (i + offset) / rounds for i in range(rounds)]
    rng.shuffle(pauses)
    return pauses


def wait_until(moment: float) -> None:
    """Sleep until perf_counter() reaches `moment` (time.sleep: to ~0.1 ms; an event
    loop's sleep wakes on whole milliseconds, which would bunch the pauses)."""
    time.sleep(max(0.0, moment - time.perf_counter()))


async def receive_until(ws: Socket, pattern: re.Pattern[bytes],
                        timeout: float) -> re.Match[bytes] | None:
    """Read the console until `pattern` shows in what came (None after `timeout`)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while (found := pattern.search(seen)) is None:
        try:
            msg = await asyncio.wait_for(ws.receive(), deadline - time.monotonic())
        except TimeoutError:
            return None
        if msg.type != aiohttp.WSMsgType.BINARY:
            raise RuntimeError(f"the console ended: {msg.type} {msg.data!r} {msg.extra!r}")
        seen += msg.data
    return found


async def into_shell(ws: Socket) -> None:
    """ESC (SeaBIOS's boot menu), its iPXE entry, then Ctrl-B until iPXE's shell."""
    for _ in range(9):  # ESC again only while no menu showed (in the menu it boots)
        await ws.send_bytes(b"\x1b")
        if (entry := await receive_until(ws, re.compile(rb"(\d)\. iPXE"), 10.0)) is not None:
            break
    else:
        raise RuntimeError("SeaBIOS's boot menu never showed")
    await ws.send_bytes(entry.group(1))
    for _ in range(120):  # Ctrl-B during iPXE's "Press Ctrl-B" (after its DHCP)
        await ws.send_bytes(b"\x02")
        if await receive_until(ws, PROMPT, 0.5) is not None:
            return
    raise RuntimeError("iPXE's shell never came")


async def herd_echo(ws: Socket, char: bytes) -> float:
    """Send `char`; the time (perf_counter) its echo was in what came back."""
    await ws.send_bytes(char)
    seen = b""
    while char not in seen:
        msg = await asyncio.wait_for(ws.receive(), TIMEOUT)
        if msg.type != aiohttp.WSMsgType.BINARY:
            raise RuntimeError(f"the console ended: {msg.type} {msg.data!r}")
        seen += msg.data
    return time.perf_counter()


async def herd_line(ws: Socket, first: int, pauses: list[float]) -> list[Sample]:
    """key(first), untimed (it sets the phase), then one timed key after each pause."""
    last = await herd_echo(ws, key(first))
    samples = []
    for i, pause in enumerate(pauses, first + 1):
        wait_until(last + pause)  # blocking: nothing else is due on this loop
        sent = time.perf_counter()
        seen = await herd_echo(ws, key(i))
        samples.append((seen - sent, seen - last))
        last = seen
    return samples


async def herd_block(client: Client, first: int, pauses: list[float], *,
                     boot: bool) -> list[Sample]:
    """A fresh API console session: enter the last line (a fresh prompt), then a line."""
    async with aiohttp.ClientSession() as session:
        ws = await connect(session, client, f"/vm/{NAME}/console", force="true")
        try:
            if boot:
                await into_shell(ws)
            await ws.send_bytes(b"\r")
            if await receive_until(ws, PROMPT, TIMEOUT) is None:
                raise RuntimeError("no iPXE prompt through the API")
            await receive_until(ws, re.compile(rb"(?!)"), 0.3)  # until quiet for 0.3 s
            return await herd_line(ws, first, pauses)
        finally:
            await ws.close()


def virsh_session(uri: str) -> pexpect.spawn:
    """`virsh console --force` at a fresh iPXE prompt, what came before read."""
    child = pexpect.spawn("virsh", ["-c", uri, "console", NAME, "--force"], timeout=TIMEOUT,
                          echo=False)
    child.delaybeforesend = None
    child.delayafterread = None
    child.expect_exact(b"Escape character")
    for _ in range(20):  # virsh flushes what came before its raw mode: again until seen
        child.send(b"\r")
        if child.expect([PROMPT, pexpect.TIMEOUT], timeout=0.5) == 0:
            break
    else:
        raise RuntimeError("no iPXE prompt through virsh")
    child.expect(pexpect.TIMEOUT, timeout=0.3)  # until quiet for 0.3 s
    child.buffer = b""
    return child


def virsh_echo(child: pexpect.spawn, char: bytes) -> float:
    child.send(char)
    child.expect_exact(char)
    return time.perf_counter()


def virsh_block(uri: str, first: int, pauses: list[float]) -> list[Sample]:
    """A fresh `virsh console`: key(first) untimed, then one timed key after each pause."""
    child = virsh_session(uri)
    try:
        last = virsh_echo(child, key(first))
        samples = []
        for i, pause in enumerate(pauses, first + 1):
            wait_until(last + pause)
            sent = time.perf_counter()
            seen = virsh_echo(child, key(i))
            samples.append((seen - sent, seen - last))
            last = seen
        child.send(b"\x1d")  # Ctrl-]: virsh leaves
        child.expect(pexpect.EOF)
        return samples
    finally:
        child.close(force=True)


def in_turn(client: Client, uri: str, rounds: int) -> dict[str, list[Sample]]:
    """Herd and virsh in alternating blocks of BLOCK timed keys, the same pauses."""
    pauses = spread_pauses(rounds)
    herd: list[Sample] = []
    virsh: list[Sample] = []
    for first in range(0, rounds, BLOCK):
        block = pauses[first:first + BLOCK]
        herd += asyncio.run(herd_block(client, first, block, boot=first == 0))
        virsh += virsh_block(uri, first, block)
        print(f"{len(herd)}/{rounds} keys: key -> echo p50 herd "
              f"{statistics.median(s[0] for s in herd) * 1000:.2f} ms, virsh "
              f"{statistics.median(s[0] for s in virsh) * 1000:.2f} ms")
    return {"herd": herd, "virsh": virsh}


def path_ms(samples: list[Sample]) -> float:
    """The path's own round trip: TICK minus the pause that splits the keys echoed 2
    ticks after the last echo from those echoed 3 ticks after it (see the docstring)."""
    pauses = sorted(interval - took for took, interval in samples)
    missed = sum(1 for _took, interval in samples if round(interval / TICK) > 2)
    made = len(pauses) - missed
    if missed == 0:
        boundary = pauses[-1]
    elif made == 0:
        boundary = pauses[0]
    else:
        boundary = (pauses[made - 1] + pauses[made]) / 2
    return (TICK - boundary) * 1000


def summary(samples: list[Sample]) -> dict[str, float]:
    ms = [took * 1000 for took, _interval in samples]
    on_tick = [abs(i / TICK - round(i / TICK)) * TICK < 0.002 for _took, i in samples]
    return {"p50_ms": round(statistics.median(ms), 2), "p90_ms": round(percentile(ms, 90), 2),
            "p99_ms": round(percentile(ms, 99), 2), "mean_ms": round(statistics.fmean(ms), 2),
            "path_ms": round(path_ms(samples), 2), "n": len(ms),
            "missed_tick": sum(1 for _took, i in samples if round(i / TICK) > 2),
            "on_tick_share": round(sum(on_tick) / len(on_tick), 3)}


def report(samples: dict[str, list[Sample]]) -> None:
    herd, virsh = summary(samples["herd"]), summary(samples["virsh"])
    stats = ("p50_ms", "p90_ms", "p99_ms", "mean_ms")
    rows = [(f"console key -> echo, {herd['n']} keys sent at points spread over the guest's "
             f"{TICK * 1000:.1f} ms timer tick: median / p90 / p99 / mean (ms)",
             " / ".join(f"{herd[k]:.1f}" for k in stats),
             " / ".join(f"{virsh[k]:.1f}" for k in stats) + " (virsh console)", "-"),
            ("the path's own round trip: key -> guest -> echo less the wait for the guest's "
             f"tick (ms, to {TICK * 1000 / herd['n']:.2f} ms)", f"{herd['path_ms']:.1f}",
             f"{virsh['path_ms']:.1f} (virsh console)", "<= virsh + 5 ms")]
    figures: dict[str, Any] = {
        "tick_ms": round(TICK * 1000, 3), "block": BLOCK, "herd": herd, "virsh": virsh,
        "herd_extra_path_ms": round(herd["path_ms"] - virsh["path_ms"], 2),
        "samples_s": {side: [[round(t, 6), round(i, 6)] for t, i in s]
                      for side, s in samples.items()}}
    save("console", figures, rows)


def measure(directory: Path, rounds: int) -> dict[str, list[Sample]]:
    dev = cluster.up(directory, nodes=1, timeout=180, say=print, hypervisor="qemu")
    try:
        client = Client(dev.url, token=dev.token, timeout=120)
        client.post("/vm", {"xml": console_guest_xml(NAME), "node": NODE})
        client.post(f"/vm/{NAME}/state", {"state": "start", "wait": True, "timeout": 60},
                    timeout=70)
        return in_turn(client, cluster.hosts_of(dev)[NODE].uri, rounds)
    finally:
        cluster.down(directory, say=lambda _message: None)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.console_bench")
    parser.add_argument("--rounds", type=int, default=200, help="timed keys per side")
    parser.add_argument("--dir", type=Path, help="keep the cluster's files (logs) here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="herd-bench-console-") as tmp:
        samples = measure(args.dir or Path(tmp), args.rounds)
    report(samples)


if __name__ == "__main__":
    main()
