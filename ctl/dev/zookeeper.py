"""Run real ZooKeeper servers (Debian's `zookeeper` package) on loopback.

`ZooKeeperCluster` starts one server or an N-member ensemble on free loopback ports, each
in its own data directory, waits until every member answers the `srvr` four-letter word
(and, for an ensemble, reports a mode), and stops them by PID. Members can be killed and
restarted individually for fault tests. Each cluster has Herd's digest identity (`dsn`) and
a break-glass super user (`admin_dsn`, ZooKeeper's `superDigest`), fresh secrets each.
Used by `herdctl dev up` (`ctl.dev.cluster`), and through the re-exports of
`tests/support/zkserver.py` by the tests and `bench/`.
Processes only: nothing here speaks the ZooKeeper protocol (ctl never imports kazoo).
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from ctl.dev.certs import make_pki

# ZooKeeper, its logging, and Netty (the server side of TLS): Debian's jars.
JARS = ":".join(["/usr/share/java/zookeeper.jar", "/usr/share/java/slf4j-simple.jar",
                 *(f"/usr/share/java/netty-{part}.jar" for part in (
                     "buffer", "codec", "common", "handler", "resolver", "transport",
                     "transport-native-epoll", "transport-native-unix-common"))])
MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"


def digest_credential(user: str, password: str) -> str:
    """ZooKeeper's digest of an identity, `user:base64(sha1(user:password))` (what its
    `superDigest` setting and digest ACLs hold)."""
    sha1 = hashlib.sha1(f"{user}:{password}".encode()).digest()
    return f"{user}:{base64.b64encode(sha1).decode()}"


class ZooKeeperUnavailable(RuntimeError):
    """Debian's ZooKeeper is not installed, or a member did not come up."""


LOWEST_PORT = 20000  # below: well-known and registered services


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (the local ports of connections)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now, chosen OUTSIDE the
    kernel's ephemeral range: a server restarted on it later (a ZooKeeper member after a
    kill, an API server in the fault suite) cannot find it taken meanwhile as the local
    port of some outgoing connection (issue #20: a member restarted by the fault suite
    could not bind its election port and exited)."""
    rng = random.SystemRandom()
    for _ in range(1000):
        port = rng.randrange(LOWEST_PORT, max(LOWEST_PORT + 1, _ephemeral_low()))
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise ZooKeeperUnavailable("no free TCP port below the ephemeral range")


def four_letter(port: int, word: str, *, timeout: float = 1.0) -> str:
    """Send a four-letter command to a member and return its whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(word.encode())
        chunks = []
        while data := s.recv(65536):
            chunks.append(data)
    return b"".join(chunks).decode(errors="replace")


@dataclass
class Member:
    """One ZooKeeper server process and its ports."""

    myid: int
    client_port: int
    peer_port: int
    election_port: int
    datadir: Path
    secure_port: int = 0  # TLS client port (0: none)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class ZooKeeperCluster:
    """A ZooKeeper server or ensemble on loopback, owned by the caller."""

    def __init__(self, workdir: Path, *, members: int = 1, tick_ms: int = 500,
                 tls: bool = True) -> None:
        if not Path("/usr/share/java/zookeeper.jar").exists() or not shutil.which("java"):
            raise ZooKeeperUnavailable("Debian's zookeeper package (and java) is not installed")
        self.workdir = workdir
        self.tick_ms = tick_ms
        # Herd's digest identity (every znode of Herd's is its alone) and the break-glass
        # super user ZooKeeper lets past every ACL; fresh secrets for each cluster.
        self.identity = ("herd", secrets.token_urlsafe(18))
        self.admin = ("super", secrets.token_urlsafe(18))
        self.members = [
            Member(i, free_port(), free_port(), free_port(), workdir / f"zk{i}",
                   secure_port=free_port() if tls else 0)
            for i in range(1, members + 1)
        ]
        # TLS on a secure client port of each member (Herd's clients use it; the plain
        # port stays for the four-letter health probes and anonymous tools).
        self.pki = make_pki(workdir / "tls") if tls else None

    @property
    def hosts(self) -> str:
        """The kazoo hosts string for every member (an anonymous client's)."""
        return ",".join(f"127.0.0.1:{m.client_port}" for m in self.members)

    @property
    def dsn(self) -> str:
        """Herd's connection string: its identity, every member's secure port and the TLS
        files (`store.target`); without TLS, the plain ports."""
        return self._connection(self.identity)

    @property
    def admin_dsn(self) -> str:
        """The break-glass super user's connection string."""
        return self._connection(self.admin)

    def _connection(self, identity: tuple[str, str]) -> str:
        user, password = identity
        if self.pki is None:
            return f"{user}:{password}@{self.hosts}"
        secure = ",".join(f"127.0.0.1:{m.secure_port}" for m in self.members)
        return f"{user}:{password}@{secure}?{self.pki.query}"

    def start(self, *, timeout: float = 30.0) -> None:
        self.spawn()
        self.wait_healthy(timeout=timeout)

    def spawn(self) -> None:
        """Write every member's configuration and start it, without waiting."""
        for m in self.members:
            self._write_config(m)
            self._spawn(m)

    def _write_config(self, m: Member) -> None:
        m.datadir.mkdir(parents=True, exist_ok=True)
        (m.datadir / "myid").write_text(f"{m.myid}\n")
        lines = [
            f"tickTime={self.tick_ms}",
            "initLimit=20",
            "syncLimit=10",
            f"dataDir={m.datadir}",
            f"clientPort={m.client_port}",
            "clientPortAddress=127.0.0.1",
            "admin.enableServer=false",
            "4lw.commands.whitelist=srvr,ruok,mntr,wchs,wchc,cons",
            "maxClientCnxns=0",
            "minSessionTimeout=1000",
            "maxSessionTimeout=60000",
            "snapCount=1000000",
            "preAllocSize=4096",
            "forceSync=no",
            "jute.maxbuffer=4194304",
        ]
        if self.pki is not None:
            lines += [
                f"secureClientPort={m.secure_port}",
                "secureClientPortAddress=127.0.0.1",
                "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory",
                f"ssl.keyStore.location={self.pki.server}",
                "ssl.keyStore.type=PEM",
                f"ssl.trustStore.location={self.pki.ca}",
                "ssl.trustStore.type=PEM",
            ]
        if len(self.members) > 1:
            lines += [
                f"server.{o.myid}=127.0.0.1:{o.peer_port}:{o.election_port}"
                for o in self.members
            ]
        (m.datadir / "zoo.cfg").write_text("\n".join(lines) + "\n")

    def _spawn(self, m: Member) -> None:
        log = open(m.datadir / "zookeeper.log", "ab")  # noqa: SIM115 - owned by the child
        env = dict(os.environ, JAVA_TOOL_OPTIONS="-Xms64m -Xmx512m -XX:+UseSerialGC")
        m.process = subprocess.Popen(
            ["java", "-Dzookeeper.jute.maxbuffer=4194304",
             f"-Dzookeeper.DigestAuthenticationProvider.superDigest="
             f"{digest_credential(*self.admin)}",
             "-cp", JARS, MAIN, str(m.datadir / "zoo.cfg")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, start_new_session=True,
        )
        log.close()

    def member_mode(self, m: Member) -> str | None:
        """`leader`, `follower` or `standalone` once a member serves, else None."""
        try:
            answer = four_letter(m.client_port, "srvr")
        except OSError:
            return None
        for line in answer.splitlines():
            if line.startswith("Mode:"):
                return line.split(":", 1)[1].strip()
        return None

    def wait_healthy(self, *, timeout: float = 30.0) -> None:
        """Block until every running member serves (the probe is the `srvr` word)."""
        deadline = time.monotonic() + timeout
        pending = [m for m in self.members if m.running]
        while pending:
            for m in list(pending):
                if m.process is not None and m.process.poll() is not None:
                    raise ZooKeeperUnavailable(f"zk{m.myid} exited: {self.log_tail(m)}")
                if self.member_mode(m) is not None:
                    pending.remove(m)
            if pending and time.monotonic() > deadline:
                raise ZooKeeperUnavailable(f"zk{pending[0].myid} not serving after {timeout}s")
            if pending:
                time.sleep(0.05)  # polling a child process's port: no event to wait on

    def log_tail(self, m: Member, *, lines: int = 20) -> str:
        path = m.datadir / "zookeeper.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def kill(self, index: int, *, sig: int = signal.SIGKILL) -> None:
        """Kill member `index` (0-based) hard, like a crash."""
        m = self.members[index]
        if m.process is not None and m.process.poll() is None:
            m.process.send_signal(sig)
            m.process.wait(timeout=10)

    def restart_members(self, *indices: int, timeout: float = 60.0) -> None:
        """Kill and start the given members together, then wait until all serve."""
        for index in indices:
            self.kill(index)
            self._spawn(self.members[index])
        self.wait_healthy(timeout=timeout)

    def restart(self, index: int, *, timeout: float = 30.0) -> None:
        m = self.members[index]
        self.kill(index)
        self._spawn(m)
        self.wait_healthy(timeout=timeout)

    def stop(self) -> None:
        """Stop every member by PID (TERM, then KILL) and reap it."""
        for m in self.members:
            if m.process is None:
                continue
            if m.process.poll() is None:
                m.process.terminate()
                try:
                    m.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    m.process.kill()
                    m.process.wait(timeout=5)
            m.process = None

    def session_watches(self, session_id: int, index: int = 0) -> list[str]:
        """Paths that session `session_id` watches on member `index` (from `wchc`)."""
        answer = four_letter(self.members[index].client_port, "wchc")
        paths: list[str] = []
        current = None
        for line in answer.splitlines():
            if line.startswith("0x"):
                current = int(line, 16)
            elif line.startswith("\t") and current == session_id:
                paths.append(line.strip())
        return paths
