"""Benchmark: a serial console's round trip (issue #16), through Herd vs `virsh console`
on the same QEMU host, in the same run, on the same guest.

A one-host real-QEMU dev cluster (`herdctl dev up --hypervisor qemu` machinery,
in-process) runs the console guest (`console_guest_xml`: TCG, SeaBIOS on the serial
port, whose boot menu starts iPXE; Ctrl-B at iPXE's prompt gives its shell, which echoes
what is typed). Measured: the time from sending one printable character to seeing it
come back, the shell idle (a-z in turn; a line is entered every 50 characters, untimed).
- Herd: a WebSocket client (aiohttp, no herdctl) on `GET /api/v1/vm/<vm>/console` ->
  herd-api -> the node endpoint's WebSocket -> libvirt's console stream -> QEMU's pty.
- virsh: `virsh -c <host uri> console <vm> --force` in a pseudo-terminal (pexpect, no
  send or read delays) -> libvirtd's console stream -> QEMU's pty.
The two take turns in blocks of 50 characters, each block on a fresh session (`force`
on both sides), so a load from elsewhere on the machine falls on both.
Goal: Herd's median within +5 ms of virsh's (two WebSocket hops and two asyncio relays
on top of the same libvirt stream; a key's echo stays well under what a person notices).
Run: `.venv/bin/python -m bench.console_bench [--rounds N]` (root). Writes
bench/results/console.*.
"""

from __future__ import annotations

import argparse
import asyncio
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
BLOCK = 50  # characters per line (and per session): iPXE's line stays within 80 columns
PROMPT = re.compile(rb"iPXE> ")
TIMEOUT = 10.0  # seconds for one echo
Socket = aiohttp.ClientWebSocketResponse


def key(i: int) -> bytes:
    return bytes([ord("a") + i % 26])


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


async def drain(ws: Socket, quiet: float = 0.3) -> None:
    """Read until the console has been quiet for `quiet` seconds."""
    await receive_until(ws, re.compile(rb"(?!)"), quiet)


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


async def herd_key(ws: Socket, char: bytes) -> float:
    """One round trip: `char` sent, the time until it is in what came back."""
    seen = b""
    start = time.perf_counter()
    await ws.send_bytes(char)
    while char not in seen:
        msg = await asyncio.wait_for(ws.receive(), TIMEOUT)
        if msg.type != aiohttp.WSMsgType.BINARY:
            raise RuntimeError(f"the console ended: {msg.type} {msg.data!r}")
        seen += msg.data
    return time.perf_counter() - start


async def herd_block(client: Client, first: int, count: int, *, boot: bool) -> list[float]:
    """A fresh API console session: a line of `count` keys from key(first) on, timed."""
    async with aiohttp.ClientSession() as session:
        ws = await connect(session, client, f"/vm/{NAME}/console", force="true")
        try:
            if boot:
                await into_shell(ws)
            await ws.send_bytes(b"\r")  # enters the last block's line: a fresh prompt
            if await receive_until(ws, PROMPT, TIMEOUT) is None:
                raise RuntimeError("no iPXE prompt through the API")
            await drain(ws)
            return [await herd_key(ws, key(i)) for i in range(first, first + count)]
        finally:
            await ws.close()


def virsh_block(uri: str, first: int, count: int) -> list[float]:
    """A fresh `virsh console --force`: a line of `count` keys from key(first), timed."""
    child = pexpect.spawn("virsh", ["-c", uri, "console", NAME, "--force"], timeout=TIMEOUT,
                          echo=False)
    child.delaybeforesend = None
    child.delayafterread = None
    try:
        child.expect_exact(b"Escape character")
        child.send(b"\r")
        child.expect(PROMPT)
        child.expect(pexpect.TIMEOUT, timeout=0.3)  # drain: quiet for 0.3 s
        child.buffer = b""
        took = []
        for i in range(first, first + count):
            char = key(i)
            start = time.perf_counter()
            child.send(char)
            child.expect_exact(char)
            took.append(time.perf_counter() - start)
        child.send(b"\x1d")  # Ctrl-]: virsh leaves
        child.expect(pexpect.EOF)
        return took
    finally:
        child.close(force=True)


def rounds_in_turn(client: Client, uri: str, rounds: int) -> dict[str, list[float]]:
    """Herd and virsh in alternating blocks of BLOCK keys, `rounds` keys each."""
    herd: list[float] = []
    virsh: list[float] = []
    for first in range(0, rounds, BLOCK):
        count = min(BLOCK, rounds - first)
        herd += asyncio.run(herd_block(client, first, count, boot=first == 0))
        virsh += virsh_block(uri, first, count)
        print(f"{first + count}/{rounds}: herd p50 {statistics.median(herd) * 1000:.2f} ms, "
              f"virsh p50 {statistics.median(virsh) * 1000:.2f} ms")
    return {"herd_s": herd, "virsh_s": virsh}


def summary(samples_s: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples_s]
    return {"p50_ms": round(statistics.median(ms), 3), "p90_ms": round(percentile(ms, 90), 3),
            "p99_ms": round(percentile(ms, 99), 3), "mean_ms": round(statistics.fmean(ms), 3),
            "max_ms": round(max(ms), 3), "n": len(ms)}


def report(samples: dict[str, list[float]]) -> None:
    herd, virsh = summary(samples["herd_s"]), summary(samples["virsh_s"])
    rows = [(f"console key -> echo, {label} (ms, {herd['n']} keys)",
             f"{herd[k]:.2f}", f"{virsh[k]:.2f} (virsh console)",
             "<= virsh + 5 ms" if k == "p50_ms" else "")
            for label, k in (("median", "p50_ms"), ("p90", "p90_ms"), ("p99", "p99_ms"),
                             ("mean", "mean_ms"))]
    figures: dict[str, Any] = {"herd": herd, "virsh": virsh,
                               "overhead_p50_ms": round(herd["p50_ms"] - virsh["p50_ms"], 3),
                               "block": BLOCK, **samples}
    save("console", figures, rows)


def measure(directory: Path, rounds: int) -> dict[str, list[float]]:
    dev = cluster.up(directory, nodes=1, timeout=180, say=print, hypervisor="qemu")
    try:
        client = Client(dev.url, token=dev.token, timeout=120)
        client.post("/vm", {"xml": console_guest_xml(NAME), "node": NODE})
        client.post(f"/vm/{NAME}/state", {"state": "start", "wait": True, "timeout": 60},
                    timeout=70)
        return rounds_in_turn(client, cluster.hosts_of(dev)[NODE].uri, rounds)
    finally:
        cluster.down(directory, say=lambda _message: None)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.console_bench")
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--dir", type=Path, help="keep the cluster's files (logs) here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="herd-bench-console-") as tmp:
        samples = measure(args.dir or Path(tmp), args.rounds)
    report(samples)


if __name__ == "__main__":
    main()
