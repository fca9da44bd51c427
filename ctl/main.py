"""Entry point of `herdctl` (console script). Called by the shell.

The command tree of DESIGN.md section 5 is issue #6 and is not built yet: until then this
says so and exits with an error, rather than pretend.
"""

from __future__ import annotations

import sys


def main() -> None:
    print("herdctl: the CLI is not built yet (issue #6: herdctl, apply, dev cluster)",
          file=sys.stderr)
    sys.exit(1)
