"""Entry point of `herd-api` (console script). Called by the shell or a service manager.

The REST API server is issue #5 and is not built yet: until then this says so and exits
with an error, rather than pretend.
"""

from __future__ import annotations

import sys


def main() -> None:
    print("herd-api: the REST API server is not built yet (issue #5)", file=sys.stderr)
    sys.exit(1)
