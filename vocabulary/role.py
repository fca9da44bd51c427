"""The roles of API tokens, lowest first: what a token may do (README, Security).

- `viewer`: reads, `GET /watch`, metrics;
- `operator`: also defines and modifies VMs, lifecycle and placement verbs, node
  flush/ready, apply;
- `admin`: also the cluster config and the tokens (and, later, the XML policy's
  exceptions).
A role allows every route whose declared role (`server.routes.ROLES`) is at or below it.
Used by `store.tokens` (stored in a token's document), `schemas.tokens`, `server` (the
authorization decision) and `ctl` (the `--role` choices). Pure: imports nothing.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """A token's role; compare with `allows`, never by name."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, needed: Role) -> bool:
        """True when this role may use a route that needs `needed`."""
        return self.rank >= needed.rank


_RANKS = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}
