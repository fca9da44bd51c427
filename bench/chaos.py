"""`python -m bench.chaos --seeds N --duration S`: the fault suite (issue #8) over N seeds,
each a fresh cluster (ZooKeeper x3, `--nodes` herd-node on test-driver nodes, `--apis`
herd-api, `--vms` VMs) under its seeded schedule of faults and client changes for S
seconds, then healed, settled and checked (tests/support/chaos). Prints each seed's
one-screen report and writes the summary to bench/results/chaos.{json,md} (bench.common).
`--hypervisor qemu` runs it on real QEMU hosts (ctl.dev.qemu: live migrations, a fence
that powers a host off, the history from hostwatch) with a handful of guests, and writes
bench/results/chaos_qemu.{json,md}; it needs root and QEMU (it says why not and exits).
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
from ctl.dev.qemu import HostsUnavailable, probe
from tests.support.chaos.report import first_violation, render
from tests.support.chaos.run import ChaosConfig, SeedResult, run_seed

# Per hypervisor: defaults of the options left out (a QEMU guest is a real process).
DEFAULTS: dict[str, dict[str, Any]] = {
    "test": {"duration": 120.0, "nodes": 4, "vms": 200, "rate": 8.0, "workers": 4},
    "qemu": {"duration": 60.0, "nodes": 3, "vms": 8, "rate": 1.5, "workers": 2},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="bench.chaos", description=__doc__)
    ap.add_argument("--hypervisor", choices=sorted(DEFAULTS), default="test")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first", type=int, default=1, help="first seed (then +1 each)")
    ap.add_argument("--duration", type=float)
    ap.add_argument("--nodes", type=int)
    ap.add_argument("--apis", type=int, default=2)
    ap.add_argument("--vms", type=int)
    ap.add_argument("--rate", type=float, help="client requests per second")
    args = ap.parse_args(argv)
    for key, value in DEFAULTS[args.hypervisor].items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    return args


def one(seed: int, args: argparse.Namespace) -> tuple[SeedResult, Path | None]:
    directory = Path(tempfile.mkdtemp(prefix=f"herd-chaos-{seed}-"))
    config = ChaosConfig(seed=seed, duration=args.duration, nodes=args.nodes, apis=args.apis,
                         vms=args.vms, rate=args.rate, workers=args.workers,
                         settle_timeout=120.0, hypervisor=args.hypervisor)
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


HISTORY = {"test": "from the nodes' own event logs",
           "qemu": "from hostwatch: every host's libvirtd, asked directly"}


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
        (f"runs recorded ({HISTORY[args.hypervisor]})", f"{sum(s['runs'] for s in seeds)}",
         "-", "-"),
        ("checks failed (seeds)", ", ".join(f"{k} {n}" for k, n in failed.items()) or "none",
         "-", "none"),
        ("wall time per seed, median", f"{statistics.median(seconds):.0f} s", "-", "-"),
    ]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.hypervisor == "qemu":
        try:
            probe()
        except HostsUnavailable as e:
            raise SystemExit(f"bench.chaos: no QEMU hosts here: {e}") from None
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
    save("chaos" if args.hypervisor == "test" else "chaos_qemu", figures, rows(seeds, args))


if __name__ == "__main__":
    main()
