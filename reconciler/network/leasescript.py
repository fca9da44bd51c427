"""dnsmasq's lease-change script (`--dhcp-script`): forwards each lease event to herd-node.

dnsmasq runs it (console script `herd-dnsmasq-lease`, entry point `main`) as
`herd-dnsmasq-lease init` once at start (through `sh -c`) and as
`herd-dnsmasq-lease add|old|del MAC IP [HOSTNAME]` with DNSMASQ_* variables on every lease
change (with --leasefile-ro also on every renewal). It holds no credentials: it writes one
JSON line to the herd-node daemon's `LeaseChannel` (reconciler.network.leasechannel) over the
Unix socket named by HERD_LEASE_SOCKET (dnsmasq inherits it from herd-node and passes it on)
and reads one JSON line back.

- `init`: asks for the lease database and prints it in dnsmasq's leasefile format; if the
  daemon does not answer, exits 1 and dnsmasq refuses to start (a gateway never starts with
  a lease database it could not load).
- `add`/`old`/`del`: exits 0 within EVENT_TIMEOUT whatever happens; a failure is only logged
  on stderr (dnsmasq's log). A lost event is repaired by the lease's next `old` (renewal).
- any other action (tftp, arp...): ignored, exit 0.

Stdlib only and nothing of the project, to start fast: dnsmasq runs one script at a time.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from typing import Any

SOCKET_ENV = "HERD_LEASE_SOCKET"
EVENT_ACTIONS = ("add", "old", "del")
INIT_TIMEOUT = 10.0  # seconds: the daemon reads the leases from ZooKeeper
EVENT_TIMEOUT = 2.0  # seconds: dnsmasq's helper waits for us before the next event
MAX_REPLY = 16 * 1024 * 1024


def request(path: str, message: dict[str, Any], *, timeout: float) -> dict[str, Any]:
    """Send one JSON line on the Unix socket at `path` and return the JSON line answered."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(json.dumps(message).encode() + b"\n")
        chunks: list[bytes] = []
        size = 0
        while not chunks or not chunks[-1].endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_REPLY:
                raise OSError("reply too large")
    reply = json.loads(b"".join(chunks) or b"null")
    if not isinstance(reply, dict):
        raise OSError("the daemon closed the connection without a reply")
    return reply


def event_message(argv: list[str], environ: dict[str, str]) -> dict[str, Any]:
    """The JSON of one add/old/del call: its arguments and dnsmasq's variables."""
    return {"action": argv[1], "mac": argv[2] if len(argv) > 2 else "",
            "ip": argv[3] if len(argv) > 3 else "",
            "hostname": argv[4] if len(argv) > 4 else None,
            "env": {k: v for k, v in environ.items() if k.startswith("DNSMASQ_")}}


def _log(message: str) -> None:
    print(f"herd-dnsmasq-lease: {message}", file=sys.stderr, flush=True)


def _init(path: str) -> int:
    try:
        reply = request(path, {"action": "init"}, timeout=INIT_TIMEOUT)
    except (OSError, ValueError) as e:
        _log(f"init: no lease database from herd-node at {path}: {e}")
        return 1
    if not reply.get("ok"):
        _log(f"init: herd-node refused: {reply.get('error')}")
        return 1
    sys.stdout.write(str(reply.get("leasefile", "")))
    sys.stdout.flush()
    return 0


def _event(path: str, argv: list[str]) -> int:
    try:
        reply = request(path, event_message(argv, dict(os.environ)), timeout=EVENT_TIMEOUT)
    except (OSError, ValueError) as e:
        _log(f"{' '.join(argv[1:4])}: not delivered to herd-node ({e}); "
             "the next renewal of this lease repairs its record")
        return 0
    if not reply.get("ok"):
        _log(f"{' '.join(argv[1:4])}: herd-node could not record it: {reply.get('error')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """The script's entry point; returns the exit status."""
    args = list(sys.argv if argv is None else argv)
    action = args[1] if len(args) > 1 else ""
    path = os.environ.get(SOCKET_ENV, "")
    if action != "init" and action not in EVENT_ACTIONS:
        return 0
    if not path:
        _log(f"{action}: {SOCKET_ENV} is not set; herd-node did not start this dnsmasq")
        return 1 if action == "init" else 0
    return _init(path) if action == "init" else _event(path, args)


if __name__ == "__main__":
    sys.exit(main())
