"""Where ZooKeeper is and who Herd is there: `ZKTarget`, parsed from a connection string.

`user:password@host:port[,host:port...]` names the ensemble and Herd's digest identity;
plain `host:port[,...]` connects anonymously (a cluster that has not turned auth on). A
query `?ca=CA.pem&cert=CERT.pem&key=KEY.pem` turns on TLS to ZooKeeper's secure client
port: the server's certificate is verified against the CA, and the client presents its
own (the config keys `zk_tls_ca`, `zk_tls_cert`, `zk_tls_key` say the same). With
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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from kazoo.security import ACL, make_digest_acl

SCHEME = "digest"
_HOSTS = re.compile(r"^[^\s,@/?]+(,[^\s,@/?]+)*$")
TLS_KEYS = ("ca", "cert", "key")


@dataclass(frozen=True)
class TLSFiles:
    """The PEM files of a TLS connection to ZooKeeper."""

    ca: str  # the CA that signed the servers' certificates
    cert: str  # this client's certificate
    key: str  # and its private key

    @classmethod
    def parse(cls, query: str) -> TLSFiles:
        found = {k: v[-1] for k, v in parse_qs(query, strict_parsing=True).items()}
        if sorted(found) != sorted(TLS_KEYS):
            raise ValueError("TLS needs exactly ca=, cert= and key= (PEM files)")
        return cls(found["ca"], found["cert"], found["key"])
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
    tls: TLSFiles | None = None

    @classmethod
    def parse(cls, text: str) -> ZKTarget:
        """`[user:password@]host:port[,host:port...][?ca=&cert=&key=]`; ValueError naming
        what is wrong."""
        text, question, query = text.strip().partition("?")
        tls = TLSFiles.parse(query) if question else None
        identity, at, hosts = text.rpartition("@")
        if not _HOSTS.match(hosts):
            raise ValueError("must be [user:password@]host:port[,host:port...]")
        if not at:
            return cls(hosts, tls=tls)
        user, colon, password = identity.partition(":")
        if not colon or not _USER.match(user) or not password:
            raise ValueError("the identity before '@' must be user:password (user of "
                             "letters, digits, '.', '_' or '-')")
        return cls(hosts, user, password, tls)

    def with_auth_file(self, path: Path) -> ZKTarget:
        """This target with the identity read from `path` (one line, `user:password`)."""
        user, colon, password = path.read_text().strip().partition(":")
        if not colon or not _USER.match(user) or not password:
            raise ValueError(f"{path} must hold user:password")
        return replace(self, user=user, password=password)

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
    def resolve(cls, hosts: str, *, auth_file: str | Path | None = None,
                tls: TLSFiles | None = None) -> ZKTarget:
        """A process's target from its config: `zk_hosts`, the identity from
        `zk_auth_file` when one is set (a file of its own, mode 0600, not the YAML), and
        the TLS files of `zk_tls_*` when they are set."""
        target = cls.parse(hosts)
        if auth_file is not None:
            target = target.with_auth_file(Path(auth_file))
        return target if tls is None else replace(target, tls=tls)

    def kazoo_args(self) -> dict[str, Any]:
        """KazooClient's keyword arguments for this target (every client of Herd's, and
        the tests' raw clients, connect through these)."""
        args: dict[str, Any] = {"hosts": self.hosts, "auth_data": self.auth_data}
        if self.tls is not None:
            args.update(use_ssl=True, verify_certs=True, ca=self.tls.ca,
                        certfile=self.tls.cert, keyfile=self.tls.key)
        return args

    def __str__(self) -> str:
        shown = self.hosts if self.user is None else f"{self.user}:***@{self.hosts}"
        return shown if self.tls is None else f"{shown} (TLS)"
