"""Where ZooKeeper is and who Herd is there: `ZKTarget`, parsed from a connection string.

`user:password@host:port[,host:port...]` names the ensemble and Herd's digest identity;
plain `host:port[,...]` connects anonymously (a cluster that has not turned auth on). With
an identity, `store.client.Store` authenticates every session with it (`auth_data`) and
creates every znode with an ACL that gives that identity all rights and nobody else any
(`acl`): an anonymous client, or another identity, gets NoAuth under Herd's root. The
break-glass administrator is ZooKeeper's own super user (`superDigest`, see
docs/deploy.md), who passes every ACL.

`check_hosts` validates a config's `zk_hosts` (for marshmallow). The secret comes from
the process's local configuration (`zk_hosts`, or `zk_auth_file` holding
`user:password`), never from ZooKeeper; `str(target)` and `target.hosts` never show it.
Used by `store.client.Store`, the configs of herd-node and herd-api, and tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from kazoo.security import ACL, make_digest_acl

SCHEME = "digest"
_HOSTS = re.compile(r"^[^\s,@/]+(,[^\s,@/]+)*$")
_USER = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def check_hosts(text: str) -> None:
    """Raise ValueError unless `text` is a valid `[user:password@]host:port[,...]`."""
    ZKTarget.parse(text)


@dataclass(frozen=True)
class ZKTarget:
    """An ensemble's hosts and, optionally, the digest identity to use there."""

    hosts: str
    user: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, text: str) -> ZKTarget:
        """`[user:password@]host:port[,host:port...]`; ValueError naming what is wrong."""
        identity, at, hosts = text.strip().rpartition("@")
        if not _HOSTS.match(hosts):
            raise ValueError("must be [user:password@]host:port[,host:port...]")
        if not at:
            return cls(hosts)
        user, colon, password = identity.partition(":")
        if not colon or not _USER.match(user) or not password:
            raise ValueError("the identity before '@' must be user:password (user of "
                             "letters, digits, '.', '_' or '-')")
        return cls(hosts, user, password)

    def with_auth_file(self, path: Path) -> ZKTarget:
        """This target with the identity read from `path` (one line, `user:password`)."""
        line = path.read_text().strip()
        return ZKTarget.parse(f"{line}@{self.hosts}")

    @property
    def auth_data(self) -> list[tuple[str, str]]:
        """What kazoo sends at each session's start."""
        if self.user is None or self.password is None:
            return []
        return [(SCHEME, f"{self.user}:{self.password}")]

    @property
    def acl(self) -> list[ACL] | None:
        """Every znode's ACL: all rights to this identity, none to anyone else (None:
        anonymous, ZooKeeper's open default)."""
        if self.user is None or self.password is None:
            return None
        return [make_digest_acl(self.user, self.password, all=True)]

    @classmethod
    def resolve(cls, hosts: str, *, auth_file: str | Path | None = None) -> ZKTarget:
        """A process's target from its config: `zk_hosts`, and the identity from
        `zk_auth_file` when one is set (a file of its own, mode 0600, not the YAML)."""
        target = cls.parse(hosts)
        return target if auth_file is None else target.with_auth_file(Path(auth_file))

    def __str__(self) -> str:
        return self.hosts if self.user is None else f"{self.user}:***@{self.hosts}"
