"""`python -m bench.chaos --seeds N --duration S`: the fault suite (issue #8) over N seeds,
each a fresh cluster (ZooKeeper x3, `--nodes` herd-node on test-driver nodes, `--apis`
herd-api, `--vms` VMs) under its seeded schedule of faults and client changes for S
seconds, then healed, settled and checked (tests/support/chaos). Prints each seed's
one-screen report and writes the summary to bench/results/chaos.{json,md} (bench.common).
A failing seed's directory (logs, evidence.json, ops.jsonl, report.txt) is kept and named
in the output; a passing seed's is removed.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import save
from tests.support.chaos.report import first_violation, render
from tests.support.chaos.run import ChaosConfig, SeedResult, run_seed


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="bench.chaos", description=__doc__)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first", type=int, default=1, help="first seed (then +1 each)")
    ap.add_argument("--duration", type=float, default=120.0)
    ap.add_argument("--nodes", type=int, default=4)
    ap.add_argument("--apis", type=int, default=2)
    ap.add_argument("--vms", type=int, default=200)
    ap.add_argument("--rate", type=float, default=8.0, help="client requests per second")
    return ap.parse_args(argv)


def one(seed: int, args: argparse.Namespace) -> tuple[SeedResult, Path | None]:
    directory = Path(tempfile.mkdtemp(prefix=f"herd-chaos-{seed}-"))
    config = ChaosConfig(seed=seed, duration=args.duration, nodes=args.nodes, apis=args.apis,
                         vms=args.vms, rate=args.rate, workers=4, settle_timeout=120.0)
    result = run_seed(directory, config)
    if result.passed:
        shutil.rmtree(directory, ignore_errors=True)
        return result, None
    return result, directory


def summary(seed: SeedResult, kept: Path | None) -> dict[str, Any]:
    first = first_violation(seed.results)
    return {"seed": seed.config.seed, "passed": seed.passed,
            "faults": dict(Counter(f.kind for f in seed.faults)),
            "requests": dict(Counter(o.outcome for o in seed.ops)),
            "runs": seed.run_count, "runEnds": seed.run_ends,
            "checks": {r.name: len(r.violations) for r in seed.results},
            "firstViolation": first.message if first else None,
            "harnessErrors": seed.harness_errors, "kept": str(kept) if kept else None,
            "timings": {k: round(v, 1) for k, v in seed.timings.items()}}


def rows(seeds: list[dict[str, Any]], args: argparse.Namespace) -> list[tuple[str, str, str, str]]:
    passed = sum(s["passed"] for s in seeds)
    faults = sum(sum(s["faults"].values()) for s in seeds)
    requests: Counter[str] = Counter()
    for s in seeds:
        requests.update(s["requests"])
    failed = Counter(name for s in seeds for name, n in s["checks"].items() if n)
    seconds = [sum(s["timings"].values()) for s in seeds]
    return [
        (f"seeds passing ({args.nodes} nodes, {args.apis} APIs, {args.vms} VMs, "
         f"{args.duration:.0f} s each)", f"{passed} / {len(seeds)}", "-", "all"),
        ("faults injected (every kind in each seed)", f"{faults}", "-", "-"),
        ("requests ok / refused / unknown", f"{requests['ok']} / {requests['refused']} / "
         f"{requests['unknown']}", "-", "-"),
        ("runs recorded (from the nodes' own event logs)", f"{sum(s['runs'] for s in seeds)}",
         "-", "-"),
        ("checks failed (seeds)", ", ".join(f"{k} {n}" for k, n in failed.items()) or "none",
         "-", "none"),
        ("wall time per seed, median", f"{statistics.median(seconds):.0f} s", "-", "-"),
    ]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.monotonic()
    seeds = []
    for seed in range(args.first, args.first + args.seeds):
        result, kept = one(seed, args)
        print(render(result))
        if kept is not None:
            print(f"seed {seed} failed: its logs and evidence are in {kept}")
        print()
        seeds.append(summary(result, kept))
    figures = {"config": vars(args), "seeds": seeds,
               "wallSeconds": round(time.monotonic() - started, 1)}
    save("chaos", figures, rows(seeds, args))


if __name__ == "__main__":
    main()
