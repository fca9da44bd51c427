"""A minimal DHCPv4 client for tests and benchmarks: DISCOVER -> OFFER -> REQUEST -> ACK
(or the INIT-REBOOT of a guest asking for the address it had: REQUEST -> ACK).

Used by tests/integration/test_gateway.py (and benchmarks) to ask a real dnsmasq for a lease
from inside a network namespace, as a guest would. Two faces:

- `python -m tests.support.dhcpclient --iface eth0 --mac 52:54:00:00:00:01 [--hostname h]
  [--timeout 3] [--reboot IP]`, run inside the client's namespace (`ip netns exec NS ...`):
  one exchange, then ONE line of JSON on stdout: `{"ip", "server", "leaseTime", "router",
  "dns", "domain", "offerSeconds", "ackSeconds"}`, or `{"ip": null, "error": ...}` when
  nobody answered in time (exit status 0 either way; 2 for bad arguments).
- `await request_lease(netns, mac, iface=..., ...)`: runs the above in a subprocess and returns a
  `DhcpAnswer` (None when nobody answered).

Why our own client rather than busybox `udhcpc`: we need the exchange's own timings (from the
first DISCOVER to the OFFER and to the ACK, measured in the process that sends them, without
the start-up of a shell or of a lease script), a given MAC without touching the interface's
address, and a clear "no answer within T" outcome; udhcpc reports none of these directly
and configures the interface through a script.

The socket: UDP bound to 0.0.0.0:68 with SO_BINDTODEVICE (only this interface), SO_BROADCAST,
the BOOTP broadcast flag set so that the server broadcasts its replies (the interface has no
address yet). Stdlib only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import struct
import sys
import time
from dataclasses import dataclass

MAGIC = b"\x63\x82\x53\x63"
DISCOVER, OFFER, REQUEST, ACK, NAK = 1, 2, 3, 5, 6
OPT_MASK, OPT_ROUTER, OPT_DNS, OPT_HOSTNAME, OPT_DOMAIN = 1, 3, 6, 12, 15
OPT_REQUESTED_IP, OPT_LEASE_TIME, OPT_MSG_TYPE, OPT_SERVER_ID = 50, 51, 53, 54
OPT_PARAMS, OPT_CLIENT_ID, OPT_END = 55, 61, 255
RETRANSMIT = 1.0  # seconds between retransmissions of an unanswered message

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass(frozen=True)
class DhcpAnswer:
    """What the server granted, and how long it took (seconds from the first DISCOVER)."""

    ip: str
    server: str
    lease_time: int
    router: str | None
    dns: str | None
    domain: str | None
    offer_seconds: float
    ack_seconds: float


def _mac_bytes(mac: str) -> bytes:
    parts = mac.split(":")
    if len(parts) != 6:
        raise ValueError(f"not a MAC address: {mac!r}")
    return bytes(int(p, 16) for p in parts)


def build_message(kind: int, *, xid: int, mac: str, hostname: str | None = None,
                  requested: str | None = None, server: str | None = None) -> bytes:
    """One BOOTREQUEST with the broadcast flag and the options of a DISCOVER or REQUEST."""
    hw = _mac_bytes(mac)
    head = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 0, xid, 0, 0x8000,
                       bytes(4), bytes(4), bytes(4), bytes(4), hw, b"", b"")
    opts = bytearray([OPT_MSG_TYPE, 1, kind, OPT_CLIENT_ID, 7, 1, *hw])
    opts += bytes([OPT_PARAMS, 6, OPT_MASK, OPT_ROUTER, OPT_DNS, OPT_DOMAIN, OPT_LEASE_TIME,
                   OPT_SERVER_ID])
    if hostname:
        name = hostname.encode()
        opts += bytes([OPT_HOSTNAME, len(name)]) + name
    if requested:
        opts += bytes([OPT_REQUESTED_IP, 4]) + socket.inet_aton(requested)
    if server:
        opts += bytes([OPT_SERVER_ID, 4]) + socket.inet_aton(server)
    opts.append(OPT_END)
    return head + MAGIC + bytes(opts)


def parse_reply(data: bytes, xid: int) -> tuple[str, dict[int, bytes]] | None:
    """(yiaddr, options) of a BOOTREPLY to our xid; None for anything else."""
    if len(data) < 240 or data[0] != 2 or data[236:240] != MAGIC:
        return None
    if struct.unpack("!I", data[4:8])[0] != xid:
        return None
    options: dict[int, bytes] = {}
    i = 240
    while i < len(data) and data[i] != OPT_END:
        if data[i] == 0:
            i += 1
            continue
        if i + 1 >= len(data):
            break
        code, length = data[i], data[i + 1]
        options[code] = data[i + 2:i + 2 + length]
        i += 2 + length
    return socket.inet_ntoa(data[16:20]), options


def _open_socket(iface: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
    sock.bind(("0.0.0.0", 68))
    return sock


def _exchange(sock: socket.socket, message: bytes, *, xid: int, wanted: tuple[int, ...],
              deadline: float) -> tuple[str, dict[int, bytes]] | None:
    """Send `message` (again every RETRANSMIT s) until a reply of a wanted type or the deadline."""
    while time.monotonic() < deadline:
        sock.sendto(message, ("255.255.255.255", 67))
        resend = min(deadline, time.monotonic() + RETRANSMIT)
        while (left := resend - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data = sock.recv(4096)
            except TimeoutError:
                break
            reply = parse_reply(data, xid)
            if reply and reply[1].get(OPT_MSG_TYPE, b"\0")[0] in wanted:
                return reply
    return None


def _addr(options: dict[int, bytes], code: int) -> str | None:
    value = options.get(code)
    return socket.inet_ntoa(value[:4]) if value and len(value) >= 4 else None


def obtain(iface: str, mac: str, *, hostname: str | None = None, timeout: float = 3.0,
           reboot: str | None = None) -> DhcpAnswer | None:
    """One DISCOVER/OFFER/REQUEST/ACK on `iface` (this process's namespace); None: no answer
    (or a NAK). With `reboot`, the INIT-REBOOT of a guest that had that address: one REQUEST
    for it, no DISCOVER."""
    xid = random.getrandbits(32)
    with _open_socket(iface) as sock:
        start = time.monotonic()
        deadline = start + timeout
        offered, requested, server = 0.0, reboot, None
        if reboot is None:
            offer = _exchange(sock, build_message(DISCOVER, xid=xid, mac=mac, hostname=hostname),
                              xid=xid, wanted=(OFFER,), deadline=deadline)
            if offer is None:
                return None
            offered = time.monotonic() - start
            requested, server = offer[0], _addr(offer[1], OPT_SERVER_ID) or ""
        request = build_message(REQUEST, xid=xid, mac=mac, hostname=hostname,
                                requested=requested, server=server)
        ack = _exchange(sock, request, xid=xid, wanted=(ACK, NAK), deadline=deadline)
        if ack is None or ack[1][OPT_MSG_TYPE][0] != ACK:
            return None
        acked = time.monotonic() - start
        server = server or _addr(ack[1], OPT_SERVER_ID) or ""
    opts = ack[1]
    lease = struct.unpack("!I", opts[OPT_LEASE_TIME])[0] if OPT_LEASE_TIME in opts else 0
    domain = opts[OPT_DOMAIN].decode(errors="replace") if OPT_DOMAIN in opts else None
    return DhcpAnswer(ip=ack[0], server=server, lease_time=lease, router=_addr(opts, OPT_ROUTER),
                      dns=_addr(opts, OPT_DNS), domain=domain, offer_seconds=offered,
                      ack_seconds=acked)


def _to_json(answer: DhcpAnswer | None) -> str:
    if answer is None:
        return json.dumps({"ip": None, "error": "no answer"})
    return json.dumps({"ip": answer.ip, "server": answer.server, "leaseTime": answer.lease_time,
                       "router": answer.router, "dns": answer.dns, "domain": answer.domain,
                       "offerSeconds": answer.offer_seconds, "ackSeconds": answer.ack_seconds})


def _from_json(line: str) -> DhcpAnswer | None:
    doc = json.loads(line)
    if doc.get("ip") is None:
        return None
    return DhcpAnswer(ip=doc["ip"], server=doc["server"], lease_time=doc["leaseTime"],
                      router=doc["router"], dns=doc["dns"], domain=doc["domain"],
                      offer_seconds=doc["offerSeconds"], ack_seconds=doc["ackSeconds"])


async def request_lease(netns: str, mac: str, *, iface: str = "eth0",
                        hostname: str | None = None, timeout: float = 3.0,
                        reboot: str | None = None) -> DhcpAnswer | None:
    """Run one exchange inside `netns` (a subprocess) and return what the server granted."""
    argv = ["ip", "netns", "exec", netns, sys.executable, "-m", "tests.support.dhcpclient",
            "--iface", iface, "--mac", mac, "--timeout", str(timeout)]
    if hostname:
        argv += ["--hostname", hostname]
    if reboot:
        argv += ["--reboot", reboot]
    proc = await asyncio.create_subprocess_exec(*argv, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"dhcpclient failed ({proc.returncode}): {err.decode().strip()}")
    return _from_json(out.decode().strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dhcpclient", description=__doc__.split("\n")[0])
    parser.add_argument("--iface", required=True)
    parser.add_argument("--mac", required=True)
    parser.add_argument("--hostname")
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("--reboot", metavar="IP", help="INIT-REBOOT: REQUEST this address")
    args = parser.parse_args(argv)
    answer = obtain(args.iface, args.mac, hostname=args.hostname, timeout=args.timeout,
                    reboot=args.reboot)
    print(_to_json(answer), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
