"""`make demo`: bring up a local cluster and show it working.

The local cluster (`herdctl dev up`, issue #6) needs the node daemon (#3), the controllers
(#4) and the API (#5), none of which is built yet. Until they are, the demo only sets up
(done by `make setup` before this runs) and says plainly what is not built; it never
pretends. Called by `make demo`.
"""

from __future__ import annotations

import sys

BUILT = [
    "store: ZooKeeper client, version-checked writes, atomic commit and rename, "
    "watched cache with one persistent recursive watch (tests/integration, bench/)",
    "schemas: VM, Node, placement, status, config and API request bodies (tests/unit)",
    "statemachine: the VM lifecycle table with the abortable shutdown (tests/unit)",
]
NOT_BUILT = [
    "herd-node, the node daemon (issue #3)",
    "the cluster controllers: election, placement, flush/ready, fencing (issue #4)",
    "herd-api, the REST API (issue #5)",
    "herdctl and `herdctl dev up`, the local cluster this demo will start (issue #6)",
]


def main() -> int:
    print("Herd demo: set-up is done (.venv, ZooKeeper, libvirt).")
    print("\nBuilt so far (run `make test` to see it work against a real ZooKeeper):")
    for line in BUILT:
        print(f"  - {line}")
    print("\nNot built yet, so there is no local cluster to show:")
    for line in NOT_BUILT:
        print(f"  - {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
