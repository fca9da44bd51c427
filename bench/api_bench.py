"""Benchmark: herd-api as a process over a real ZooKeeper, driven by concurrent aiohttp
clients from this process (2 cores: one for the server, one for the clients).

- define: POST /api/v1/vm with concurrent clients (goal >= 1,000 VMs/s); naive: one
  client, one request at a time;
- list: GET /api/v1/vm with 1,000 and 10,000 VMs (goal p50 <= 30 ms and <= 150 ms), served
  from the watched cache; naive: reading the VMs' znodes from ZooKeeper for each list
  (one synchronous get per znode, at 1,000 VMs);
- single VM: GET /api/v1/vm/{vm} with concurrent clients (goal >= 1,500 req/s).
Run: `.venv/bin/python -m bench.api_bench`. Writes bench/results/api.{json,md}.
`--define-only` measures only the defines (aiohttp clients, then wrk) and prints the figures
without writing results (for iterating on the define path); `--profile FILE` runs the
server under cProfile and writes its statistics to FILE when it exits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from kazoo.client import KazooClient

from bench.common import Timer, save, summary_ms, zookeeper
from bench.fixtures import create_ops
from server.auth import create_token
from store import txn
from store.client import Store
from store.layout import ensure_layout

ROOT = "/bench-api"
HERD_API = str(Path(sys.executable).with_name("herd-api"))
XML = "<domain type='kvm'><name>{name}</name><memory unit='MiB'>1024</memory><vcpu>2</vcpu>" \
      "<os><type arch='x86_64'>hvm</type></os></domain>"


def start_server(zk_hosts: str, tmp: Path, *,
                 profile: Path | None = None) -> tuple[subprocess.Popen[str], str, str]:
    token = create_token(tmp / "tokens")
    config = tmp / "api.yaml"
    config.write_text(f"zk_hosts: {zk_hosts}\nzk_root: {ROOT}\nlisten_port: 0\n"
                      f"token_file: {tmp / 'tokens'}\nlog_level: WARNING\n")
    command = [HERD_API, "--config", str(config)]
    if profile is not None:
        command = [sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "server.main",
                   *command[1:]]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("herd-api: serving on "):
        proc.kill()
        raise SystemExit(f"herd-api did not start: {line!r}")
    return proc, line.split()[-1], token


def stop_server(proc: subprocess.Popen[str]) -> None:
    """The herd-api process of `start_server` stopped (SIGTERM, waited) and its pipe closed."""
    proc.terminate()
    proc.wait(60)
    if proc.stdout is not None:
        proc.stdout.close()


async def define(session: aiohttp.ClientSession, url: str, *, names: list[str],
                 concurrency: int) -> float:
    todo = iter(names)

    async def worker() -> None:
        for name in todo:
            async with session.post(f"{url}/api/v1/vm",
                                    json={"xml": XML.format(name=name), "node": "hv1"}) as r:
                assert r.status == 201, await r.text()

    with Timer() as t:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return t.seconds


async def wait_count(session: aiohttp.ClientSession, url: str, count: int) -> None:
    """Until the server's cache holds `count` VMs (a benchmark harness: polling is fine)."""
    while True:
        async with session.get(f"{url}/api/v1/status") as r:
            if (await r.json())["vms"]["total"] >= count:
                return
        await asyncio.sleep(0.05)


async def list_latency(session: aiohttp.ClientSession, url: str, *,
                       samples: int) -> list[float]:
    out = []
    for _ in range(samples):
        start = time.perf_counter()
        async with session.get(f"{url}/api/v1/vm") as r:
            body = await r.read()
            assert r.status == 200 and body
        out.append(time.perf_counter() - start)
    return out


async def single_gets(session: aiohttp.ClientSession, url: str, *, names: list[str],
                      total: int, concurrency: int) -> float:
    rng = random.Random(1)
    left = [total]

    async def worker() -> None:
        while left[0] > 0:
            left[0] -= 1
            async with session.get(f"{url}/api/v1/vm/{rng.choice(names)}") as r:
                await r.read()
                assert r.status == 200

    with Timer() as t:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return total / t.seconds


def naive_list(hosts: str, names: list[str]) -> list[float]:
    client = KazooClient(hosts=hosts)
    client.start()
    try:
        out = []
        for _ in range(3):
            with Timer() as t:
                for name in names:
                    for part in ("", "/placement", "/status"):
                        client.get(f"{ROOT}/vms/{name}{part}")
            out.append(t.seconds)
        return out
    finally:
        client.stop()
        client.close()


def populate(store: Store, start: int, stop: int) -> list[str]:
    names = [f"vm{i:05d}" for i in range(start, stop)]
    errors = txn.commit_pipelined(store, [create_ops(store.paths, n) for n in names])
    assert not any(errors)
    return names


async def run(zk_hosts: str, url: str, *, token: str, store: Store) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    conn = aiohttp.TCPConnector(limit=128)
    figures: dict[str, Any] = {}
    async with aiohttp.ClientSession(connector=conn, headers=headers) as s:
        defined = [f"def{i:05d}" for i in range(3000)]
        figures["define_vms"] = len(defined) - 200
        figures["define_s"] = await define(s, url, names=defined[200:], concurrency=64)
        figures["naive_define_s"] = await define(s, url, names=defined[:200], concurrency=1)
        for name in defined:  # back to an empty cluster: the list figures are exact
            async with s.delete(f"{url}/api/v1/vm/{name}") as r:
                assert r.status == 200
        names = populate(store, 0, 1000)
        await wait_count(s, url, 1000)
        figures["list_1k"] = summary_ms(await list_latency(s, url, samples=30))
        figures["naive_list_1k"] = summary_ms(naive_list(zk_hosts, names))
        names += populate(store, 1000, 10_000)
        await wait_count(s, url, 10_000)
        figures["list_10k"] = summary_ms(await list_latency(s, url, samples=30))
        await single_gets(s, url, names=names, total=2000, concurrency=32)  # warm up
        figures["get_rps"] = await single_gets(s, url, names=names, total=20_000,
                                                concurrency=32)
    return figures


WRK_SCRIPT = """
local counter, tid = 0, 0
setup = function(thread) thread:set("tid", tid); tid = tid + 1 end
request = function()
  counter = counter + 1
  local name = string.format("wrk%d-%06d", tid, counter)
  local body = string.format(__BODY__, name)
  return wrk.format("POST", "/api/v1/vm", {["Content-Type"] = "application/json",
                    ["Authorization"] = "Bearer __TOKEN__"}, body)
end
response = function(status, headers, body)
  if status ~= 201 then io.stderr:write("status " .. status .. "\\n") end
end
"""


def wrk_define(url: str, token: str, tmp: Path, *, seconds: int = 4,
               connections: int = 64) -> dict[str, Any] | None:
    """Defines/s with wrk (a C load generator, so the clients do not take the server's CPU
    on this 2-core machine); None where wrk is not installed."""
    if shutil.which("wrk") is None:
        return None
    body = json.dumps({"xml": XML.replace("{name}", "%s")})
    script = tmp / "define.lua"
    script.write_text(WRK_SCRIPT.replace("__BODY__", json.dumps(body))
                      .replace("__TOKEN__", token))
    done = subprocess.run(["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s",
                           "-s", str(script), url], capture_output=True, text=True, timeout=120)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", done.stdout)
    if rate is None:
        raise RuntimeError(f"wrk failed: {done.stdout} {done.stderr}")
    return {"vms_per_s": round(float(rate.group(1))), "connections": connections,
            "seconds": seconds, "errors": int(bad.group(1)) if bad else 0}


def report(f: dict[str, Any]) -> None:
    rate = f["define_vms"] / f["define_s"]
    naive_rate = 200 / f["naive_define_s"]
    save("api", {**f, "define_vms_per_s": round(rate), "naive_define_vms_per_s":
                 round(naive_rate), "get_rps": round(f["get_rps"])}, [
        (f"POST /vm define, {f['define_vms']:,} VMs, 64 clients", f"{rate:,.0f} VMs/s",
         f"{naive_rate:,.0f} VMs/s (one client, one at a time)", ">= 1,000 VMs/s"),
        ("GET /vm, 1,000 VMs, p50 / p99",
         f"{f['list_1k']['p50_ms']:.1f} / {f['list_1k']['p99_ms']:.1f} ms",
         f"{f['naive_list_1k']['p50_ms']:,.0f} ms (sync get per znode)", "p50 <= 30 ms"),
        ("GET /vm, 10,000 VMs, p50 / p99",
         f"{f['list_10k']['p50_ms']:.1f} / {f['list_10k']['p99_ms']:.1f} ms", "-",
         "p50 <= 150 ms"),
        ("GET /vm/{vm}, 32 clients", f"{f['get_rps']:,.0f} req/s", "-", ">= 1,500 req/s"),
        *([(f"POST /vm define, wrk, {w['connections']} connections, {w['seconds']} s",
            f"{w['vms_per_s']:,} VMs/s ({w['errors']} errors)", "-", ">= 1,000 VMs/s")]
          if (w := f.get("wrk_define")) else []),
    ])


async def define_only(url: str, *, token: str) -> dict[str, Any]:
    """The define figures alone (a warm-up of 200 VMs first), for iterating on that path."""
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=128),
                                     headers=headers) as s:
        defined = [f"def{i:05d}" for i in range(3000)]
        await define(s, url, names=defined[:200], concurrency=64)
        seconds = await define(s, url, names=defined[200:], concurrency=64)
    return {"define_vms": len(defined) - 200, "define_s": seconds,
            "define_vms_per_s": round((len(defined) - 200) / seconds)}


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="bench.api_bench",
                                 description="Benchmark herd-api (define, list, get).")
    ap.add_argument("--define-only", action="store_true",
                    help="measure only the defines; print, do not write results")
    ap.add_argument("--profile", type=Path, help="run the server under cProfile, stats here")
    return ap.parse_args()


def main() -> None:
    args = parse_args()
    with zookeeper() as zk, tempfile.TemporaryDirectory(prefix="herd-api-bench-") as tmp:
        store = Store(zk.hosts, ROOT)
        store.start()
        ensure_layout(store)
        proc, url, token = start_server(zk.hosts, Path(tmp), profile=args.profile)
        try:
            if args.define_only:
                figures = asyncio.run(define_only(url, token=token))
            else:
                figures = asyncio.run(run(zk.hosts, url, token=token, store=store))
            figures["wrk_define"] = wrk_define(url, token, Path(tmp))
        finally:
            stop_server(proc)
            store.stop()
    if args.define_only:
        print(json.dumps(figures, indent=2))
    else:
        report(figures)


if __name__ == "__main__":
    main()
