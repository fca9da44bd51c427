"""Entry point of `herd-node` (console script). Called by the shell or a service manager.

The node daemon is issue #3 and is not built yet: until then this says so and exits with
an error, rather than pretend.
"""

from __future__ import annotations

import sys


def main() -> None:
    print("herd-node: the node daemon is not built yet (issue #3)", file=sys.stderr)
    sys.exit(1)
