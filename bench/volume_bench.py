"""Benchmark: a volume's data through Herd (issue #15) on a real QEMU host (`herdctl dev up
--hypervisor qemu` machinery, in-process, one host).

A 256 MiB file of random bytes into a raw volume of the host's `local` pool, and back:
through herd-api (HTTP -> herd-api -> the node's libvirtd over its published
`migrationUri`, qemu+tcp here), by an in-process HTTP client and by `herdctl volume
upload|download` (whole command, process start included), against `virsh -c <that URI>
vol-upload|vol-download` (whole command) of the same file into a second volume of the same
pool, in the same run, interleaved. Goal: Herd's upload rate >= 90 % of virsh's. Every
round checks the bytes arrived (sha256 of the image on the host).
Run: `.venv/bin/python -m bench.volume_bench` (root). Writes bench/results/volume.*.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import save
from ctl.client import Client
from ctl.dev import cluster
from ctl.dev.state import DevState

MiB = 1 << 20
HERDCTL = str(Path(sys.executable).with_name("herdctl"))
POOL_PATH = "/var/lib/libvirt/herd-pools/local"


def _sha(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while data := f.read(MiB):
            digest.update(data)
    return digest.hexdigest()


def _timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600,
                          stdin=subprocess.DEVNULL)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{argv[:3]}: {done.stdout}{done.stderr}")
    return took


def _ready(client: Client, name: str) -> None:
    for event in client.watch(timeout=60, kind="Volume"):
        if event.get("name") == f"local/{name}" and (
                (event.get("object") or {}).get("status") or {}).get("state") == "ready":
            return
    raise TimeoutError(f"volume local/{name} never got ready")


def setup(client: Client, size_mib: int) -> None:
    client.post("/pool", {"apiVersion": "herd/v1", "kind": "Pool",
                          "metadata": {"name": "local"},
                          "spec": {"type": "local", "path": POOL_PATH}})
    for event in client.watch(timeout=60, kind="Node", name="hv1"):
        pools = ((event.get("object") or {}).get("status") or {}).get("pools") or {}
        if pools.get("local", {}).get("usable"):
            break
    for name in ("bench-herd", "bench-virsh"):
        client.post("/volume", {"apiVersion": "herd/v1", "kind": "Volume",
                                "metadata": {"name": name},
                                "spec": {"pool": "local", "size": size_mib * MiB,
                                         "format": "raw", "node": "hv1"}})
        _ready(client, name)


def _api_up(client: Client, source: Path) -> float:
    """PUT /volume/local/bench-herd/data by an in-process HTTP client (no herdctl start)."""
    start = time.perf_counter()
    with open(source, "rb") as f:
        client.upload("/volume/local/bench-herd/data", iter(lambda: f.read(MiB), b""),
                      length=source.stat().st_size)
    return time.perf_counter() - start


def _api_down(client: Client, back: Path) -> float:
    start = time.perf_counter()
    _size, chunks = client.download("/volume/local/bench-herd/data", chunk=MiB)
    with open(back, "wb") as f:
        for data in chunks:
            f.write(data)
    return time.perf_counter() - start


WAYS = ("api", "herdctl", "virsh")


def rounds(dev: DevState, client: Client, *, source: Path, rounds: int) -> dict[str, Any]:
    env = {**os.environ, "HERD_DEV_DIR": dev.dir}
    uri = client.get("/node/hv1")["status"]["migrationUri"]
    images = Path(dev.dir) / "hosts" / "hv1" / "lib" / "herd-pools" / "local"
    want = _sha(source)
    out: dict[str, list[float]] = {f"{w}_{d}": [] for w in WAYS for d in ("up", "down")}
    back = source.with_name("back.raw")
    ups = {"api": lambda: _api_up(client, source),
           "herdctl": lambda: _timed([HERDCTL, "volume", "upload", "local", "bench-herd",
                                      str(source)], env),
           "virsh": lambda: _timed(["virsh", "-q", "-c", uri, "vol-upload", "--pool", "local",
                                    "bench-virsh", str(source)], env)}
    downs = {"api": lambda: _api_down(client, back),
             "herdctl": lambda: _timed([HERDCTL, "volume", "download", "local", "bench-herd",
                                        str(back)], env),
             "virsh": lambda: _timed(["virsh", "-q", "-c", uri, "vol-download", "--pool",
                                      "local", "bench-virsh", str(back)], env)}
    for i in range(rounds):
        order = WAYS if i % 2 == 0 else WAYS[::-1]  # interleaved, alternating
        for way in order:
            out[f"{way}_up"].append(ups[way]())
            image = images / ("bench-virsh" if way == "virsh" else "bench-herd")
            assert _sha(image) == want, f"{way}: the bytes differ"
        for way in order:
            out[f"{way}_down"].append(downs[way]())
            assert _sha(back) == want, f"{way}: the download differs"
            back.unlink()
        print(f"round {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in out.items()))
    return out


def report(f: dict[str, Any]) -> None:
    size = f["size_mib"]
    rate = {k: size / statistics.median(v) for k, v in f["seconds"].items()}
    f["rate_mib_s"] = {k: round(v, 1) for k, v in rate.items()}
    f["ratio_to_virsh"] = {k: round(v / rate[f"virsh_{k.rpartition('_')[2]}"], 3)
                           for k, v in rate.items() if not k.startswith("virsh")}
    n = len(f["seconds"]["api_up"])
    rows = []
    for d, verb, tool in (("up", "upload", "vol-upload"), ("down", "download",
                                                            "vol-download")):
        native = f"{rate[f'virsh_{d}']:.0f} MiB/s (`virsh -c <node URI> {tool}`)"
        rows.append((f"{verb} of {size} MiB, raw volume: HTTP through herd-api "
                     f"(in-process client), p50 of {n}",
                     f"{rate[f'api_{d}']:.0f} MiB/s ({f['ratio_to_virsh'][f'api_{d}']:.0%} "
                     "of virsh)", native, ">= 90 % of virsh" if d == "up" else "-"))
        rows.append((f"... the same by `herdctl volume {verb}` (process start included)",
                     f"{rate[f'herdctl_{d}']:.0f} MiB/s "
                     f"({f['ratio_to_virsh'][f'herdctl_{d}']:.0%})", native, "-"))
    save("volume", f, rows)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.volume_bench")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", type=int, default=256, help="MiB")
    parser.add_argument("--dir", type=Path, help="keep the cluster's files (logs) here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="herd-bench-volume-") as tmp:
        directory = args.dir or Path(tmp) / "cluster"
        source = Path(tmp) / "source.raw"
        with open(source, "wb") as f:
            for _ in range(args.size):
                f.write(os.urandom(MiB))
        dev = cluster.up(directory, nodes=1, timeout=180, say=print, hypervisor="qemu")
        try:
            client = Client(dev.url, token=dev.token, timeout=120)
            setup(client, args.size)
            seconds = rounds(dev, client, source=source, rounds=args.rounds)
        finally:
            cluster.down(directory, say=lambda _message: None)
    report({"size_mib": args.size, "seconds": seconds})


if __name__ == "__main__":
    main()
