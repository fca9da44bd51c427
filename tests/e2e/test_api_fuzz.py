"""Fuzzing `herd-api` as a real process against a real ZooKeeper: schemathesis generates
requests (valid and invalid) from the server's own /openapi.json, and every answer must be
a non-5xx, with a status, content type and body the document declares. Then stranger
inputs than a schema makes (`tests.support.strange`: deep nesting, lone surrogates, huge
integers, duplicate keys, backtracking regexes) against every operation: no 5xx, and
none slower than 1 s (issue #13).

Bounded: a handful of examples per operation (the whole module runs in well under a
minute); `wait` requests are capped by the server's `max_wait_timeout`. The watch stream
is left out (it streams until its timeout).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from server.auth import create_token
from tests.support.strange import body_keys, query_names, strange_body, strange_query
from tests.support.zkserver import ZooKeeperCluster

HERD_API = str(Path(sys.executable).with_name("herd-api"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
EXAMPLES = int(os.environ.get("HERD_FUZZ_EXAMPLES", "15"))  # per operation and mode
XML = "<domain type='test'><name>fuzz1</name><memory unit='MiB'>64</memory></domain>"


class Server:
    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def server(zk_cluster: ZooKeeperCluster, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("fuzz")
    token = create_token(tmp / "tokens")
    config = tmp / "api.yaml"
    config.write_text(f"zk_hosts: {zk_cluster.dsn}\nzk_root: /fuzz-{uuid.uuid4().hex[:8]}\n"
                      f"listen_port: 0\ntoken_file: {tmp / 'tokens'}\nmax_wait_timeout: 0.5\n"
                      "log_level: WARNING\n")
    log = open(tmp / "api.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([HERD_API, "--config", str(config)], stdout=subprocess.PIPE,
                            stderr=log, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("herd-api: serving on "), (tmp / "api.log").read_text()
        srv = Server(line.split()[-1], token)
        answer = requests.post(f"{srv.url}/api/v1/vm", json={"xml": XML}, headers=srv.headers,
                               timeout=10)
        assert answer.status_code == 201, answer.text
        yield srv
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
        log.close()


def operations(server: Server) -> list[Any]:
    schema = schemathesis.openapi.from_url(f"{server.url}/api/v1/openapi.json",
                                           headers=server.headers)
    found = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # the document itself is valid
        found.append(result.ok())
    return [op for op in found if op.path != "/api/v1/watch"]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_5xx_and_answers_match_the_document(server: Server, mode: GenerationMode) -> None:
    ops = operations(server)
    assert len(ops) >= 20
    seen: dict[int, int] = {}
    for operation in ops:
        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def call(case: Any) -> None:
            response = case.call_and_validate(base_url=server.url, headers=server.headers,
                                              checks=CHECKS, timeout=10)
            seen[response.status_code] = seen.get(response.status_code, 0) + 1

        call()
    print(f"{mode}: answers by status: {sorted(seen.items())}")
    assert sum(seen.values()) >= len(ops)


SLOW = 1.0  # s: no request may take longer (issue #13)
PATH_VALUES = {"vm": ["fuzz1", "nosuch", "a" * 300, "%ED%A0%80"], "node": ["hv1", "x..y"],
               "token": ["nosuch", "-"]}


def concrete(path: str, draw: Any) -> str:
    for name, values in PATH_VALUES.items():
        path = path.replace("{" + name + "}", draw(st.sampled_from(values)))
    return path


def probe(server: Server, doc: dict[str, Any], path: str, method: str,
          seen: list[tuple[float, int]]) -> None:
    """Strange requests to one operation; each one's duration and status go to `seen`."""
    op = doc["paths"][path][method]
    keys, names = body_keys(doc, op), query_names(op)

    @given(data=st.data())
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def call(data: Any) -> None:
        url = f"{server.url}{concrete(path, data.draw)}"
        query = data.draw(strange_query(names))
        body = data.draw(strange_body(keys)) if "requestBody" in op else None
        started = time.monotonic()
        answer = requests.request(method.upper(), f"{url}?{query}" if query else url,
                                  data=body, timeout=10, headers={
                                      **server.headers, "Content-Type": "application/json"})
        took = time.monotonic() - started
        seen.append((took, answer.status_code))
        assert answer.status_code < 500, (method, url, query, body, answer.text)
        assert took < SLOW, (method, url, query, body, took)

    call()


def test_strange_inputs_get_no_5xx_and_no_slow_answer(server: Server) -> None:
    doc = requests.get(f"{server.url}/api/v1/openapi.json", headers=server.headers,
                       timeout=10).json()
    seen: list[tuple[float, int]] = []
    operations = [(path, method) for path, ops in doc["paths"].items() for method in ops
                  if not path.endswith("/watch")]
    for path, method in operations:
        probe(server, doc, path, method, seen)
    statuses = Counter(status for _, status in seen)
    print(f"strange inputs: {len(seen)} requests to {len(operations)} operations, slowest "
          f"{max(t for t, _ in seen) * 1000:.0f} ms; by status {sorted(statuses.items())}")
    assert len(seen) >= len(operations) >= 20
