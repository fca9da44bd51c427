"""A real Prometheus server for e2e tests (issue #16): Debian's `prometheus` scraping the
jobs a test gives it (herd-api's /api/v1/metrics with its bearer token, every herd-node's
`metrics_address`) every second, asked through its HTTP API.

`Prometheus(directory, jobs)` writes `prometheus.yml` (and each job's token, mode 0600)
into `directory`, keeps its TSDB and log there, and listens on a free loopback port.
`start` returns once `/-/ready` answers 200; `query` runs an instant PromQL query;
`wait_for` asks again (every `POLL` seconds, until a deadline: a scrape is no event a
test can wait on) until the answer is non-empty and passes a check, and its failure shows
the last answer and every target's health; `stop` terminates the process (killed if it
does not exit in time). Used by tests/e2e/test_qemu_prometheus.py.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ctl.dev.zookeeper import free_port

PROMETHEUS = "/usr/bin/prometheus"
POLL = 0.2  # seconds between two looks at Prometheus's HTTP API
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
Result = list[dict[str, Any]]
Check = Callable[[Result], bool]


@dataclass(frozen=True)
class Job:
    """One scrape job: its targets (`host:port`), path, and bearer token if it needs one."""

    name: str
    targets: Sequence[str]
    metrics_path: str = "/metrics"
    token: str | None = None


class Prometheus:
    """One `prometheus` process scraping `jobs` every second."""

    def __init__(self, directory: Path, jobs: Sequence[Job]) -> None:
        self.dir, self.jobs = directory, list(jobs)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = directory / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None
        # loopback: never through a proxy from the environment
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def start(self) -> None:
        """Start it and wait until it is ready (stopped again if it is not)."""
        config = self._write_config()
        argv = [PROMETHEUS, f"--config.file={config}", f"--web.listen-address=127.0.0.1:"
                f"{self.port}", f"--storage.tsdb.path={self.dir / 'data'}"]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)
        try:
            self._until_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Terminate the process; kill it if it has not exited in `STOP_TIMEOUT`."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def query(self, promql: str) -> Result:
        """The result of an instant query (`data.result`: a vector's samples)."""
        answer = self._get_json("/api/v1/query", query=promql)
        assert answer.get("status") == "success", f"{promql}: {answer}"
        return list(answer["data"]["result"])

    def wait_for(self, promql: str, check: Check = bool, *, timeout: float = 60.0) -> Result:
        """The first non-empty result of `promql` that passes `check`, asked every `POLL`
        seconds within `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(promql)
            if result and check(result):
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"{promql!r} in {timeout:.0f} s: last answer {result}; "
                                     f"targets: {self.targets()}")
            time.sleep(POLL)  # the next scrape: nothing to wait on but Prometheus itself

    def targets(self) -> list[dict[str, Any]]:
        """Every active target's job, URL, health and last error."""
        active = self._get_json("/api/v1/targets")["data"]["activeTargets"]
        return [{key: t.get(key) for key in ("scrapePool", "scrapeUrl", "health", "lastError")}
                for t in active]

    def _write_config(self) -> Path:
        config = self.dir / "prometheus.yml"
        doc = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s",
                          "evaluation_interval": "1s"},
               "scrape_configs": [self._scrape_config(job) for job in self.jobs]}
        config.write_text(yaml.safe_dump(doc, sort_keys=False))
        return config

    def _scrape_config(self, job: Job) -> dict[str, Any]:
        doc: dict[str, Any] = {"job_name": job.name, "metrics_path": job.metrics_path,
                               "static_configs": [{"targets": list(job.targets)}]}
        if job.token is not None:
            path = self.dir / f"{job.name}.token"
            path.touch(mode=0o600)
            path.write_text(job.token)
            doc["authorization"] = {"type": "Bearer", "credentials_file": str(path)}
        return doc

    def _until_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while not self._ready():
            assert self.proc is not None and self.proc.poll() is None, \
                f"prometheus exited: {self._log_tail()}"
            assert time.monotonic() < deadline, \
                f"prometheus not ready in {READY_TIMEOUT:.0f} s: {self._log_tail()}"
            time.sleep(POLL)  # its HTTP readiness endpoint is the only sign

    def _ready(self) -> bool:
        try:
            with self._opener.open(f"{self.url}/-/ready", timeout=2) as resp:
                return int(resp.status) == 200
        except (urllib.error.URLError, OSError):
            return False

    def _get_json(self, path: str, **query: str) -> dict[str, Any]:
        url = f"{self.url}{path}?{urllib.parse.urlencode(query)}"
        try:
            with self._opener.open(url, timeout=10) as resp:
                return dict(json.loads(resp.read()))
        except urllib.error.HTTPError as e:  # a bad query: Prometheus says why
            raise AssertionError(f"{url}: {e.code} {e.read().decode(errors='replace')}") \
                from None

    def _log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
