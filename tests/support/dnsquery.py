"""A minimal DNS client for tests: one A query over UDP, the addresses answered.

Used by tests/integration/test_gateway.py to check what a gateway's dnsmasq (or another DNS
server on the host) answers, from inside a network namespace as a guest would ask. Two faces:

- `python -m tests.support.dnsquery --server 10.0.0.1 --name vm1.web.herd.internal
  [--timeout 2]`, run inside a namespace (`ip netns exec NS ...`): ONE line of JSON,
  `{"rcode": 0, "addresses": ["10.0.0.5"]}`, or `{"rcode": null}` when nothing answered.
- `await query_a(netns, name, server=...)`: runs the above in a subprocess; `resolve_a(...)`
  does the query in this process (this namespace).

Stdlib only; no dependency on dnspython.
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
from dataclasses import dataclass

TYPE_A, CLASS_IN = 1, 1

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass(frozen=True)
class DnsAnswer:
    """The response code (0 NOERROR, 3 NXDOMAIN, 5 REFUSED...) and the A records answered."""

    rcode: int
    addresses: tuple[str, ...]


def build_query(name: str, qid: int) -> bytes:
    """A recursive A query for `name`."""
    labels = b"".join(bytes([len(p)]) + p.encode("ascii") for p in name.rstrip(".").split("."))
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + b"\0" + struct.pack(
        "!HH", TYPE_A, CLASS_IN)


def _skip_name(data: bytes, i: int) -> int:
    while True:
        length = data[i]
        if length == 0:
            return i + 1
        if length & 0xC0 == 0xC0:
            return i + 2
        i += 1 + length


def parse_response(data: bytes, qid: int) -> DnsAnswer | None:
    """The rcode and A addresses of a response to `qid`; None if it is not one."""
    if len(data) < 12:
        return None
    rid, flags, qdcount, ancount = struct.unpack("!HHHH", data[:8])
    if rid != qid or not flags & 0x8000:
        return None
    i = 12
    for _ in range(qdcount):
        i = _skip_name(data, i) + 4
    addresses = []
    for _ in range(ancount):
        i = _skip_name(data, i)
        rtype, _rclass, _ttl, length = struct.unpack("!HHIH", data[i:i + 10])
        i += 10
        if rtype == TYPE_A and length == 4:
            addresses.append(socket.inet_ntoa(data[i:i + 4]))
        i += length
    return DnsAnswer(rcode=flags & 0x000F, addresses=tuple(addresses))


def resolve_a(server: str, name: str, *, timeout: float = 2.0) -> DnsAnswer | None:
    """Ask `server`:53 for the A records of `name` from this process; None if no answer."""
    qid = random.getrandbits(16)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(build_query(name, qid), (server, 53))
        try:
            while True:
                data = sock.recv(4096)
                answer = parse_response(data, qid)
                if answer is not None:
                    return answer
        except (TimeoutError, ConnectionRefusedError):
            return None


async def query_a(netns: str, name: str, *, server: str,
                  timeout: float = 2.0) -> DnsAnswer | None:
    """`resolve_a` run inside `netns` (a subprocess)."""
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", netns, sys.executable, "-m", "tests.support.dnsquery",
        "--server", server, "--name", name, "--timeout", str(timeout), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"dnsquery failed ({proc.returncode}): {err.decode().strip()}")
    doc = json.loads(out.decode().strip().splitlines()[-1])
    if doc["rcode"] is None:
        return None
    return DnsAnswer(rcode=doc["rcode"], addresses=tuple(doc["addresses"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dnsquery", description=__doc__.split("\n")[0])
    parser.add_argument("--server", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--timeout", type=float, default=2.0)
    args = parser.parse_args(argv)
    answer = resolve_a(args.server, args.name, timeout=args.timeout)
    doc = ({"rcode": None} if answer is None
           else {"rcode": answer.rcode, "addresses": list(answer.addresses)})
    print(json.dumps(doc), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
