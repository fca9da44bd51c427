"""A throwaway certificate authority for a local cluster: ZooKeeper's TLS on loopback.

`make_pki(folder)` creates, with the `openssl` command, a CA, a server certificate for
127.0.0.1 / localhost (ZooKeeper's secure client port reads key and certificate from one
PEM file) and a client certificate for Herd's processes; the private keys are mode 0600.
Fresh for each cluster, valid for 30 days. Used by `ctl.dev.zookeeper.ZooKeeperCluster`
(the dev cluster and the tests); a real cluster uses certificates of its own
(docs/deploy.md).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pki:
    ca: Path  # the CA certificate (PEM): what clients and servers verify against
    server: Path  # the server's private key and certificate, in one PEM file
    client_cert: Path
    client_key: Path

    @property
    def query(self) -> str:
        """The TLS part of a Herd connection string (`store.target`)."""
        return f"ca={self.ca}&cert={self.client_cert}&key={self.client_key}"


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def _signed(folder: Path, name: str, subject: str, *, extensions: str | None) -> None:
    key, csr, cert = (folder / f"{name}.{s}" for s in ("key", "csr", "pem"))
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
             "-subj", subject)
    args = ["x509", "-req", "-in", str(csr), "-CA", str(folder / "ca.pem"), "-CAkey",
            str(folder / "ca.key"), "-CAcreateserial", "-out", str(cert), "-days", "30"]
    if extensions is not None:
        ext = folder / f"{name}.ext"
        ext.write_text(extensions)
        args += ["-extfile", str(ext)]
    _openssl(*args)
    key.chmod(0o600)


def make_pki(folder: Path) -> Pki:
    """A CA and its server and client certificates under `folder` (made if missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
             str(folder / "ca.key"), "-out", str(folder / "ca.pem"), "-days", "30",
             "-subj", "/CN=herd-dev-ca")
    (folder / "ca.key").chmod(0o600)
    _signed(folder, "server", "/CN=127.0.0.1",
            extensions="subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _signed(folder, "client", "/CN=herd", extensions=None)
    server = folder / "server-all.pem"
    fd = os.open(server, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write((folder / "server.key").read_text() + (folder / "server.pem").read_text())
    return Pki(folder / "ca.pem", server, folder / "client.pem", folder / "client.key")
