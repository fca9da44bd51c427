"""Shared pieces of the benchmarks: a throw-away ZooKeeper, timing, and result files.

Every benchmark prints its figures and writes them to `bench/results/<name>.json`
(machine-readable, with the date and the machine) and `bench/results/<name>.md` (the table
the README shows). Called by the `bench.*` modules.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.support.zkserver import ZooKeeperCluster

RESULTS = Path(__file__).parent / "results"


@contextmanager
def zookeeper() -> Iterator[ZooKeeperCluster]:
    with tempfile.TemporaryDirectory(prefix="herd-bench-") as tmp:
        cluster = ZooKeeperCluster(Path(tmp), members=1)
        cluster.start()
        try:
            yield cluster
        finally:
            cluster.stop()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary_ms(samples_s: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples_s]
    return {"p50_ms": round(percentile(ms, 50), 3), "p99_ms": round(percentile(ms, 99), 3),
            "mean_ms": round(statistics.fmean(ms), 3), "n": len(ms)}


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


def save(name: str, figures: dict[str, Any], rows: list[tuple[str, str, str, str]]) -> None:
    """Write the figures (JSON) and a Markdown table of (metric, herd, naive, goal) rows."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
                       f"{platform.python_version()}"}
    (RESULTS / f"{name}.json").write_text(json.dumps({**meta, **figures}, indent=2) + "\n")
    lines = [f"_{name}, {meta['date']}, {meta['machine']}_", "",
             "| metric | Herd | naive | goal |", "|---|---|---|---|"]
    lines += [f"| {m} | {h} | {n} | {g} |" for m, h, n, g in rows]
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
